"""FairGrad: alpha-fair allocation of the update among the tasks (Ban & Ji, ICML 2024)."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Aggregator, FloatLike, IntLike, check, static
from ._gram import Scaled, gram_aggregator, relative_norms
from ._qp import QPInfo, bucket, default_tol, log_info, no_info, pad, psd_solve, unpad
from ._registry import register

__all__ = ["fairgrad", "fairgrad_weights", "FairGradState"]


class FairGradState(NamedTuple):
    """State of `fairgrad`: what the last Newton solve did, for logging. `residual` is
    max_k |b_k^p (A b)_k / c_k - 1| over the non-zero tasks (see `fairgrad_weights`)."""

    info: QPInfo


def fairgrad_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    alpha: FloatLike = 1.0,
    *,
    reg: FloatLike = 1e-8,
    tol: float | None = None,
    max_iter: IntLike = 100,
) -> tuple[Scaled, QPInfo]:
    """FairGrad as a weighting of the Gram matrix, in the unit-direction basis.

    FairGrad's weights w > 0 solve G w = w^(-1/alpha) (elementwise power). With
    b_k = ||g_k|| w_k the coefficients on the unit directions and p = 1 / alpha this reads
    (C b)_k = c_k b_k^(-p), c_k = ||g_k||^(p - 1), C the cosine matrix: the stationarity
    condition of the strictly convex

        F(b) = 1/2 b^T (C + reg I) b - sum_k c_k H_p(b_k),   H_p' (b) = b^(-p),

    on b > 0, minimised by Newton's method with a backtracking line search from the
    solution for orthogonal rows, b_k = (c_k / (1 + reg))^(1 / (1 + p)). It is solved with
    the norms relative to the largest one, m = n / max n; the solution for the norms n is
    then that one times max(n)^((1 - alpha) / (1 + alpha)) (FairGrad is homogeneous of that
    degree), which is returned as the `Scaled` factor. Zero rows (and rows whose norm
    relative to the largest is below the smallest normal number) get weight 0.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        alpha: the fairness parameter, > 0 (1: proportional fairness, Nash-MTL's
            bargaining solution; larger values approach max-min fairness).
        reg: ridge added to C (see `fairgrad`).
        tol: Newton stops when half the squared Newton decrement is below it (default
            1e-5 in float32, 1e-10 in float64).
        max_iter: cap on Newton steps.

    Returns:
        `(Scaled(beta, scale), info)`: coefficients on the unit directions relative to
        `scale`, and the solve's `QPInfo`.
    """
    k = cos.shape[0]
    dtype = cos.dtype
    tol = default_tol(dtype) if tol is None else tol
    top, m = relative_norms(norms)
    p = jnp.asarray(1 / alpha, dtype)
    alive = (m >= jnp.finfo(dtype).tiny) & (jnp.diagonal(cos) > 0.5)
    coef = jnp.where(alive, jnp.where(alive, m, 1) ** (p - 1), 0)
    # padding with zero rows is exact: they drop out (one compilation for several K)
    padded, padded_coef = pad(cos, coef, bucket(k), simplex=False)
    b, info = _newton(padded, padded_coef, p, reg, max_iter, tol=float(tol))
    b = unpad(b, k, simplex=False)
    exponent = (p - 1) / (p + 1)  # = (1 - alpha) / (1 + alpha)
    scale = jnp.where(top > 0, jnp.where(top > 0, top, 1) ** exponent, 1)
    return Scaled(b, scale), info


def _barrier(b, p):
    """H_p(b) with H_p'(b) = b^(-p): log b for p = 1, (b^(1 - p) - 1) / (1 - p) otherwise."""
    one = jnp.abs(p - 1) < 1e-6
    q = jnp.where(one, 0.5, 1 - p)
    return jnp.where(one, jnp.log(b), jnp.expm1(q * jnp.log(b)) / q)


