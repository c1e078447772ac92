"""DCGD: dual cone gradient descent (Hwang & Lim, NeurIPS 2024)."""

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Aggregator, FloatLike, IntLike, static
from ._gram import gram_aggregator
from ._qp import QPInfo, log_info, no_info
from ._registry import register
from ._upgrad import dual_cone_projection

__all__ = ["dcgd", "dcgd_weights", "DCGDState"]

Variant = Literal["center", "projection", "average"]
VARIANTS = ("center", "projection", "average")


class DCGDState(NamedTuple):
    """State of `dcgd`: what the dual-cone projections of the last update did (for logging).

    `info.iterations` (int32) is the largest number of active-set iterations among the
    projections solved, `info.converged` whether all of them met the tolerance and
    `info.residual` (float32) their largest KKT residual (`pinnx.combine._qp.log_info`).
    An update that needs no projection (two tasks, or no conflict) reports 0 iterations,
    converged, residual 0; before the first update the state holds `no_info()`.
    """

    info: QPInfo


def _no_qp() -> QPInfo:
    """An update that solved nothing: converged, in the dtypes of `log_info`."""
    return no_info()._replace(converged=jnp.ones((), bool))


def _project(cos, b, tol, max_iter):
    """Coefficients of the projections of U^T b onto the dual cone {x : U x >= 0}.

    By duality the projection is U^T (b + mu) with mu = argmin_{mu >= 0}
    1/2 mu^T C mu + mu^T (C b) (`dual_cone_projection`, which also zeroes the rounding
    noise of C b); b, (K,) or a batch (M, K), should be of order 1.
    """
    y, info = dual_cone_projection(cos, b, tol=tol, max_iter=max_iter)
    return y, log_info(info)


def _safe_div(num, den, floor):
    ok = den > floor
    return jnp.where(ok, num / jnp.where(ok, den, 1), jnp.zeros_like(num))


def dcgd_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    variant: Variant = "center",
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[Float[Array, " tasks"], QPInfo]:
    """DCGD as a weighting of the Gram matrix, in the unit-direction basis.

    See `dcgd` for the rules. Two tasks (or one) use the paper's closed forms; three or more
    solve the dual-cone projections with `nonneg_qp` on the cosine matrix (the problem is
    scale-free: the coefficients are divided by the largest norm before the solve).

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        variant: `"center"`, `"projection"` or `"average"`.
        tol: relative KKT tolerance of the projections (default: `nonneg_qp`'s).
        max_iter: cap on the active-set iterations of each projection.

    Returns:
        `(beta, info)`: (K,) coefficients of d on the unit directions u_k, and the
        projections' `QPInfo` (reduced over the projections solved; fixed dtypes).
    """
    if variant not in VARIANTS:
        raise ValueError(f"dcgd: variant must be one of {VARIANTS}, got {variant!r}")
    k = cos.shape[0]
    dtype = cos.dtype
    eps = jnp.finfo(dtype).eps
    top = jnp.max(norms)
    top = jnp.where(top > 0, top, jnp.ones_like(top))
    rel = norms / top  # the total gradient g = U^T norms, scaled to order 1
    agrees = jnp.all(cos @ rel >= 0)  # g . g_k >= 0 for every k: g is in the dual cone
    info = _no_qp()

    if variant == "center":
        ones = jnp.ones((k,), dtype)
        if k <= 2:  # u_1 + u_2 is in the dual cone already
            a = ones
        else:
            a, info = _project(cos, ones, tol, max_iter)
        along = a @ cos @ rel  # g_c . g / max||g_k||
        square = a @ cos @ a  # ||g_c||^2
        beta = _safe_div(along, square, k * eps * jnp.sum(a * a)) * a * top
        return beta, info

    if variant == "projection":
        if k <= 2:
            # the paper: drop from the other gradient its component along the one that g
            # conflicts with (exactly the projection of g onto the dual cone)
            t = cos @ rel
            j = jnp.argmin(t)  # the conflicting task, if any
            i = 1 - j if k == 2 else j
            proj = rel.at[j].set(-rel[i] * cos[i, j]) if k == 2 else rel
            beta = jnp.where(agrees, rel, proj)
        else:
            beta, qp = _project(cos, rel, tol, max_iter)
            info = jax.tree.map(lambda a, b: jnp.where(agrees, a, b), info, qp)
            beta = jnp.where(agrees, rel, beta)
        return beta * top, info

    # average: the mean of the projections of the task gradients onto the dual cone
    if k <= 2:
        if k == 2:  # the paper's (1/2)[(1 - g_b.g_r/|g_b|^2) g_b + (1 - g_b.g_r/|g_r|^2) g_r]
            c = cos[0, 1]
            mean = 0.5 * jnp.stack([rel[0] - rel[1] * c, rel[1] - rel[0] * c])
        else:
            mean = rel
    else:
        units, qp = _project(cos, jnp.eye(k, dtype=dtype), tol, max_iter)  # row k: Proj(u_k)
        mean = rel @ units / k  # (1/K) sum_k ||g_k|| Proj(u_k) = (1/K) sum_k Proj(g_k)
        info = jax.tree.map(lambda a, b: jnp.where(agrees, a, b), info, qp)
    return jnp.where(agrees, rel, mean) * top, info


