"""Small quadratic programs in K dimensions, solved exactly inside `jit`.

The QP-based aggregators (MGDA, UPGrad, DualProj, CAGrad, DCGD) reduce to convex quadratic
programs over K task weights, K being the number of losses (a handful, at most ~16):

- `nonneg_qp`:  min_{x >= 0}             1/2 x^T G x + q^T x
- `simplex_qp`: min_{x >= 0, sum x = 1}  1/2 x^T G x + q^T x

with G symmetric positive semi-definite, possibly singular (parallel, opposite or zero task
gradients). Both run a primal active-set method of the Lawson-Hanson kind: keep a feasible
point and a set of free coordinates, minimise exactly on the free set (`psd_solve`, a
Cholesky factorisation that drops dependent columns, so singular blocks are fine), step
back to the feasible region when that minimiser leaves it, and free the coordinate with the
most negative multiplier when it does not. Each iteration is one K x K factorisation; the
loop is a `lax.while_loop` with a fixed cap, so it runs under `jit` and `vmap`. At these
sizes it typically finishes in K to 2K iterations and is exact up to rounding.

Problems are padded to 4, 8, 16, ... coordinates (`pad`: zero coordinates for
`nonneg_qp`, copies of coordinate 0 for `simplex_qp`, both exact), so that eager calls
compile the solver once per padded size rather than once per K. Inside a user's `jit`
everything is compiled together anyway.

Convergence is reported honestly, from the KKT conditions of the returned point, in
`QPInfo`: with w = G x + q (minus the simplex multiplier for `simplex_qp`), the residual is

    || min(diag_max(G) * x, w) ||_inf / max(||q||_inf, diag_max(G) * ||x||_inf)

which is zero exactly when x >= 0, w >= 0 and x_i w_i = 0 (the natural residual of the
complementarity problem, made relative). `converged` is `residual <= tol`.

**How to scale a problem.** The solvers work best when the diagonal of G is at most 1 and of
order 1, and q is of order 1: tolerances are then absolute in natural units. Do not form
G = J J^T from raw gradients (rows of norm 1e20 overflow in float32, 1e-20 underflow).
Instead take `norms, cos = pinnx.tasks.normalized_gram(grads)` and change variables to
coefficients on the unit directions u_k = g_k / ||g_k||: with beta_k = norms_k x_k the
quadratic form x^T G x is beta^T cos beta. Rescale beta by one global factor (e.g. the
largest norm) where the constraints involve the norms, solve, and map back; the aggregators
in this package then form the result with `unit_sum(beta, norms, grads)`. Zero rows have a
zero row and column in `cos`; a zero row with a zero linear term is never freed, so its
coordinate stays at its bound.

A bounded problem is required for `nonneg_qp`: q must lie in the range of G (true whenever
q = G c, as in every dual-cone projection), or at least have no negative component along
a non-negative null direction of G. An unbounded problem stops with `converged=False`.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..tasks import normalized_gram
from ._base import unit_sum

__all__ = [
    "QPInfo",
    "nonneg_qp",
    "simplex_qp",
    "psd_solve",
    "default_tol",
    "no_info",
    "log_info",
    "bucket",
    "pad",
    "unpad",
]


class QPInfo(NamedTuple):
    """What a small-QP solve did, for logging: all scalar arrays.

    Attributes:
        iterations: iterations used (one K x K factorisation each).
        converged: whether the KKT residual of the returned point is at most `tol`.
        residual: the relative KKT residual of the returned point (see the module docs).
    """

    iterations: Int[Array, ""]
    converged: Bool[Array, ""]
    residual: Float[Array, ""]


def default_tol(dtype) -> float:
    """The default relative KKT tolerance: 1e-5 in float32, 1e-10 in float64."""
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-10


def psd_solve(a: Float[Array, "k k"], rhs: Float[Array, "k m"]) -> Float[Array, "k m"]:
    """A solution of a x = rhs for a small symmetric positive semi-definite a.

    Cholesky factorisation that drops dependent columns: a pivot at most
    10 K eps max(diag a) means column j is (numerically) a combination of the earlier ones,
    so x_j is set to 0 and the rest is solved exactly. For a consistent system (rhs in the
    range of a) the result is an exact solution; no NaN for singular a. Plain `jnp` ops
    and a `fori_loop`, no LAPACK call: cheap to compile inside a loop.
    """
    k = a.shape[0]
    dtype = a.dtype
    idx = jnp.arange(k)
    thresh = 10 * k * jnp.finfo(dtype).eps * jnp.max(jnp.abs(jnp.diagonal(a)), initial=0.0)
    thresh = jnp.maximum(thresh, jnp.finfo(dtype).tiny)

    def column(j, carry):
        low, schur, kept = carry
        piv = schur[j, j]
        ok = piv > thresh
        col = jnp.where((idx >= j) & ok, schur[:, j] / jnp.sqrt(jnp.where(ok, piv, 1)), 0)
        # a dropped column becomes the unit vector e_j: x_j = rhs'_j = 0
        col = jnp.where(ok, col, (idx == j).astype(dtype))
        schur = schur - jnp.outer(col, col) * ok.astype(dtype)
        schur = jnp.where(ok, schur, jnp.where((idx[:, None] == j) | (idx[None, :] == j), 0,
                                               schur))
        return low.at[:, j].set(col), schur, kept.at[j].set(ok)

    low, _, kept = jax.lax.fori_loop(
        0, k, column, (jnp.zeros_like(a), a, jnp.zeros((k,), bool)))
    rhs = jnp.where(kept[:, None], rhs, 0)
    y = jax.lax.linalg.triangular_solve(low, rhs, left_side=True, lower=True)
    return jax.lax.linalg.triangular_solve(low, y, left_side=True, lower=True,
                                           transpose_a=True)


def _free_solve(gram, linear, free, simplex, tol):
    """Minimiser on the free set (other coordinates 0), or a descent ray if there is none.

    nonneg: G_FF z = -q_F. simplex: minimise on {sum z = 1}; on that plane G and
    G + mu 1 1^T (mu = max diag G, or 1 if G = 0) give the same problem up to a constant,
    and the latter is positive definite unless the free rows are affinely dependent, so
    z = z0 + nu y with G'_FF z0 = -q_F, G'_FF y = 1, nu = (1 - sum z0) / sum y.
    The fixed coordinates get a (scaled) identity block: shapes never depend on the free set.

    Affinely dependent free rows (simplex: e.g. three collinear points) leave a null
    direction n of G'_FF (J^T n = 0, sum n = 0). If q . n != 0 the objective is linear and
    unbounded along n on the plane: there is no minimiser on the face, and the step must
    follow the descent ray -sign(q . n) n to the first bound instead. Returns
    `(z, d, ray)`: d is that unit-l1 ray and `ray` says whether to follow it.
    """
    dtype = gram.dtype
    k = gram.shape[0]
    if simplex:
        top = jnp.max(jnp.diagonal(gram))
        gram = gram + jnp.where(top > jnp.finfo(dtype).tiny, top, 1)
    mask = free[:, None] & free[None, :]
    # the fixed block is an identity scaled like the free block, so that it does not move
    # psd_solve's relative pivot threshold
    top = jnp.max(jnp.where(free, jnp.diagonal(gram), 0), initial=0.0)
    fill = jnp.where(top > jnp.finfo(dtype).tiny, top, 1)
    m = jnp.where(mask, gram, jnp.diag(jnp.where(free, 0, fill)))
    no_ray = jnp.zeros((k,), dtype), jnp.array(False)
    if not simplex:
        rhs = jnp.where(free, -linear, 0)
        return (jnp.where(free, psd_solve(m, rhs[:, None])[:, 0], 0),) + no_ray
    # q + c 1 is the same problem on the plane: remove q's mean on F, so that z0 stays
    # small and z0 + nu y does not cancel
    count = jnp.maximum(jnp.sum(free), 1).astype(dtype)
    rhs = jnp.where(free, -(linear - jnp.sum(jnp.where(free, linear, 0)) / count), 0)
    # the columns of m as extra right-hand sides: a dropped column j (psd_solve zeroes its
    # row, so sol[j, j] = 0) is m_kept c_j; n_j = e_j - c_j is then a null direction
    sol = psd_solve(m, jnp.concatenate([rhs[:, None], free.astype(dtype)[:, None], m], axis=1))
    z0, y = jnp.where(free[:, None], sol[:, :2], 0).T
    total = jnp.sum(y)
    z = z0 + (1 - jnp.sum(z0)) / jnp.where(total > 0, total, 1) * y
    total = jnp.sum(z)
    z = jnp.where(total > 0, z / jnp.where(total > 0, total, 1), z)

    coef = sol[:, 2:]
    dropped = free & (jnp.diagonal(coef) < 0.5)
    null = jnp.where(free[:, None], jnp.eye(k, dtype=dtype) - coef, 0)
    null = null / jnp.maximum(jnp.sum(jnp.abs(null), axis=0), jnp.finfo(dtype).tiny)[None, :]
    slope = jnp.where(dropped, linear @ null, 0)
    j = jnp.argmax(jnp.abs(slope))
    scale = jnp.maximum(jnp.max(jnp.abs(linear), initial=0.0), jnp.finfo(dtype).tiny)
    ray = jnp.abs(slope[j]) > tol * scale
    return z, -jnp.sign(slope[j]) * null[:, j], ray


def _multipliers(gram, linear, x, simplex):
    """w = G x + q, shifted by the simplex multiplier so that w_i = 0 where x_i > 0."""
    w = gram @ x + linear
    if simplex:
        w = w - jnp.dot(x, w) / jnp.maximum(jnp.sum(x), jnp.finfo(x.dtype).tiny)
    return w


def _kkt(gram, linear, x, simplex):
    w = _multipliers(gram, linear, x, simplex)
    dmax = jnp.maximum(jnp.max(jnp.diagonal(gram), initial=0.0), jnp.finfo(x.dtype).tiny)
    scale = jnp.maximum(jnp.max(jnp.abs(linear), initial=0.0), dmax * jnp.max(x, initial=0.0))
    scale = jnp.maximum(scale, jnp.finfo(x.dtype).tiny)
    return jnp.max(jnp.abs(jnp.minimum(dmax * x, w)), initial=0.0) / scale, w, scale


def _active_set(gram, linear, tol, max_iter, simplex):
    k = gram.shape[0]
    dtype = gram.dtype
    idx = jnp.arange(k, dtype=jnp.int32)
    if simplex:
        # start at the best vertex
        start = jnp.argmin(0.5 * jnp.diagonal(gram) + linear).astype(jnp.int32)
        x0 = (idx == start).astype(dtype)
        free0 = idx == start
    else:
        x0 = jnp.zeros((k,), dtype)
        free0 = jnp.zeros((k,), bool)
    banned0 = jnp.zeros((k,), bool)
    # state: x, free, banned, last entered index (-1: none), iterations, done
    init = (x0, free0, banned0, jnp.array(-1, jnp.int32), jnp.array(0, jnp.int32),
            jnp.array(False))

    def cond(s):
        *_, it, done = s
        return (~done) & (it < max_iter)

    def body(s):
        x, free, banned, last, it, _ = s
        z, ray_dir, ray = _free_solve(gram, linear, free, simplex, tol)
        bad = free & (z <= 0)
        last_bad = (last >= 0) & bad[jnp.maximum(last, 0)]
        # a freed coordinate stayed positive: the entering step worked, forget the bans
        banned = jnp.where((last >= 0) & ~last_bad, jnp.zeros_like(banned), banned)

        # -- z is feasible: accept it, then free the most violated bound (if any)
        _, w, scale = _kkt(gram, linear, z, simplex)
        cand = jnp.where(~free & ~banned, w, jnp.inf)
        j = jnp.argmin(cand).astype(jnp.int32)
        enter = cand[j] < -tol * scale
        free_acc = free | ((idx == j) & enter)
        last_acc = jnp.where(enter, j, -1).astype(jnp.int32)

        # -- z is infeasible: move from x towards z until the first bound is hit
        gap = x - z
        ratio = jnp.where(bad & (gap > 0), x / jnp.where(gap > 0, gap, 1), 0)
        ratio = jnp.where(bad, ratio, jnp.inf)
        alpha = jnp.clip(jnp.min(ratio), 0, 1)
        x_step = x + alpha * (z - x)
        leave = (bad & (ratio <= alpha)) | (free & (x_step <= 0))
        x_step = jnp.where(free & ~leave, jnp.maximum(x_step, 0), jnp.zeros_like(x))
        if simplex:  # stay on the simplex despite rounding
            x_step = x_step / jnp.maximum(jnp.sum(x_step), jnp.finfo(dtype).tiny)
        free_step = free & ~leave
        # the coordinate just freed cannot rise (rounding on a near-singular block):
        # undo its entry and ban it until another coordinate enters successfully
        lb = last_bad & (idx == last)
        x_step = jnp.where(last_bad, x, x_step)
        free_step = jnp.where(last_bad, free & ~lb, free_step)
        banned_step = banned | lb

        feasible = ~jnp.any(bad)
        x_new = jnp.where(feasible, z, x_step)
        free_new = jnp.where(feasible, free_acc, free_step)
        banned_new = jnp.where(feasible, banned, banned_step)
        last = jnp.where(feasible, last_acc, -1).astype(jnp.int32)
        done = feasible & ~enter

        # -- no minimiser on the face (simplex, affinely dependent rows): follow the
        # descent ray to the first bound; the coordinates that reach 0 leave
        neg = free & (ray_dir < 0)
        reach = jnp.where(neg, x / jnp.where(neg, -ray_dir, 1), jnp.inf)
        step = jnp.min(reach)
        x_ray = jnp.where(free & ~(neg & (reach <= step)),
                          jnp.maximum(x + step * ray_dir, 0), 0)
        x_ray = x_ray / jnp.maximum(jnp.sum(x_ray), jnp.finfo(dtype).tiny)
        x = jnp.where(ray, x_ray, x_new)
        free = jnp.where(ray, free & ~(neg & (reach <= step)), free_new)
        banned = jnp.where(ray, jnp.zeros_like(banned), banned_new)
        last = jnp.where(ray, -1, last).astype(jnp.int32)
        done = done & ~ray
        return x, free, banned, last, it + 1, done

    x, _, _, _, it, _ = jax.lax.while_loop(cond, body, init)
    residual, _, _ = _kkt(gram, linear, x, simplex)
    return x, QPInfo(iterations=it, converged=residual <= tol, residual=residual)


def bucket(k: int) -> int:
    """The padded problem size for K tasks: 4, 8, 16, 32, ... (see `pad`)."""
    return max(4, 1 << (k - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("size", "simplex"))
def pad(gram, linear, size, simplex):
    """An equivalent problem of dimension `size` >= K, so that one compilation serves every
    K up to it. `nonneg_qp`: zero rows, columns and linear terms (a zero coordinate never
    leaves its bound). `simplex_qp`: copies of coordinate 0 (a repeated vertex changes
    nothing; fold the copies' weights back with `unpad`). `linear` may be batched (M, K).
    """
    k = gram.shape[0]
    src = jnp.concatenate([jnp.arange(k), jnp.zeros((size - k,), int)])
    gram, linear = gram[src][:, src], linear[..., src]
    if not simplex:
        real = jnp.arange(size) < k
        gram = jnp.where(real[:, None] & real[None, :], gram, 0)
        linear = jnp.where(real, linear, 0)
    return gram, linear


@functools.partial(jax.jit, static_argnames=("k", "simplex"))
def unpad(x, k, simplex):
    """The solution of the original K-dimensional problem from that of `pad`'s problem."""
    if simplex:
        x = x.at[..., 0].add(jnp.sum(x[..., k:], axis=-1))
    return x[..., :k]


# jitted once per (padded size, batch, dtype, settings): eager calls reuse it for every K
@functools.partial(jax.jit, static_argnames=("tol", "max_iter", "simplex"))
def _solve_padded(gram, linears, tol, max_iter, simplex):
    if linears.shape[0] == 1:
        x, info = _active_set(gram, linears[0], tol, max_iter, simplex)
        return x[None], jax.tree.map(lambda a: a[None], info)
    return jax.lax.map(lambda q: _active_set(gram, q, tol, max_iter, simplex), linears)


@functools.partial(jax.jit, static_argnames=("size", "simplex"))
def _pad_batch(gram, batch, size, simplex):
    m = batch.shape[0]
    if m > 1:  # pad the batch too (with copies of the first problem)
        batch = batch[jnp.concatenate([jnp.arange(m), jnp.zeros((bucket(m) - m,), int)])]
    return pad(gram, batch, size, simplex)


@functools.partial(jax.jit, static_argnames=("k", "m", "simplex"))
def _unpad_batch(x, info, k, m, simplex):
    return unpad(x[:m], k, simplex), jax.tree.map(lambda a: a[:m], info)


def _solve(gram, linear, tol, max_iter, simplex, who):
    gram = jnp.asarray(gram)
    linear = jnp.asarray(linear)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"{who}: gram must be a square (K, K) matrix, got shape {gram.shape}")
    k = gram.shape[0]
    if linear.ndim not in (1, 2) or linear.shape[-1] != k:
        raise ValueError(
            f"{who}: linear must have shape ({k},) or (M, {k}) to match gram, got "
            f"{linear.shape}"
        )
    if not jnp.issubdtype(gram.dtype, jnp.floating):
        raise ValueError(f"{who}: gram must be floating point, got {gram.dtype}")
    if linear.dtype != gram.dtype:
        raise ValueError(
            f"{who}: gram and linear must share a dtype, got {gram.dtype} and {linear.dtype}"
        )
    size = bucket(k)
    tol = default_tol(gram.dtype) if tol is None else float(tol)
    max_iter = 4 * size + 10 if max_iter is None else int(max_iter)
    batch = linear.reshape(-1, k)
    m = batch.shape[0]
    # pad, solve and unpad are three jitted calls, so that eager calls with K tasks compile
    # the (slow to compile) solver once per padded size, not once per K
    g, q = _pad_batch(gram, batch, size=size, simplex=simplex)
    x, info = _solve_padded(g, q, tol=tol, max_iter=max_iter, simplex=simplex)
    x, info = _unpad_batch(x, info, k=k, m=m, simplex=simplex)
    if linear.ndim == 1:
        return x[0], jax.tree.map(lambda a: a[0], info)
    return x, info


