"""Nash-MTL: the Nash bargaining solution of the tasks (Navon et al., ICML 2022)."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Aggregator, FloatLike, IntLike, check, concrete, static
from ._gram import gram_aggregator
from ._qp import QPInfo, bucket, default_tol, log_info, no_info, pad, psd_solve, unpad
from ._registry import register

__all__ = ["nash_mtl", "nash_weights", "NashMTLState"]


class NashMTLState(NamedTuple):
    """State of `nash_mtl`: what the last Newton solve did, for logging. `residual` is
    max_k |b_k ((C + reg I) b)_k - 1| over the non-zero tasks."""

    info: QPInfo


def nash_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    *,
    reg: FloatLike = 1e-8,
    tol: float | None = None,
    max_iter: IntLike = 100,
) -> tuple[Float[Array, " tasks"], QPInfo]:
    """The bargaining solution as coefficients on the unit directions u_k = g_k / ||g_k||.

    With a = weights on the g_k and b_k = ||g_k|| a_k, the condition a_k (G a)_k = 1 reads
    b_k (C b)_k = 1 with C the cosine matrix: b does not depend on the norms (Nash-MTL is
    invariant to rescaling any task). b is the minimiser of the strictly convex
    F(b) = 1/2 b^T (C + reg I) b - sum_k log b_k, found by damped Newton (step
    1 / (1 + lambda), lambda the Newton decrement: F is self-concordant, so every step stays
    in b > 0 and the method converges from b = 1). Zero rows get b_k = 0 and drop out.

    `reg` makes a solution exist when none does (exactly opposite tasks, where F is
    unbounded below: there b grows like reg^(-1/2) and the opposite pair cancels in d).
    Newton stops when lambda^2 / 2 <= tol.

    Args:
        norms: (K,) task gradient norms (b does not depend on them; zero rows are read
            from the zero diagonal of `cos`).
        cos: (K, K) cosine matrix of the task gradients.
        reg: ridge added to C.
        tol: Newton's stopping threshold on lambda^2 / 2 (default 1e-5 / 1e-10 in
            float32 / 64).
        max_iter: cap on Newton steps.

    Returns:
        `(beta, info)`: the (K,) coefficients b and the solve's `QPInfo`.
    """
    tol = default_tol(cos.dtype) if tol is None else tol
    k = cos.shape[0]
    # zero rows drop out, so padding with them is exact (one compilation for several K)
    padded, _ = pad(cos, norms, bucket(k), simplex=False)
    b, info = _newton(padded, reg, max_iter, tol=float(tol))
    return unpad(b, k, simplex=False), info


@functools.partial(jax.jit, static_argnames=("tol",))
def _newton(cos, reg, max_iter, tol):
    dtype = cos.dtype
    alive = jnp.diagonal(cos) > 0.5  # unit diagonal; 0 for zero rows
    eye = jnp.eye(cos.shape[0], dtype=dtype)
    c = cos + reg * eye
    ones = jnp.ones(cos.shape[:1], dtype)

    def step(b):
        inv = jnp.where(alive, 1 / b, 0)
        grad = jnp.where(alive, c @ b - inv, 0)
        hess = jnp.where(alive[:, None] & alive[None, :], c + jnp.diag(inv * inv), eye)
        delta = -psd_solve(hess, grad[:, None])[:, 0]
        dec2 = jnp.maximum(-(grad @ delta), 0)
        lam = jnp.sqrt(dec2)
        t = jnp.where(lam > 0.25, 1 / (1 + lam), 1)
        # rounding in a near-singular hess: never let a coordinate drop below b / 10
        b_new = jnp.where(alive, jnp.maximum(b + t * delta, b / 10), 0)
        return b_new, dec2

    def cond(s):
        _, dec2, it = s
        return (dec2 / 2 > tol) & (it < max_iter)

    def body(s):
        b, _, it = s
        b, dec2 = step(b)
        return b, dec2, it + 1

    b0 = jnp.where(alive, ones, 0)
    b, dec2, it = jax.lax.while_loop(
        cond, body, (b0, jnp.full((), jnp.inf, dtype), jnp.array(0, jnp.int32))
    )
    residual = jnp.max(jnp.where(alive, jnp.abs(b * (c @ b) - 1), 0), initial=0.0)
    info = QPInfo(iterations=it, converged=dec2 / 2 <= tol, residual=residual)
    return b, info


@register
def nash_mtl(
    *,
    max_norm: FloatLike = 0.0,
    reg: FloatLike = 1e-8,
    tol: FloatLike | None = None,
    max_iter: IntLike = 100,
) -> Aggregator:
    """Nash-MTL: the Nash bargaining solution among the tasks.

    d = J^T a with a > 0 solving a_k (G a)_k = 1 for every task, i.e. d . g_k = 1 / a_k:
    the maximiser of sum_k log(d . g_k) over the ball ||d|| <= sqrt(K) (Navon et al.,
    Theorem 5.1). The solution is invariant to rescaling any single task gradient, and
    ||d|| = sqrt(K).

    The condition is the stationarity condition of the strictly convex
    F(b) = 1/2 b^T C b - sum log b_k on the coefficients b_k = ||g_k|| a_k of the unit
    directions (C the cosine matrix), solved by damped Newton in K dimensions (an exact
    solve, unlike the paper's sequence of convex programs); iterations, convergence flag
    and residual are kept in the state (`NashMTLState.info`).

    Degenerate tasks, where no solution exists: a zero gradient drops out (a_k = 0);
    exactly opposite gradients make F unbounded, so a small `reg` (a ridge reg * I on C)
    keeps the problem solvable: their weights grow like reg^(-1/2) and they cancel in d.
    Parallel gradients have a solution and need nothing.

    Input: per-task gradients (leaves with a leading task axis K); output: one
    params-shaped gradient.

    Args:
        max_norm: if positive, d is scaled down to this norm when longer (torchjd's and the
            official code's `max_norm`, 1.0 there; 0 disables).
        reg: ridge added to the cosine matrix (see above).
        tol: Newton stops when half the squared Newton decrement is below it (default
            1e-5 in float32, 1e-10 in float64).
        max_iter: cap on Newton steps.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.nash_mtl()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]
        [0.541, 1.307]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.nash_mtl() | optax.adam(1e-3)

    References:
        Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik, Fetaya. "Multi-Task Learning
        as a Bargaining Game". ICML 2022. https://arxiv.org/abs/2202.01017
    """
    check(max_norm, lambda v: v >= 0, f"nash_mtl: max_norm must be non-negative, got {max_norm}")
    check(reg, lambda v: v >= 0, f"nash_mtl: reg must be non-negative, got {reg}")
    tol = static(tol, "tol", "nash_mtl")

    def weights(norms, cos, state):
        del state
        beta, info = nash_weights(norms, cos, reg=reg, tol=tol, max_iter=max_iter)
        if not concrete(max_norm) or max_norm > 0:
            norm = jnp.sqrt(jnp.maximum(beta @ cos @ beta, 0))
            shrink = jnp.where(norm > max_norm, max_norm / jnp.where(norm > 0, norm, 1), 1)
            beta = beta * jnp.where(max_norm > 0, shrink, 1)
        return beta, NashMTLState(info=log_info(info))

    return gram_aggregator(weights, init=lambda params, tasks: NashMTLState(info=no_info()))