@register
def dcgd(
    variant: Variant = "center", *, tol: FloatLike | None = None, max_iter: IntLike | None = None
) -> Aggregator:
    """DCGD: keep the update inside the dual cone of the task gradients.

    The dual cone K* = {d : d . g_k >= 0 for every k} holds the updates whose descent step
    (along -d) increases no loss to first order. With g = sum_k g_k the total gradient and
    u_k = g_k / ||g_k||,
    the paper (two losses, g_r and g_b) defines three updates, all in K*:

    - `"projection"`: g if g is in K*; otherwise, g conflicts with one gradient, say g_b,
      and the update is g_r - (g_r . g_b / ||g_b||^2) g_b (symmetrically for g_r): the
      Euclidean projection of g onto K*.
    - `"average"`: g if g is in K*; otherwise
      (1/2)[(1 - g_b.g_r/||g_b||^2) g_b + (1 - g_b.g_r/||g_r||^2) g_r], the mean of g_b
      projected off g_r and g_r projected off g_b, which (when g leaves K*) are the
      projections of g_b and g_r onto K*.
    - `"center"` (always applied): g_c = u_r + u_b, the bisector of the cone's generators,
      and d = (g_c . g / ||g_c||^2) g_c, the projection of g on the line through g_c.

    **More than two losses** (pinnx's generalisation; the authors' code instead sums the
    boundary losses into one g_b): with P_K*(x) the Euclidean projection onto K*,

    - projection: d = P_K*(g) (g itself when no g . g_k is negative);
    - average: d = g when g is in K*, else d = (1/K) sum_k P_K*(g_k) over all K tasks
      (the rule of UPGrad, Quinton & Rey 2024);
    - center: g_c = P_K*(sum_k u_k), d = (g_c . g / ||g_c||^2) g_c.

    Each reduces to the paper's rule for K = 2, and each lies in K* for every K: a
    projection onto K* is in K*, K* is a convex cone (closed under sums and non-negative
    scaling), and for center g_c . g = sum_k g_c . g_k >= 0. By duality,
    P_K*(U^T b) = U^T (b + mu) with mu = argmin_{mu >= 0} 1/2 mu^T C mu + mu^T C b (C the
    cosine matrix), a K-dimensional non-negative QP solved exactly by `nonneg_qp`; its
    iterations and convergence are reported in the state. K <= 2 uses the closed forms.

    Zero gradients add no constraint; when g_c vanishes (two opposite gradients) the
    center update is zero. The authors' code adds 1e-8 to the norms; pinnx guards zero
    norms instead, so the formulas hold exactly for any scale.

    Args:
        variant: `"center"` (the authors' default), `"projection"` or `"average"`.
        tol: relative KKT tolerance of the dual-cone projections (K >= 3); default 1e-5
            in float32, 1e-10 in float64.
        max_iter: cap on the active-set iterations of each projection (default:
            `nonneg_qp`'s).

    Returns an aggregator: K task rows in, one params-shaped gradient out; its state
    (`DCGDState`) holds the last update's projection info.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.dcgd("center")
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]
        [0.354, 0.854]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.dcgd("center") | optax.adam(1e-3)

    References:
        Hwang, Lim. "Dual Cone Gradient Descent for Training Physics-Informed Neural
        Networks". NeurIPS 2024. https://arxiv.org/abs/2409.18426
    """
    if variant not in VARIANTS:
        raise ValueError(f"dcgd: variant must be one of {VARIANTS}, got {variant!r}")
    tol = static(tol, "tol", "dcgd")
    max_iter = static(max_iter, "max_iter", "dcgd")

    def weights(norms, cos, state):
        del state
        beta, info = dcgd_weights(norms, cos, variant, tol=tol, max_iter=max_iter)
        return beta, DCGDState(info=info)

    return gram_aggregator(weights, init=lambda params, tasks: DCGDState(info=no_info()))
