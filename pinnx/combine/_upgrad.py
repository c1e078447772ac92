"""UPGrad and DualProj: projections onto the dual cone of the task gradients.

The dual cone of the rows of J is {x : J x >= 0}, the directions that increase no loss to
first order (descending along -x). Projecting J^T u onto it is the K-dimensional problem
v = argmin_{v >= u} v^T G v, and the projection is J^T v (Quinton & Rey 2024, Prop. 1).
The cone does not change when a row is rescaled, so the problem is solved on the cosine
matrix, in the coordinates of the unit directions u_k = g_k / ||g_k||.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Aggregator, FloatLike, IntLike, static
from ._gram import Scaled, gram_aggregator, relative_norms
from ._qp import QPInfo, log_info, no_info, nonneg_qp
from ._registry import register

__all__ = [
    "upgrad",
    "upgrad_weights",
    "UPGradState",
    "dualproj",
    "dualproj_weights",
    "DualProjState",
    "dual_cone_projection",
]


class UPGradState(NamedTuple):
    """State of `upgrad`: a summary of its K solves (most iterations, all converged,
    largest residual), for logging."""

    info: QPInfo


class DualProjState(NamedTuple):
    """State of `dualproj`: what the last solve did, for logging."""

    info: QPInfo


def dual_cone_projection(
    cos: Float[Array, "tasks tasks"],
    lower: Float[Array, "*batch tasks"],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[Float[Array, "*batch tasks"], QPInfo]:
    """Coefficients y of the projection of sum_k lower_k u_k onto the dual cone.

    y = argmin_{y >= lower} y^T C y (C the cosine matrix), written as y = lower + x with
    x = argmin_{x >= 0} 1/2 x^T C x + (C lower)^T x (`nonneg_qp`; C lower is in the range
    of C, so the problem is bounded however singular C is). Then sum_k y_k u_k is the
    projection, and y_k >= lower_k.

    Args:
        cos: (K, K) cosine matrix.
        lower: (K,) lower bounds, or (M, K) for M projections with the same matrix.
        tol: KKT tolerance of the solve (default 1e-5 / 1e-10 in float32 / 64).
        max_iter: iteration cap of the solve (default 4B + 10, B the padded size).

    Returns:
        `(y, info)`: coefficients shaped like `lower`, and the `QPInfo` (batched for M).
    """
    linear = lower @ cos  # C is symmetric
    # entries of C lower within their own rounding are zero to working precision: the
    # cancellation between opposite rows (0.2 - 0.2 + 6e-21, with FMA) leaves noise of
    # either sign, which the solver, judging each coordinate on the size of its linear
    # term, would take for a gradient (a problem that is not bounded)
    k = cos.shape[-1]
    noise = (k + 1) * jnp.finfo(cos.dtype).eps * (jnp.abs(lower) @ jnp.abs(cos))
    linear = jnp.where(jnp.abs(linear) <= noise, jnp.zeros_like(linear), linear)
    x, info = nonneg_qp(cos, linear, tol=tol, max_iter=max_iter)
    return lower + x, info


def upgrad_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[Float[Array, " tasks"], QPInfo]:
    """UPGrad as a weighting of the Gram matrix, in the unit-direction basis.

    For each task i, y_i = argmin_{y >= e_i} y^T C y gives the projection of u_i onto the
    dual cone (K solves with the same matrix, one after the other: `nonneg_qp` with a
    batch of linear terms); the projection of g_i is ||g_i|| times it.
    The aggregate is their mean: beta = (1/K) sum_i ||g_i|| y_i, d = sum_k beta_k u_k.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        tol: KKT tolerance of each solve (default 1e-5 / 1e-10 in float32 / 64).
        max_iter: iteration cap of each solve (default 4B + 10, B the padded size).

    Returns:
        `(beta, info)`: (K,) coefficients on the unit directions and the K solves'
        `QPInfo` (batched: one entry per task).
    """
    top, beta, info = _upgrad_relative(norms, cos, tol, max_iter)
    return top * beta, info


def _upgrad_relative(norms, cos, tol, max_iter):
    """UPGrad's coefficients relative to the largest norm, and that norm: the product can
    underflow (float32 rows near the smallest normal number), so `upgrad` combines the
    relative coefficients first and scales last."""
    k = norms.shape[0]
    ys, info = dual_cone_projection(cos, jnp.eye(k, dtype=cos.dtype), tol=tol,
                                    max_iter=max_iter)
    top, beta = _mean_of_projections(norms, ys)
    return top, beta, info


@jax.jit
def _mean_of_projections(norms, ys):
    top, m = relative_norms(norms)
    return top, (m @ ys) / norms.shape[0]


def dualproj_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[Float[Array, " tasks"], QPInfo]:
    """DualProj as a weighting of the Gram matrix, in the unit-direction basis.

    The mean (1/K) sum_k g_k has coefficients n_k / K on u_k; its projection onto the dual
    cone has coefficients y = argmin_{y >= n / K} y^T C y. Solved with the norms divided by
    the largest one (the cone is scale-free), then scaled back.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        tol: KKT tolerance of the solve (default 1e-5 / 1e-10 in float32 / 64).
        max_iter: iteration cap of the solve (default 4B + 10, B the padded size).

    Returns:
        `(beta, info)`: (K,) coefficients on the unit directions and the solve's `QPInfo`.
    """
    top, y, info = _dualproj_relative(norms, cos, tol, max_iter)
    return top * y, info


def _dualproj_relative(norms, cos, tol, max_iter):
    """DualProj's coefficients relative to the largest norm, and that norm (see
    `_upgrad_relative`)."""
    top, m = relative_norms(norms)
    y, info = dual_cone_projection(cos, m / norms.shape[0], tol=tol, max_iter=max_iter)
    return top, y, info


@register
def upgrad(*, tol: FloatLike | None = None, max_iter: IntLike | None = None) -> Aggregator:
    """UPGrad: the mean of the task gradients, each projected onto the dual cone.

    The dual cone of the task gradients is {x : g_k . x >= 0 for all k}: the updates that
    conflict with no task. UPGrad projects every g_i onto it,
    pi(g_i) = J^T v_i with v_i = argmin_{v >= e_i} v^T G v (Quinton & Rey, Prop. 1), and
    returns d = (1/K) sum_i pi(g_i). Hence d . g_k >= 0 for all k (d never conflicts with
    a task); when no pair of tasks conflicts (all g_i . g_j >= 0), every g_i is already in
    the cone and d is the mean of the rows.

    The K projections are K small non-negative QPs on the cosine matrix (exact active set,
    `pinnx.combine._qp.nonneg_qp`); their summary (most iterations,
    all converged, largest KKT residual) is in the state (`UPGradState.info`). Unlike
    torchjd, no regularisation is added to G: the solver handles singular G.

    Input: per-task gradients (leaves with a leading task axis K); output: one
    params-shaped gradient. Scale-safe: solved on norms and cosines.

    Args:
        tol: relative KKT tolerance of each solve (default 1e-5 in float32, 1e-10 in
            float64).
        max_iter: cap on each solve's iterations (default 4B + 10, B the padded size 4, 8, 16, ...).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.upgrad()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # no negative projection on a row
        [0.25, 0.75]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.upgrad() | optax.adam(1e-3)

    References:
        Quinton, Rey. "Jacobian Descent for Multi-Objective Optimization". 2024.
        https://arxiv.org/abs/2406.16232
    """
    tol = static(tol, "tol", "upgrad")
    max_iter = static(max_iter, "max_iter", "upgrad")

    def weights(norms, cos, state):
        del state
        # relative coefficients, scaled last: top * beta can underflow in float32
        top, beta, info = _upgrad_relative(norms, cos, tol, max_iter)
        return Scaled(beta, top), UPGradState(info=log_info(info))

    return gram_aggregator(weights, init=lambda params, tasks: UPGradState(info=no_info()))


@register
def dualproj(*, tol: FloatLike | None = None, max_iter: IntLike | None = None) -> Aggregator:
    """DualProj: the mean of the task gradients, projected onto their dual cone.

    d = J^T v with v = argmin_{v >= 1/K} v^T G v: the point of the dual cone
    {x : g_k . x >= 0 for all k} closest to the mean gradient (the projection of GEM,
    Lopez-Paz & Ranzato 2017, Eq. 11, as aggregated in torchjd). Hence d . g_k >= 0 for
    all k, and d is the mean when the mean already conflicts with no task.

    One small non-negative QP on the cosine matrix (exact active set,
    `pinnx.combine._qp.nonneg_qp`); its `QPInfo` is kept in the state
    (`DualProjState.info`). No regularisation is added to G.

    Input: per-task gradients (leaves with a leading task axis K); output: one
    params-shaped gradient. Scale-safe: solved on norms and cosines.

    Args:
        tol: relative KKT tolerance of the solve (default 1e-5 in float32, 1e-10 in
            float64).
        max_iter: cap on solver iterations (default 4B + 10, B the padded size 4, 8, 16, ...).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.dualproj()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # [0, 1] onto the dual cone
        [0.0, 0.5]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.dualproj() | optax.adam(1e-3)

    References:
        Lopez-Paz, Ranzato. "Gradient Episodic Memory for Continual Learning". NeurIPS
        2017. https://arxiv.org/abs/1706.08840

        Quinton, Rey. "Jacobian Descent for Multi-Objective Optimization". 2024.
        https://arxiv.org/abs/2406.16232
    """
    tol = static(tol, "tol", "dualproj")
    max_iter = static(max_iter, "max_iter", "dualproj")

    def weights(norms, cos, state):
        del state
        top, beta, info = _dualproj_relative(norms, cos, tol, max_iter)
        return Scaled(beta, top), DualProjState(info=log_info(info))

    return gram_aggregator(weights, init=lambda params, tasks: DualProjState(info=no_info()))
