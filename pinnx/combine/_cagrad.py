"""CAGrad: conflict-averse gradient descent (Liu et al., NeurIPS 2021)."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._base import Aggregator, FloatLike, IntLike, check, concrete, static
from ._gram import Scaled, gram_aggregator, relative_norms
from ._qp import (
    QPInfo,
    _active_set,
    bucket,
    default_tol,
    log_info,
    no_info,
    pad,
    scaled_gram,
    unpad,
)
from ._registry import register

__all__ = ["cagrad", "cagrad_weights", "CAGradState"]


class CAGradState(NamedTuple):
    """State of `cagrad`: what the last solve did, for logging. `iterations` counts the
    evaluations of the root function (one simplex QP each); `converged` says that the
    returned weights are certified: their simplex QP converged and either t is a root
    (residual <= tol) or the Pareto-stationarity test h(lo) <= 0 was resolved; `residual`
    is |t - ||J^T w(t)||| / t at the returned t (0 when stationary)."""

    info: QPInfo


# jitted per padded size (see _qp.pad): copies of task 0 leave the problem unchanged
@functools.partial(jax.jit, static_argnames=("tol",))
def _cagrad_dual(gram, b, phi, lo, noise, max_iter, tol):
    """w = argmin_{w in simplex} b . w + phi ||J^T w||, with b = G 1/K, phi = c ||g0||.

    For t > 0 let w(t) solve the simplex QP min 1/2 w^T G w + (t / phi) b . w, i.e. J^T w(t)
    is the point of the hull closest to -(t / phi) g0. Its optimality conditions are those
    of the problem above exactly when t = ||J^T w(t)|| > 0, so w = w(t*) for a positive
    root t* of h(t) = ||J^T w(t)|| - t. h is Lipschitz and h(max_k ||g_k||) <= 0; if
    h(lo) > 0 for a small lo > 0, a root lies in (lo, max_k ||g_k||] and is found by
    regula falsi with the Illinois modification (superlinear on the smooth pieces of h,
    never leaves the bracket). (t = 0 is a spurious root when 0 is in the hull.) If
    h(lo) <= 0, the optimum has ||J^T w|| <= lo: Pareto-stationary, w = w(lo) is returned
    with `stationary` True. ||J^T w|| computed from G carries an error of about `noise`
    (sqrt(K eps) ||J||_F: the squared norm's rounding): an h(lo) in [-noise, 0] is not a
    resolved sign, and is reported as not converged.
    """
    dtype = gram.dtype
    inv_phi = jnp.where(phi > 0, 1 / jnp.where(phi > 0, phi, 1), 0)
    qp_max_iter = 4 * gram.shape[0] + 10
    hi = jnp.maximum(jnp.sqrt(jnp.maximum(jnp.max(jnp.diagonal(gram)), 0)), lo)

    def cond(s):
        *_, it, done = s
        return (~done) & (it < max_iter)

    def body(s):
        # step 0 evaluates h(lo), step 1 h(hi), later steps regula falsi inside the bracket
        # (a, b) with h(a) > 0 >= h(b); `side` remembers which end moved last. One loop
        # keeps a single copy of the QP solver in the compiled code.
        a, fa, bb, fb, side, _, _, _, ok, _, it, _ = s
        denom = fa - fb
        t = jnp.where(denom > 0, (bb * fa - a * fb) / jnp.where(denom > 0, denom, 1),
                      (a + bb) / 2)
        t = jnp.where(it == 0, lo, jnp.where(it == 1, hi, jnp.clip(t, a, bb)))
        w, info = _active_set(gram, t * inv_phi * b, tol, qp_max_iter, simplex=True)
        ft = jnp.sqrt(jnp.maximum(w @ gram @ w, 0)) - t
        right = ft < 0  # the root is left of t: t becomes the right end
        a_new = jnp.where(right, a, t)
        fa_new = jnp.where(right, jnp.where(side == -1, fa / 2, fa), ft)
        b_new = jnp.where(right, t, bb)
        fb_new = jnp.where(right, ft, jnp.where(side == 1, fb / 2, fb))
        side_new = jnp.where(right, -1, 1).astype(jnp.int32)
        done = (jnp.abs(ft) <= tol * jnp.maximum(t, tol)) | (b_new - a_new <= tol * t)
        first, second = it == 0, it == 1
        # h(lo) <= 0: no root above lo (Pareto-stationary); h(hi) >= 0: the root is hi
        done = jnp.where(first, ft <= 0, jnp.where(second, ft >= 0, done))
        ok = ok & ~(first & (ft <= 0) & (ft > -noise))
        a_new = jnp.where(first | second, a, a_new)
        b_new = jnp.where(first | second, bb, b_new)
        fa_new = jnp.where(first, ft, jnp.where(second, fa, fa_new))
        fb_new = jnp.where(first, fb, jnp.where(second, ft, fb_new))
        side_new = jnp.where(first | second, 0, side_new).astype(jnp.int32)
        return (a_new, fa_new, b_new, fb_new, side_new, w, ft, t, ok, info.converged,
                it + 1, done)

    k = gram.shape[0]
    nan = jnp.full((), jnp.nan, dtype)
    init = (lo, nan, hi, nan, jnp.array(0, jnp.int32), jnp.full((k,), 1 / k, dtype), nan, lo,
            jnp.array(True), jnp.array(False), jnp.array(0, jnp.int32), jnp.array(False))
    _, _, _, _, _, w, ft, t, ok, solved, it, done = jax.lax.while_loop(cond, body, init)
    residual = jnp.abs(ft) / jnp.maximum(t, jnp.finfo(dtype).tiny)
    # stopped at once because h(lo) <= 0 (Pareto-stationary): nothing left to solve
    stationary = done & (it == 1)
    residual = jnp.where(stationary, jnp.zeros_like(residual), residual)
    # a root t = ||J^T w(t)|| certifies w(t) whatever the earlier evaluations were: only the
    # returned point's QP and a resolved stationarity decision count
    certified = stationary | (residual <= tol)
    info = QPInfo(iterations=it, converged=done & ok & solved & certified, residual=residual)
    return w, stationary, info


def cagrad_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    c: float = 0.5,
    *,
    norm_eps: float = 1e-4,
    tol: float | None = None,
    max_iter: int = 64,
) -> tuple[Float[Array, " tasks"], QPInfo]:
    """CAGrad as a weighting of the Gram matrix, in the unit-direction basis.

    With G rescaled by the largest squared norm (the weights are scale-free), solves
    w = argmin_{w in simplex} w . (G 1/K) + c ||g0|| sqrt(w^T G w) and returns the
    coefficients of d = g0 + (c ||g0|| / ||J^T w||) J^T w on the unit directions
    (zero when ||J^T w|| < norm_eps ||J||_F, as in torchjd).

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        c: radius of the ball around g0, relative to ||g0||.
        norm_eps: zeroing threshold (see `cagrad`).
        tol: relative tolerance of the root and of the inner QPs (default 1e-5 / 1e-10 in
            float32 / 64).
        max_iter: cap on evaluations of h (two of them bracket the root).

    Returns:
        `(beta, info)`: (K,) coefficients on the unit directions and the solve's `QPInfo`.
    """
    top, beta, info = _cagrad_relative(norms, cos, c, norm_eps, tol, max_iter)
    return top * beta, info


def _cagrad_relative(norms, cos, c, norm_eps, tol, max_iter):
    """CAGrad's coefficients relative to the largest norm, and that norm: the product can
    underflow (float32 rows near the smallest normal number), so `cagrad` combines the
    relative coefficients first and scales last."""
    k = norms.shape[0]
    dtype = norms.dtype
    top, m = relative_norms(norms)
    mean_info = QPInfo(jnp.array(0, jnp.int32), jnp.array(True), jnp.zeros((), dtype))
    if concrete(c) and c == 0:  # d = g0: nothing to solve
        return top, m / k, mean_info
    tol = default_tol(dtype) if tol is None else tol
    eps = float(jnp.finfo(dtype).eps)
    # the lower end of the root search, relative to ||J||_F (see `_setup`)
    lo_factor = (max(0.1 * norm_eps, 10 * eps**0.5) if concrete(norm_eps)
                 else jnp.maximum(0.1 * norm_eps, 10 * eps**0.5))
    gram, b, phi, lo, noise = _setup(norms, cos, c, lo_factor)
    idx, reduced_gram, reduced_b = _drop_zero_rows(gram, b)
    padded_gram, padded_b = pad(reduced_gram, reduced_b, bucket(k), simplex=True)
    w, stationary, info = _cagrad_dual(padded_gram, padded_b, phi, lo, noise, max_iter,
                                       tol=float(tol))
    w = _fold(unpad(w, k, simplex=True), idx)
    beta = _finish(w, stationary, gram, b, phi, norm_eps) * m
    if concrete(c):
        return top, beta, info
    # a traced c (inject_hyperparams, an ensemble over c): c = 0 is the mean
    zero = c == 0
    return (top, jnp.where(zero, m / k, beta),
            jax.tree.map(lambda a, b: jnp.where(zero, a, b), mean_info, info))


@jax.jit
def _drop_zero_rows(gram, b):
    """Replace each zero row (diag(G) below the dtype's smallest normal) by a copy of the
    longest row, so the dual is solved over the hull of the non-zero rows only.

    On the full simplex the dual value of w = (1 - s) v + s e_z (z a zero row, b_z = 0,
    J^T e_z = 0) is (1 - s) f(v): the optimum is min(0, min_v f(v)) over the non-zero rows,
    and `_finish` compares that minimum with 0. Solving with the zero vertex inside the
    hull instead asks the root search to resolve an O(t^2) improvement near t = 0, which
    float32 cannot. Copies of a row leave the hull unchanged. Returns the row index map and
    the reduced G and b."""
    k = gram.shape[0]
    diag = jnp.diagonal(gram)
    zero = diag < jnp.finfo(gram.dtype).tiny
    idx = jnp.where(zero, jnp.argmax(diag), jnp.arange(k))
    return idx, gram[idx][:, idx], b[idx]


@jax.jit
def _fold(w, idx):
    """Weights on copies back onto the rows they copy."""
    return jnp.zeros_like(w).at[idx].add(w)


@jax.jit
def _setup(norms, cos, c, lo_factor):
    """G / max norm^2, b = G 1/K (= J g0), phi = c ||g0|| in those units, the lower end of
    the root search and the resolution of ||J^T w|| computed from G.

    The lower end is a tenth of the zeroing threshold norm_eps ||J||_F, but at least
    10 sqrt(eps) ||J||_F (3.5e-3 ||J||_F in float32; 1.5e-7 in float64, below the default
    1e-5): ||J^T w||^2 = w^T G w carries a rounding error of about K eps ||J||_F^2, so a
    norm below ~sqrt(K eps) ||J||_F (`noise`) has no correct digit, and the sign of
    h(lo) = ||J^T w(lo)|| - lo must be resolved for the stationarity test to mean anything.
    """
    k = norms.shape[0]
    gram = scaled_gram(norms, cos)
    b = gram @ jnp.full((k,), 1 / k, gram.dtype)
    phi = c * jnp.sqrt(jnp.maximum(jnp.sum(b) / k, 0))  # ||g0||^2 = 1^T G 1 / K^2
    frob = jnp.sqrt(jnp.sum(jnp.diagonal(gram)))
    eps = float(jnp.finfo(gram.dtype).eps)
    lo = lo_factor * frob  # lo_factor = max(0.1 norm_eps, 10 sqrt(eps))
    noise = (k * eps) ** 0.5 * frob
    return gram, b, phi, lo, noise


@jax.jit
def _finish(w, stationary, gram, b, phi, norm_eps):
    """Coefficients of d = g0 + phi / ||J^T w|| J^T w on the task gradients (0 near the
    Pareto set, as in torchjd; also 0 when a zero row's vertex, of dual value 0, is at
    least as good as the w found over the non-zero rows, and when the root search found the
    problem Pareto-stationary); times the norms, on the unit directions."""
    k = w.shape[0]
    gw = jnp.sqrt(jnp.maximum(w @ gram @ w, 0))
    frob = jnp.sqrt(jnp.sum(jnp.diagonal(gram)))  # ||J||_F in the same units
    has_zero = jnp.any(jnp.diagonal(gram) < jnp.finfo(gram.dtype).tiny)
    far = (gw >= norm_eps * frob) & (gw > 0) & ~(has_zero & (b @ w + phi * gw >= 0))
    far = far & ~stationary
    weights = 1 / k + phi / jnp.where(far, gw, 1) * w
    return jnp.where(far, weights, jnp.zeros_like(weights))


@register
def cagrad(
    c: FloatLike = 0.5,
    *,
    rescale: IntLike = 0,
    norm_eps: FloatLike = 1e-4,
    tol: FloatLike | None = None,
    max_iter: IntLike = 64,
) -> Aggregator:
    """CAGrad: the update in a ball around the mean gradient that helps the worst task most.

    With g0 = (1/K) sum_k g_k, CAGrad solves max_{||d - g0|| <= c ||g0||} min_k g_k . d.
    Its dual over the simplex is w = argmin_w w . (J g0) + c ||g0|| ||J^T w||, and
    d = g0 + (c ||g0|| / ||J^T w||) J^T w. So c = 0 gives the mean; larger c moves towards
    MGDA's min-norm direction (for c >= 1 the ball contains 0 and CAGrad can stop at
    Pareto-stationary points). When ||J^T w|| < norm_eps ||J||_F (the min-norm point of the
    hull is ~0: Pareto-stationary), d = 0, as in torchjd. In float32 the threshold is at
    least 10 sqrt(eps) ||J||_F = 3.5e-3 ||J||_F: ||J^T w||, computed from the Gram matrix,
    has no correct digit below about sqrt(K eps) ||J||_F; where the stationarity test sits
    within that noise, `converged` is False.

    The dual is not a QP (the norm is not squared). It is solved as a scalar root search
    over QPs: for t > 0, let J^T w(t) be the point of the convex hull of the rows closest
    to -(t / (c ||g0||)) g0 (a simplex QP, `pinnx.combine._qp.simplex_qp`); the dual's
    optimality conditions hold exactly when t = ||J^T w(t)||. The root is bracketed in
    [0, max_k ||g_k||] and found by regula falsi (Illinois variant), to relative
    tolerance `tol`. The number of root steps, the convergence flag (root and every inner
    QP) and the residual are kept in the state (`CAGradState.info`).

    Input: per-task gradients (leaves with a leading task axis K); output: one
    params-shaped gradient. Scale-safe: solved on norms and cosines.

    Args:
        c: radius of the ball, relative to ||g0|| (the paper's c; 0.5 by default in the
            paper's multi-task experiments). c = 0 is the mean.
        rescale: as the official code's `rescale`: 0 returns d (torchjd's convention),
            1 returns d / (1 + c^2) (the official code's default), 2 returns d / (1 + c).
        norm_eps: below this ||J^T w|| / ||J||_F, return 0.
        tol: relative tolerance of the root and of the inner QPs (default 1e-5 in float32,
            1e-10 in float64).
        max_iter: cap on evaluations of the root function (each one a simplex QP; the
            first two bracket the root).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.cagrad(c=0.5)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]
        [0.25, 0.5]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.cagrad(c=0.5) | optax.adam(1e-3)

    References:
        Liu, Liu, Jin, Stone, Liu. "Conflict-Averse Gradient Descent for Multi-task
        Learning". NeurIPS 2021. https://arxiv.org/abs/2110.14048
    """
    check(c, lambda v: v >= 0, f"cagrad: c must be non-negative, got {c}")
    check(rescale, lambda v: np.isin(v, (0, 1, 2)), f"cagrad: rescale must be 0, 1 or 2, got "
          f"{rescale}")
    check(norm_eps, lambda v: v >= 0, f"cagrad: norm_eps must be non-negative, got {norm_eps}")
    tol = static(tol, "tol", "cagrad")
    factors = (1.0, 1 / (1 + c**2), 1 / (1 + c))
    factor = factors[rescale] if concrete(rescale) else jnp.stack(factors)[rescale]

    def weights(norms, cos, state):
        del state
        # relative coefficients, scaled last: top * beta can underflow in float32
        top, beta, info = _cagrad_relative(norms, cos, c, norm_eps, tol, max_iter)
        return Scaled(beta * factor, top), CAGradState(info=log_info(info))

    return gram_aggregator(weights, init=lambda params, tasks: CAGradState(info=no_info()))
