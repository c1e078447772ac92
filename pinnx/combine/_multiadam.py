"""MultiAdam (Yao et al., ICML 2023): per-task Adam moments, then the mean."""

import optax

from ._base import Chain, FloatLike
from ._linear import mean
from ._per_task import per_task
from ._registry import register

__all__ = ["multiadam"]


@register
def multiadam(b1: FloatLike = 0.99, b2: FloatLike = 0.99, eps: FloatLike = 1e-8) -> Chain:
    """MultiAdam's direction: every task's gradient through its own Adam, then averaged.

    Row k goes through Adam's moment estimates with its own state,

        m_k <- b1 m_k + (1 - b1) g_k,   v_k <- b2 v_k + (1 - b2) g_k^2,
        u_k  = m_hat_k / (sqrt(v_hat_k) + eps)     (bias-corrected, elementwise),

    and the update direction is the mean (1/K) sum_k u_k, so every loss contributes a
    scale-free step whatever the magnitude of its gradient. This is exactly
    `pinnx.per_task(optax.scale_by_adam(b1, b2, eps)) | pinnx.mean()`; follow it with the
    learning rate, e.g. `optax.sgd(1e-3)` (a descent step of size 1e-3). The defaults
    b1 = b2 = 0.99 are the paper's. The paper keeps one Adam state per group of losses
    (PDE terms, boundary terms); here each task is its own group: to group losses, sum them
    into one task in the loss function.

    Args:
        b1: decay rate of the first moments.
        b2: decay rate of the second moments.
        eps: added to the root of the second moments.

    Returns:
        A chain (task transform then aggregator) with one Adam state per task: initialise
        it with `opt.init(params, tasks=K)` (`pinnx.fit` does).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> agg = pinnx.multiadam()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # each row Adam-scaled, then averaged
        [1.0, -0.5]

        In training, follow it with a plain step (it is Adam-scaled already):

        >>> opt = pinnx.multiadam() | optax.sgd(1e-3)

    References:
        Yao, Su, Hao, Liu, Su, Zhu. "MultiAdam: Parameter-wise Scale-invariant Optimizer for
        Multiscale Training of Physics-informed Neural Networks". ICML 2023.
        https://arxiv.org/abs/2306.02816
    """
    return per_task(optax.scale_by_adam(b1=b1, b2=b2, eps=eps)) | mean()
