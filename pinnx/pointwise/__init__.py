"""Per-point weighting and adaptive sampling of collocation points.

- **SA-PINN** (`_sa`, `_masks`): trainable point weights held in an `SAModel` next to the
  network, applied through a mask by `sa_losses`, ascended by `sa_optimizer` (the optax
  piece after the aggregator): `pinnx.sum() | sa_optimizer(optax.adam(1e-3), weights_lr=...)`.
  `sa_optimizer` lives here, not in `pinnx.recipes`: its partition labels are the
  `SAModel`'s structure, and `sa_refresh_state` rebuilds its state after resampling.
- **Gradient-norm point weights** (`_grad_norm`): w_i = max_j g_j / g_i with
  g_i = ||d r(x_i) / d theta||, carried in the batch (`with_point_weights`) and applied by
  `point_weighted_losses`.
- **Adaptive sampling** (`_rar`): RAR, RAR-D and RAD between rounds of `pinnx.fit`, and RAD
  inside it (`rad_sampler`, a `pinnx.ModelSampler`).
- **Resampling** (`_resample`): keep weighted point sets fixed inside `pinnx.fit`
  (`freeze_tasks`), move SA weights to new points (`sa_transfer`), and rebuild the
  optimizer state when their shapes change (`sa_refresh_state`).
"""

from ._grad_norm import (
    PointWeightedLosses,
    grad_norm_point_update,
    grad_norm_point_weights,
    point_grad_norms,
    point_weighted_losses,
    with_point_weights,
)
from ._masks import identity_mask, polynomial_mask, sigmoid_mask, square_mask
from ._rar import rad, rad_sampler, rar, rar_d, rar_density, residual_magnitude
from ._resample import freeze_tasks, sa_refresh_state, sa_transfer
from ._sa import SALosses, SAModel, sa_losses, sa_mask_values, sa_optimizer, sa_weights

__all__ = [
    # SA-PINN: trainable point weights, their masks and their optimizer
    "SALosses",
    "SAModel",
    "identity_mask",
    "polynomial_mask",
    "sa_losses",
    "sa_mask_values",
    "sa_optimizer",
    "sa_weights",
    "sigmoid_mask",
    "square_mask",
    # point weights across resampling
    "freeze_tasks",
    "sa_refresh_state",
    "sa_transfer",
    # gradient-norm point weights
    "PointWeightedLosses",
    "grad_norm_point_update",
    "grad_norm_point_weights",
    "point_grad_norms",
    "point_weighted_losses",
    "with_point_weights",
    # residual-based adaptive sampling
    "rad",
    "rad_sampler",
    "rar",
    "rar_d",
    "rar_density",
    "residual_magnitude",
]
