"""MGDA: the minimum-norm point of the convex hull of the task gradients."""

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Aggregator, FloatLike, IntLike, static
from ._gram import Scaled, gram_aggregator, relative_norms
from ._qp import QPInfo, log_info, no_info, scaled_gram, simplex_qp
from ._registry import register

__all__ = ["mgda", "mgda_weights", "MGDAState"]


class MGDAState(NamedTuple):
    """State of `mgda`: what the last simplex solve did (for logging)."""

    info: QPInfo


def mgda_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[Float[Array, " tasks"], QPInfo]:
    """MGDA as a weighting of the Gram matrix, in the unit-direction basis.

    Solves w = argmin_{w in simplex} w^T G w with G = outer(n, n) * cos, rescaled by the
    largest norm so that diag(G) <= 1 (`simplex_qp`, exact active set). The aggregate is
    d = sum_k w_k g_k = sum_k beta_k u_k with beta = w * norms.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        tol: KKT tolerance of the simplex solve (default 1e-5 / 1e-10 in float32 / 64).
        max_iter: iteration cap of the solve (default 4B + 10, B the padded size).

    Returns:
        `(beta, info)`: (K,) coefficients on the unit directions, and the solver's `QPInfo`.
    """
    top, beta, info = _mgda_relative(norms, cos, tol, max_iter)
    return top * beta, info


def _mgda_relative(norms, cos, tol, max_iter):
    """MGDA's coefficients relative to the largest norm, and that norm: the product can
    underflow (float32 rows near the smallest normal number), so `mgda` combines the
    relative coefficients first and scales last."""
    w, info = simplex_qp(scaled_gram(norms, cos), jnp.zeros_like(norms), tol=tol,
                         max_iter=max_iter)
    top, m = relative_norms(norms)
    return top, w * m, info


@register
def mgda(*, tol: FloatLike | None = None, max_iter: IntLike | None = None) -> Aggregator:
    """MGDA: the minimum-norm element of the convex hull of the task gradients.

    d = J^T w with w = argmin_{w >= 0, sum w = 1} ||J^T w||^2, the multiple-gradient
    descent direction: -d decreases every loss unless d = 0 (a Pareto-stationary point).
    Optimality (KKT) reads d . g_k >= ||d||^2 for every task, with equality on the tasks
    that carry weight. If one task gradient is zero, d = 0.

    The weights are found exactly by an active-set solve of the K-dimensional simplex QP
    (`pinnx.combine._qp.simplex_qp`, one K x K factorisation per iteration), not by Frank-Wolfe
    iterations; the solver's iterations, convergence flag and KKT residual are kept in
    the state (`MGDAState.info`) for logging.

    Input: per-task gradients (leaves with a leading task axis K); output: one
    params-shaped gradient. Scale-safe: the Gram matrix is formed from norms and cosines.

    Args:
        tol: relative KKT tolerance of the solve (default 1e-5 in float32, 1e-10 in
            float64).
        max_iter: cap on solver iterations (default 4B + 10, B the padded size 4, 8, 16, ...).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.mgda()
        >>> update, state = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # the min-norm point between the rows
        [0.2, 0.4]
        >>> bool(state.info.converged)
        True

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.mgda() | optax.adam(1e-3)

    References:
        Desideri. "Multiple-gradient descent algorithm (MGDA) for multiobjective
        optimization". Comptes Rendus Mathematique, 2012.
        https://doi.org/10.1016/j.crma.2012.03.014

        Sener, Koltun. "Multi-Task Learning as Multi-Objective Optimization". NeurIPS 2018.
        https://arxiv.org/abs/1810.04650
    """
    tol = static(tol, "tol", "mgda")
    max_iter = static(max_iter, "max_iter", "mgda")

    def weights(norms, cos, state):
        del state
        # relative coefficients, scaled last: top * beta can underflow in float32
        top, beta, info = _mgda_relative(norms, cos, tol, max_iter)
        return Scaled(beta, top), MGDAState(info=log_info(info))

    return gram_aggregator(weights, init=lambda params, tasks: MGDAState(info=no_info()))