@functools.partial(jax.jit, static_argnames=("tol",))
def _newton(cos, coef, p, reg, max_iter, tol):
    """Minimise F (see `fairgrad_weights`) over b > 0 on the rows with coef > 0."""
    dtype = cos.dtype
    alive = coef > 0
    eye = jnp.eye(cos.shape[0], dtype=dtype)
    a = cos + reg * eye

    def value(b):
        safe = jnp.where(alive, b, 1)
        return 0.5 * b @ a @ b - jnp.sum(jnp.where(alive, coef * _barrier(safe, p), 0))

    def step(b):
        safe = jnp.where(alive, b, 1)
        power = jnp.where(alive, safe ** (-p), 0)  # b^(-p)
        grad = jnp.where(alive, a @ b - coef * power, 0)
        curv = jnp.where(alive, p * coef * power / safe, 0)  # p c b^(-p-1)
        hess = jnp.where(alive[:, None] & alive[None, :], a + jnp.diag(curv), eye)
        delta = jnp.where(alive, -psd_solve(hess, grad[:, None])[:, 0], 0)
        dec2 = jnp.maximum(-(grad @ delta), 0)
        # the largest step that keeps b > b / 10, then backtracking (Armijo) on F
        shrink = jnp.where(alive & (delta < 0), -0.9 * safe / jnp.where(delta < 0, delta, -1),
                           jnp.inf)
        t0 = jnp.minimum(1.0, jnp.min(shrink)).astype(dtype)
        f0 = value(b)

        def worse(t):
            return (value(b + t * delta) > f0 - 0.25 * t * dec2) & (t > 1e-10)

        t = jax.lax.while_loop(worse, lambda t: t / 2, t0)
        return jnp.where(alive, b + t * delta, 0), dec2

    def cond(s):
        _, dec2, it = s
        return (dec2 / 2 > tol) & (it < max_iter)

    def body(s):
        b, _, it = s
        b, dec2 = step(b)
        return b, dec2, it + 1

    # the solution for orthogonal rows
    b0 = jnp.where(alive, (jnp.where(alive, coef, 1) / (1 + reg)) ** (1 / (1 + p)), 0)
    b, dec2, it = jax.lax.while_loop(
        cond, body, (b0, jnp.full((), jnp.inf, dtype), jnp.array(0, jnp.int32))
    )
    safe = jnp.where(alive, b, 1)
    balance = safe**p * (a @ b) / jnp.where(alive, coef, 1)
    residual = jnp.max(jnp.where(alive, jnp.abs(balance - 1), 0), initial=0.0)
    info = QPInfo(iterations=it, converged=dec2 / 2 <= tol, residual=residual)
    return b, info


@register
def fairgrad(
    alpha: FloatLike = 1.0,
    *,
    reg: FloatLike = 1e-8,
    tol: FloatLike | None = None,
    max_iter: IntLike = 100,
) -> Aggregator:
    """FairGrad: the update that allocates progress among the tasks alpha-fairly.

    With the update d = sum_k w_k g_k, task k's first-order progress is g_k . d. FairGrad
    maximises the alpha-fair utility sum_k (g_k . d)^(1 - alpha) / (1 - alpha) (sum_k
    log(g_k . d) for alpha = 1) over a ball of updates; its optimality condition is

        G w = w^(-1/alpha),   i.e.   g_k . d = w_k^(-1/alpha) for every task k,

    (G the Gram matrix, the power elementwise). alpha = 1 is proportional fairness, the
    Nash bargaining solution of `nash_mtl`; alpha -> infinity approaches max-min fairness
    (MGDA-like); alpha -> 0 the plain (utilitarian) sum of progress. Every task makes
    positive progress, g_k . d > 0. The update is homogeneous of degree
    (1 - alpha) / (1 + alpha) in the gradients.

    The weights come from a K-dimensional convex problem on the cosine matrix, solved by
    Newton's method in float precision (`fairgrad_weights`) rather than by the reference's
    `scipy.optimize.least_squares`; iterations, convergence and the relative residual of
    the condition are kept in the state (`FairGradState.info`). A ridge `reg` on the
    cosine matrix keeps the problem solvable when no solution exists (exactly opposite
    tasks, as for `nash_mtl`); zero rows get weight 0.

    Args:
        alpha: the fairness parameter, > 0.
        reg: ridge added to the cosine matrix.
        tol: Newton's stopping threshold on half the squared Newton decrement (default
            1e-5 in float32, 1e-10 in float64).
        max_iter: cap on Newton steps.

    Returns an aggregator: K task rows in, one params-shaped gradient out.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.fairgrad(alpha=2.0)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]
        [0.678, 1.496]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.fairgrad(alpha=2.0) | optax.adam(1e-3)

    References:
        Ban, Ji. "Fair Resource Allocation in Multi-Task Learning". ICML 2024.
        https://arxiv.org/abs/2402.15638 ; reference code LibMTL `FairGrad` (Lin, Zhang.
        "LibMTL: A Python Library for Multi-Task Learning". JMLR 24, 2023).
    """
    check(alpha, lambda v: v > 0, f"fairgrad: alpha must be positive, got {alpha}")
    check(reg, lambda v: v >= 0, f"fairgrad: reg must be non-negative, got {reg}")
    tol = static(tol, "tol", "fairgrad")

    def weights(norms, cos, state):
        del state
        coefficients, info = fairgrad_weights(norms, cos, alpha, reg=reg, tol=tol,
                                              max_iter=max_iter)
        return coefficients, FairGradState(info=log_info(info))

    return gram_aggregator(weights, init=lambda params, tasks: FairGradState(info=no_info()))