def nonneg_qp(
    gram: Float[Array, "k k"],
    linear: Float[Array, "*batch k"],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[Float[Array, "*batch k"], QPInfo]:
    """Solve min_{x >= 0} 1/2 x^T G x + q^T x for a small symmetric PSD G, inside `jit`.

    A primal active-set method (Lawson-Hanson type): from x = 0, repeatedly minimise exactly
    on the free coordinates (`psd_solve`, which handles singular G from parallel or zero
    task rows), stepping back to the boundary when that minimiser has a non-positive
    coordinate, and freeing the coordinate with the most negative gradient (G x + q)_j
    otherwise. It stops when no gradient entry is below -tol * scale (see the module docs
    for the scale and the residual reported in `QPInfo`).

    For a G with parallel rows the minimiser x need not be unique; G x (hence the aggregate
    J^T x) is. Scale the problem as described in the module docs (diag(G) <= 1). Problems
    are padded to 4, 8, 16, ... coordinates (`pad`, exact), so one compilation serves
    several K.

    Args:
        gram: (K, K) symmetric positive semi-definite matrix G.
        linear: (K,) linear term q, or (M, K) for M problems with the same G (solved one
            after the other, `lax.map`). Each problem must be bounded (e.g. q in the range
            of G).
        tol: relative KKT tolerance (see `QPInfo.residual`); default 1e-5 in float32, 1e-10
            in float64.
        max_iter: cap on active-set iterations (static); default 4 B + 10 for the padded
            size B.

    Returns:
        `(x, info)`: the minimiser (x >= 0 exactly), shaped like `linear`, and a `QPInfo`
        (with a leading axis M for a batch).

    Example:
        >>> x, info = nonneg_qp(jnp.array([[1.0, -0.5], [-0.5, 1.0]]), jnp.array([-1.0, 0.5]))
        >>> x   # [1.0, 0.0]: the second bound is active
    """
    return _solve(gram, linear, tol, max_iter, False, "nonneg_qp")


def simplex_qp(
    gram: Float[Array, "k k"],
    linear: Float[Array, "*batch k"],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> tuple[Float[Array, "*batch k"], QPInfo]:
    """Solve min 1/2 x^T G x + q^T x over the probability simplex (x >= 0, sum x = 1).

    The same active-set method as `nonneg_qp`, with the equality constraint eliminated on
    the free set (see `_free_solve`); it starts from the best vertex. The problem is always
    bounded. With q = 0, J^T x is the minimum-norm point of the convex hull of the rows of
    J (MGDA). The KKT residual uses w = G x + q - (x . (G x + q)) 1, whose entries are zero
    on the support and non-negative elsewhere at the solution.

    Args:
        gram: (K, K) symmetric positive semi-definite matrix G.
        linear: (K,) linear term q, or (M, K) for M problems with the same G.
        tol: relative KKT tolerance; default 1e-5 in float32, 1e-10 in float64.
        max_iter: cap on active-set iterations (static); default 4 B + 10 for the padded
            size B.

    Returns:
        `(x, info)`: the minimiser on the simplex, shaped like `linear`, and a `QPInfo`.

    Example:
        >>> x, info = simplex_qp(jnp.array([[1.0, -1.0], [-1.0, 4.0]]), jnp.zeros(2))
        >>> x   # [5/7, 2/7]: the min-norm point of the segment between the two rows
    """
    return _solve(gram, linear, tol, max_iter, True, "simplex_qp")


def no_info() -> QPInfo:
    """The `QPInfo` a state holds before the first solve (fixed dtypes: int32, bool,
    float32), so that the state's structure never changes."""
    return QPInfo(iterations=jnp.zeros((), jnp.int32), converged=jnp.zeros((), bool),
                  residual=jnp.zeros((), jnp.float32))


@jax.jit
def log_info(info: QPInfo) -> QPInfo:
    """Summarise one or many (vmapped) solves for a state: the most iterations, whether all
    converged, the largest residual; cast to the dtypes of `no_info`."""
    return QPInfo(iterations=jnp.max(info.iterations).astype(jnp.int32),
                  converged=jnp.all(info.converged),
                  residual=jnp.max(info.residual).astype(jnp.float32))


# Helpers of the QP aggregators. Jitted so that an eager update compiles a few small
# functions per number of tasks and layout (inside a user's jit they are simply inlined).
task_stats = jax.jit(normalized_gram)
unit_combination = jax.jit(unit_sum)


@jax.jit
def relative_norms(norms: Float[Array, " tasks"]) -> tuple[Array, Array]:
    """(largest norm, norms / largest norm); the ratios are 0 when every row is zero."""
    top = jnp.max(norms)
    safe = jnp.where(top > 0, top, jnp.ones_like(top))
    return top, jnp.where(top > 0, norms / safe, jnp.zeros_like(norms))


@jax.jit
def scaled_gram(norms: Float[Array, " tasks"], cos: Float[Array, "tasks tasks"]) -> Array:
    """G / max_k ||g_k||^2 = outer(m, m) * cos with m = norms / max norm: diag(G) <= 1."""
    _, m = relative_norms(norms)
    return cos * jnp.outer(m, m)
