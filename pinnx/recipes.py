"""The published training recipes, one line each: a combiner chain with its optimizer.

Each chain recipe returns a `pinnx.Chain` ready for `pinnx.fit` or an own loop; each is a
plain composition of pinnx pieces (shown in its docstring), so a recipe can be read, changed
and recombined. Learning rates may be floats or optax schedules.

Methods whose extra parameters need their own optimizer get it here too, as the optax piece
that goes after the aggregator: `modsync_optimizer` (an `optax.partition` for the thresholds
of `pinnx.nn.ModSyncMLP`) and its `sparsity_penalty`. SA-PINN's `sa_optimizer` stays in
`pinnx.pointwise`, next to the point weights it ascends and `sa_refresh_state`, which
rebuilds its state.
"""

import optax

from ._modsync_training import modsync_optimizer, sparsity_penalty
from .combine import Chain, config, dcgd, lra, multiadam, pcgrad

__all__ = ["config_adam", "dcgd_adam", "dcgd_lra", "multiadam_recipe", "pcgrad_adam",
           "modsync_optimizer", "sparsity_penalty"]


def config_adam(learning_rate: float | optax.Schedule = 1e-3, **adam_kwargs) -> Chain:
    """ConFIG with Adam: `pinnx.config() | optax.adam(learning_rate, **adam_kwargs)`.

    References:
        Liu, Chu, Thuerey. "ConFIG: Towards Conflict-free Training of Physics Informed
        Neural Networks". ICLR 2025. https://arxiv.org/abs/2408.11104
    """
    return config() | optax.adam(learning_rate, **adam_kwargs)


def dcgd_adam(learning_rate: float | optax.Schedule = 1e-3, variant: str = "center",
              **adam_kwargs) -> Chain:
    """DCGD with Adam: `pinnx.dcgd(variant) | optax.adam(learning_rate, **adam_kwargs)`.

    The paper's default is the *center* variant.

    References:
        Hwang, Lim. "Dual Cone Gradient Descent for Training Physics-Informed Neural
        Networks". NeurIPS 2024. https://arxiv.org/abs/2409.18426
    """
    return dcgd(variant) | optax.adam(learning_rate, **adam_kwargs)


def dcgd_lra(learning_rate: float | optax.Schedule = 1e-3, main: str | int = "pde",
             variant: str = "center", alpha: float = 0.1, **adam_kwargs) -> Chain:
    """DCGD on LRA-weighted losses, with Adam (the DCGD paper's "DCGD + LRA").

    `pinnx.lra(main=main, alpha=alpha) | pinnx.dcgd(variant) | optax.adam(...)`: the
    learning-rate-annealing weights rescale every non-main task's gradient first, then DCGD
    combines the rescaled rows.

    References:
        Hwang, Lim. NeurIPS 2024 (section 5, combination with loss balancing);
        Wang, Teng, Perdikaris. SIAM J. Sci. Comput. 43(5), 2021.
    """
    return lra(main=main, alpha=alpha) | dcgd(variant) | optax.adam(learning_rate,
                                                                    **adam_kwargs)


def multiadam_recipe(learning_rate: float | optax.Schedule = 1e-3, b1: float = 0.99,
                     b2: float = 0.99, eps: float = 1e-8) -> Chain:
    """MultiAdam: per-task Adam moments, averaged, scaled by the learning rate.

    `pinnx.multiadam(b1, b2, eps) | optax.scale_by_learning_rate(learning_rate)`, i.e.
    `per_task(optax.scale_by_adam(b1, b2, eps)) | mean() | scale_by_learning_rate(...)`.

    References:
        Yao, Su, Hao, Liu, Ying, Zhu. "MultiAdam: Parameter-wise Scale-invariant Optimizer
        for Multiscale Training of Physics-informed Neural Networks". ICML 2023.
        https://arxiv.org/abs/2306.02816
    """
    return multiadam(b1=b1, b2=b2, eps=eps) | optax.scale_by_learning_rate(learning_rate)


def pcgrad_adam(learning_rate: float | optax.Schedule = 1e-3, seed: int = 0,
                **adam_kwargs) -> Chain:
    """PCGrad with Adam: `pinnx.pcgrad(seed=seed) | optax.adam(learning_rate, ...)`.

    References:
        Yu et al. "Gradient Surgery for Multi-Task Learning". NeurIPS 2020.
    """
    return pcgrad(seed=seed) | optax.adam(learning_rate, **adam_kwargs)
