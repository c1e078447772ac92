"""IMTL-G: impartial multi-task learning, gradient part (Liu et al., ICLR 2021)."""

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Aggregator
from ._config import _consistent, _pinv_one
from ._gram import gram_aggregator
from ._registry import register

__all__ = ["imtl_g", "imtl_g_weights"]


def imtl_g_weights(
    norms: Float[Array, " tasks"], cos: Float[Array, "tasks tasks"]
) -> Float[Array, " tasks"]:
    """IMTL-G as a weighting of the Gram matrix, in the unit-direction basis.

    beta = C^+ 1 makes U^T beta project equally (to 1) on every unit direction u_k; IMTL-G
    rescales it so that the loss weights a_k = beta_k / (S ||g_k||) sum to 1, with
    S = sum_k beta_k / ||g_k||. The ratios ||g_min|| / ||g_k|| (at most 1) stand in for
    1 / ||g_k||, so that S stays finite for rows of any magnitude.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.

    Returns:
        (K,) coefficients of d on the unit directions (beta_k / S); the loss weights are
        these divided by ||g_k||. All zero where IMTL-G is undefined (see `imtl_g`).
    """
    k = cos.shape[0]
    beta, _, q, kappa = _pinv_one(cos)
    tiny = jnp.finfo(norms.dtype).tiny
    nonzero = norms >= tiny
    smallest = jnp.min(jnp.where(nonzero, norms, jnp.inf))
    smallest = jnp.where(jnp.any(nonzero), smallest, jnp.ones_like(smallest))
    ratio = jnp.where(nonzero, smallest / jnp.where(nonzero, norms, 1), 0)  # in [0, 1]
    total = jnp.sum(beta * ratio)  # S * ||g_min||
    # beta carries errors of about eps * kappa * max|beta|: a smaller total is noise
    noise = k * jnp.finfo(norms.dtype).eps * kappa * jnp.max(jnp.abs(beta)) * jnp.sum(ratio)
    ok = _consistent(q, k) & (jnp.abs(total) > noise)
    return jnp.where(ok, beta * smallest / jnp.where(ok, total, 1), jnp.zeros_like(beta))


@register
def imtl_g() -> Aggregator:
    """IMTL-G: the weighted sum whose projections on every task direction are equal.

    d = sum_k a_k g_k with sum_k a_k = 1 and d . u_i = d . u_j for all tasks i, j
    (u_k = g_k / ||g_k||): d moves every loss by the same amount per unit of its gradient's
    length, so no task dominates by the scale of its gradient. Liu et al. solve
    a_{2..K} = g_1 U'^T (D U'^T)^-1 with D's rows g_1 - g_k and U''s rows u_1 - u_k; the same
    d is U^T C^+ 1 rescaled to sum_k a_k = 1, where C = U U^T is the cosine matrix:
    beta = C^+ 1, a_k = beta_k / (||g_k|| sum_j beta_j / ||g_j||).

    Degenerate input (torchjd's generalisation uses G^+ diag(G)^(1/2); this one uses the
    cosine matrix, and the two agree whenever the non-zero rows are linearly independent):
    zero rows get weight 0; eigenvalues of C up to K * eps * lambda_max are cut, so
    parallel rows share the weight of their common direction (the direction of d does not
    depend on the rows' lengths); the update is zero when no direction projects equally
    and positively on the rows (e.g. two opposite gradients) or when the weights cannot be
    normalised: sum_k beta_k / ||g_k|| is zero to within its rounding error (about
    K eps kappa max_k |beta_k| sum_k 1 / ||g_k||, kappa the condition number of C).

    Returns an aggregator: K task rows in, one params-shaped gradient out; stateless.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.imtl_g()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # equal projections on both unit rows
        [0.172, 0.414]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.imtl_g() | optax.adam(1e-3)

    References:
        Liu, Li, Kuang, Xue, Chen, Yang, Liao, Zhang. "Towards Impartial Multi-task
        Learning". ICLR 2021. https://openreview.net/forum?id=IMPnRXEWpvr ; reference code
        torchjd `IMTLG` (Quinton, Rey. "Jacobian Descent for Multi-Objective
        Optimization". 2024. https://arxiv.org/abs/2406.16232).
    """
    return gram_aggregator(lambda norms, cos, state: (imtl_g_weights(norms, cos), state))
