"""Small quadratic programs in K dimensions, solved exactly inside `jit`.

The QP-based aggregators (MGDA, UPGrad, DualProj, CAGrad, DCGD) reduce to convex quadratic
programs over K task weights, K being the number of losses (a handful, at most ~16):

- `nonneg_qp`:  min_{x >= 0}             1/2 x^T G x + q^T x
- `simplex_qp`: min_{x >= 0, sum x = 1}  1/2 x^T G x + q^T x

with G symmetric positive semi-definite, possibly singular (parallel, opposite or zero task
gradients). Both run a primal active-set method of the Lawson-Hanson kind: keep a feasible
point and a set of free coordinates, minimise exactly on the free set (`psd_solve`, a
Cholesky factorisation that drops dependent columns, so singular blocks are fine), step back
to the feasible region when that minimiser leaves it, and free the coordinate with the most
negative multiplier (among those below -tol on their own scale, see below) when it does not.
Each iteration is one K x K factorisation; the loop is a `lax.while_loop` with a fixed cap,
so it runs under `jit` and `vmap`. At these sizes it typically finishes in K to 2K
iterations.

The loop runs on the equilibrated problem: with r_i = sqrt(max(G_ii, tau)) rounded to a
power of two (tau = tiny / eps, the dtype's smallest normal number over its epsilon: 1e-31
in float32, 1e-292 in float64), y = r x, G' = G / (r r^T), q' = q / r and, for the simplex,
the constraint sum_i y_i / r_i = 1. The scaling is exact and G' has a diagonal in [1/2, 2),
so that a task whose gradient is 1e-5 times another's is solved to the same relative
accuracy (a global scale would take its multipliers, 1e-10 of the largest, for zero).

Problems are padded to 4, 8, 16, ... coordinates (`pad`: zero coordinates for
`nonneg_qp`, copies of coordinate 0 for `simplex_qp`, both exact), so that eager calls
compile the solver once per padded size rather than once per K. Inside a user's `jit`
everything is compiled together anyway.

**What is guaranteed.** Let w = G x + q (for `simplex_qp` minus the multiplier
lambda = x . (G x + q), so that w_i = 0 on the support of a solution). The returned x is
feasible (x >= 0 exactly; sum x = 1 to rounding), and `QPInfo.residual` is

    max_i  max(-w_i, [x_i > 0] |w_i|) / S_i,
    S_i = max(|q_i|, r_i Q, r_i max_j r_j x_j, Lambda, tau),

each coordinate's violation of the KKT conditions (w_i >= 0, and w_i = 0 where x_i > 0)
relative to the size of the terms of the equilibrated problem, scaled back to coordinate
i: its own linear term q_i; the largest linear term Q = max_j |q_j| / r_j over the rows
with G_jj >= tau (a linear term below tol Q is as good as zero, as it is for every solver
with a relative tolerance: this keeps rounding noise in q, e.g. from cancellation in
q = G c, from reading as a gradient); the products G_ij x_j (at most r_i r_j x_j, G being
positive semi-definite); for `simplex_qp` the terms of the multiplier
(Lambda = max_j x_j max(r_j max_k r_k x_k, |q_j|); Lambda = 0 for `nonneg_qp`); and at
least tau. `converged` is `residual <= tol`. It follows that for every minimiser x*

    f(x) - f(x*) <= residual * sum_i S_i (x_i + x*_i),

(f the objective) and, since (x - x*)' G (x - x*) = 2 (w . (x - x*) - f(x) + f(x*)), that
G x (the aggregate J^T x) is as close to G x* as that allows. Both hold for the data as
read: entries below the smallest normal number (`tiny`) are read as zero, as the hardware
flushes them, so terms below tau = tiny / eps carry no correct digit and rows with
G_ii < tau are judged at that resolution; and the residual is computed in working
precision, within about (K + 1)^2 eps of its exact value.

**What is attainable.** A solve in working precision leaves an error in w of about
eps / sqrt(lambda_min) of the scales, lambda_min the smallest eigenvalue of the
equilibrated G on the free set, and a column whose pivot is at rounding level (10 K eps)
counts as dependent and is dropped. The default tolerances (1e-5 in float32, 1e-10 in
float64) are therefore attainable when every principal submatrix of the equilibrated G (for
`simplex_qp`, restricted to the plane) either has lambda_min >= (10 eps / tol)^2 (1.4e-2
in float32, 4.9e-10 in float64; for two rows, an angle above 0.17 and 3e-5 rad) or is
singular to rounding along a null direction v that is a dependency of the data to the
tolerance (G' v and, for `nonneg_qp`, q' . v at most tol / 10, as for parallel or
opposite rows). This is sufficient, not necessary. Elsewhere (nearly parallel rows, a
spectrum reaching 1e-12, a diagonal entry that underflowed) the solver may stop with
`converged=False` and the residual it reached; the bound above holds with that residual.
When the free columns are dependent and the objective slopes along their null direction
(the simplex over rows v, 0, -v with a sloped q; a coordinate that can only enter in
exchange for a nearly parallel one), the step follows that descent ray to the first bound.

**How to scale a problem.** The solvers work best when the diagonal of G is at most 1 and
q is of order 1. Do not form G = J J^T from raw gradients (rows of norm 1e20 overflow in
float32, 1e-20 underflow). Instead take `norms, cos = pinnx.tasks.normalized_gram(grads)`
and change variables to coefficients on the unit directions u_k = g_k / ||g_k||: with
beta_k = norms_k x_k the quadratic form x^T G x is beta^T cos beta. Rescale beta by one
global factor (e.g. the largest norm) where the constraints involve the norms, solve, and
map back; the aggregators in this package then form the result with `unit_combination`.
Zero rows have a zero row and column in `cos`; a zero row with a zero linear term is never
freed, so its coordinate stays at its bound.

A bounded problem is required for `nonneg_qp`: q must lie in the range of G (true whenever
q = G c, as in every dual-cone projection), or at least have no negative component along
a non-negative null direction of G. An unbounded problem stops with `converged=False`.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._gram import relative_norms

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
        residual: the KKT residual of the returned point, max_i of max(-w_i, |w_i| if
            x_i > 0) / S_i: each multiplier's violation relative to the size S_i of the
            terms that make it up (module docs of `pinnx.combine._qp`).
    """

    iterations: Int[Array, ""]
    converged: Bool[Array, ""]
    residual: Float[Array, ""]


def default_tol(dtype) -> float:
    """The default relative KKT tolerance: 1e-5 in float32, 1e-10 in float64."""
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-10


def _cholesky(a):
    """Cholesky factor (no pivoting) of a small PSD a that drops dependent columns (see
    `psd_solve`): `(low, kept)`, a dropped column and its row being e_j."""
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
        # a dropped column becomes the unit vector e_j, and its row the unit row e_j^T
        # (below), so that coordinate j is decoupled: x_j = rhs'_j = 0, and the kept
        # coordinates solve the kept system exactly
        col = jnp.where(ok, col, (idx == j).astype(dtype))
        schur = schur - jnp.outer(col, col) * ok.astype(dtype)
        schur = jnp.where(ok, schur, jnp.where((idx[:, None] == j) | (idx[None, :] == j), 0,
                                               schur))
        return low.at[:, j].set(col), schur, kept.at[j].set(ok)

    low, _, kept = jax.lax.fori_loop(
        0, k, column, (jnp.zeros_like(a), a, jnp.zeros((k,), bool)))
    # (only earlier columns write into row j, so this clears it after the fact)
    low = jnp.where(kept[:, None] | (idx[:, None] == idx[None, :]), low, 0)
    return low, kept


def _cholesky_solve(low, kept, rhs):
    """Solve with `_cholesky`'s factor: 0 on the dropped coordinates."""
    rhs = jnp.where(kept[:, None], rhs, 0)
    y = jax.lax.linalg.triangular_solve(low, rhs, left_side=True, lower=True)
    return jax.lax.linalg.triangular_solve(low, y, left_side=True, lower=True,
                                           transpose_a=True)


def psd_solve(a: Float[Array, "k k"], rhs: Float[Array, "k m"]) -> Float[Array, "k m"]:
    """A solution of a x = rhs for a small symmetric positive semi-definite a.

    Cholesky factorisation that drops dependent columns: a pivot at most
    10 K eps max(diag a) means column j is (numerically) a combination of the earlier ones,
    so x_j is set to 0 and the rest is solved exactly (the kept columns' system). For a
    consistent system (rhs in the range of a) the result is an exact solution; no NaN for
    singular a. Plain `jnp` ops and a `fori_loop`, no LAPACK call: cheap to compile inside
    a loop.
    """
    return _cholesky_solve(*_cholesky(a), rhs)


def _scales(gram):
    """Powers of two r_i with r_i^2 within a factor 2 of max(G_ii, tau), tau = tiny / eps:
    dividing G by r r^T (exact) gives the equilibrated matrix, diagonal in [1/2, 2) except
    for rows below the resolution limit tau."""
    info = jnp.finfo(gram.dtype)
    d = jnp.maximum(jnp.diagonal(gram), info.tiny / info.eps)
    _, e = jnp.frexp(d)  # d = m 2^e with 1/2 <= m < 1
    return jnp.ldexp(jnp.ones_like(d), e // 2)


def _free_solve(gram, linear, a, free):
    """Minimiser on the free set (other coordinates 0), in the scaled coordinates of
    `_active_set`.

    nonneg (a = None): G_FF z = -q_F. simplex: minimise on the plane {a . z = 1} by
    eliminating the free coordinate p with the largest a_p: z = e_p / a_p + T u, where T's
    column j is e_j - (a_j / a_p) e_p (exact: a is a vector of powers of two, and the
    ratios are at most 1, so nothing cancels however different the rows' norms), and u
    minimises the reduced problem, (T' G T) u = -T' (G e_p / a_p + q) on F minus p. The
    fixed coordinates (and p) get a scaled identity block: shapes never depend on the free
    set.

    The factorisation drops a column j that depends on the others (a zero pivot: a row
    parallel to another one, or, for the simplex, affinely dependent rows); the solution of
    the other columns' system for column j gives a null direction n_j = e_j - c_j of the
    reduced matrix, T n_j in these coordinates (G T n_j ~ 0, a . T n_j = 0); see `_ray`.
    Returns `(z, factor, dropped)`: the minimiser over the kept columns, what `_ray` needs
    and the dropped columns.
    """
    k = gram.shape[0]
    tiny = jnp.finfo(gram.dtype).tiny
    idx = jnp.arange(k)
    if a is None:
        trans, reduced, rhs = None, free, jnp.where(free, -linear, 0)
        h = gram
    else:
        p = jnp.argmax(jnp.where(free, a, 0))
        ratio = jnp.where(free, a / a[p], 0)
        trans = jnp.eye(k, dtype=gram.dtype) - jnp.where((idx == p)[:, None], ratio, 0)
        reduced = free & (idx != p)
        start = jnp.where(idx == p, 1 / a[p], 0)
        h = trans.T @ gram @ trans
        rhs = jnp.where(reduced, -(trans.T @ (gram @ start + linear)), 0)
    mask = reduced[:, None] & reduced[None, :]
    # the fixed block is an identity scaled like the free block, so that it does not move
    # the relative pivot threshold of the factorisation
    top = jnp.max(jnp.where(reduced, jnp.diagonal(h), 0), initial=0.0)
    fill = jnp.where(top > tiny, top, 1)
    m = jnp.where(mask, h, jnp.diag(jnp.where(reduced, 0, fill)))
    low, kept = _cholesky(m)
    u = jnp.where(reduced, _cholesky_solve(low, kept, rhs[:, None])[:, 0], 0)
    z = u if a is None else start + trans @ u
    return z, (m, low, kept, trans, reduced), reduced & ~kept


def _ray(gram, free, factor, dropped, w, sigma, tol):
    """A descent ray along a null direction of the free block, or none.

    If the objective slopes along a null direction n_j (slope = w . n_j, w the multipliers
    at the minimiser z over the kept columns, where w vanishes on them: the slope is about
    w_j there), it decreases linearly along the ray: there is no minimiser on the face
    (simplex: rows v, 0, -v with a sloped q), or coordinate j can only rise in exchange for
    a nearly parallel one (rows at an angle too small for the factorisation). The step then
    follows the steepest such ray (among those steeper than tol sigma_j) to the first bound,
    where one coordinate leaves. Returns `(d, ray, curv, slope)`: the unit-l1 descent
    direction, whether to follow it, the curvature d' G d (a nearly dependent column has a
    small positive pivot) and |slope|; a ray with no bound (an unbounded problem) is never
    followed. Computed only when a column was dropped (`lax.cond`): the common case pays
    nothing.
    """

    def follow(_):
        m, low, kept, trans, reduced = factor
        # the columns of m as right-hand sides: a dropped column j (its row is zero in
        # the solve, so coef[j, j] = 0) is m_kept c_j, and n_j = e_j - c_j
        coef = _cholesky_solve(low, kept, m)
        eye = jnp.eye(m.shape[0], dtype=m.dtype)
        null = jnp.where(reduced[:, None] & dropped[None, :], eye - coef, 0)
        if trans is not None:
            null = trans @ null
        null = null / jnp.maximum(jnp.sum(jnp.abs(null), axis=0),
                                  jnp.finfo(m.dtype).tiny)[None, :]
        slope = jnp.where(dropped, w @ null, 0)
        steep = jnp.abs(slope) > tol * sigma
        j = jnp.argmax(jnp.where(steep, jnp.abs(slope), -1))
        d = -jnp.sign(slope[j]) * null[:, j]
        curv = jnp.maximum(d @ gram @ d, 0)
        ray = steep[j] & jnp.any(free & (d < 0))
        return d, ray, curv, jnp.abs(slope[j])

    def none(_):
        zero = jnp.zeros((), w.dtype)
        return jnp.zeros_like(w), jnp.array(False), zero, zero

    return jax.lax.cond(jnp.any(dropped), follow, none, None)


def _multipliers(gram, linear, y, a):
    """w = G y + q, shifted by the simplex multiplier so that w_i = 0 where y_i > 0."""
    w = gram @ y + linear
    if a is not None:
        w = w - jnp.dot(y, w) / jnp.maximum(jnp.dot(a, y), jnp.finfo(y.dtype).tiny) * a
    return w


def _kkt(gram, linear, y, a, floor):
    """Relative KKT residual of y, the multipliers w and their scales (scaled coordinates,
    see the module docs): w_i must be >= 0, and 0 where y_i > 0, up to tol * sigma_i."""
    w = _multipliers(gram, linear, y, a)
    top = jnp.max(y, initial=0.0)
    sigma = jnp.maximum(jnp.abs(linear), top)
    if a is not None:  # the terms y_j (G y + q)_j of the multiplier, times a_i
        sigma = jnp.maximum(sigma, a * jnp.max(y * jnp.maximum(top, jnp.abs(linear))))
    sigma = jnp.maximum(sigma, floor)
    violation = jnp.maximum(-w, jnp.where(y > 0, jnp.abs(w), 0))
    return jnp.max(violation / sigma, initial=0.0), w, sigma


def _active_set(gram, linear, tol, max_iter, simplex):
    """The active-set loop on the equilibrated problem: y = r x, G' = G / (r r^T),
    q' = q / r and, for the simplex, the constraint a . y = 1 with a = 1 / r (all exact:
    r is a vector of powers of two, see `_scales`)."""
    k = gram.shape[0]
    dtype = gram.dtype
    info = jnp.finfo(dtype)
    idx = jnp.arange(k, dtype=jnp.int32)
    r = _scales(gram)
    g = gram / r[:, None] / r[None, :]
    limit = info.max / (4 * k)  # a huge q_i on a zero row must not overflow to inf
    q = jnp.clip(linear / r, -limit, limit)
    a = 1 / r if simplex else None
    # S_i >= r_i Q (Q the largest linear term of the equilibrated problem over the rows
    # above the resolution limit) and S_i >= tau
    tau = info.tiny / info.eps
    top_q = jnp.max(jnp.where(jnp.diagonal(gram) >= tau, jnp.abs(q), 0), initial=0.0)
    floor = jnp.maximum(tau / r, top_q)
    if simplex:
        # start at the best vertex
        start = jnp.argmin(0.5 * jnp.diagonal(gram) + linear).astype(jnp.int32)
        y0 = jnp.where(idx == start, r, 0)
        free0 = idx == start
    else:
        y0 = jnp.zeros((k,), dtype)
        free0 = jnp.zeros((k,), bool)
    banned0 = jnp.zeros((k,), bool)
    # state: y, free, banned, last entered index (-1: none), iterations, done
    init = (y0, free0, banned0, jnp.array(-1, jnp.int32), jnp.array(0, jnp.int32),
            jnp.array(False))

    def cond(s):
        *_, it, done = s
        return (~done) & (it < max_iter)

    def body(s):
        y, free, banned, last, it, _ = s
        z, factor, dropped = _free_solve(g, q, a, free)
        _, w, sigma = _kkt(g, q, z, a, floor)
        ray_dir, ray, curv, slope = _ray(g, free, factor, dropped, w, sigma, tol)
        bad = free & (z <= 0)
        last_bad = (last >= 0) & bad[jnp.maximum(last, 0)]
        # a freed coordinate stayed positive: the entering step worked, forget the bans
        banned = jnp.where((last >= 0) & ~last_bad, jnp.zeros_like(banned), banned)

        # -- z is feasible: accept it, then free a violated bound (if any): among the
        # coordinates whose multiplier is below -tol on its own scale, the one of steepest
        # descent in the equilibrated coordinates (the most negative w; its scale only
        # decides whether it may enter, so nearly equal candidates are still told apart)
        eligible = ~free & ~banned & (w < -tol * sigma)
        j = jnp.argmin(jnp.where(eligible, w, jnp.inf)).astype(jnp.int32)
        enter = jnp.any(eligible)
        free_acc = free | ((idx == j) & enter)
        last_acc = jnp.where(enter, j, -1).astype(jnp.int32)

        # -- z is infeasible: move from y towards z until the first bound is hit
        gap = y - z
        ratio = jnp.where(bad & (gap > 0), y / jnp.where(gap > 0, gap, 1), 0)
        ratio = jnp.where(bad, ratio, jnp.inf)
        alpha = jnp.clip(jnp.min(ratio), 0, 1)
        y_step = y + alpha * (z - y)
        leave = (bad & (ratio <= alpha)) | (free & (y_step <= 0))
        y_step = jnp.where(free & ~leave, jnp.maximum(y_step, 0), jnp.zeros_like(y))
        if simplex:  # stay on the simplex despite rounding
            y_step = y_step / jnp.maximum(jnp.dot(a, y_step), info.tiny)
        free_step = free & ~leave
        # the coordinate just freed cannot rise (rounding on a near-singular block):
        # undo its entry and ban it until another coordinate enters successfully
        lb = last_bad & (idx == last)
        y_step = jnp.where(last_bad, y, y_step)
        free_step = jnp.where(last_bad, free & ~lb, free_step)
        banned_step = banned | lb

        feasible = ~jnp.any(bad)
        y_new = jnp.where(feasible, z, y_step)
        free_new = jnp.where(feasible, free_acc, free_step)
        banned_new = jnp.where(feasible, banned, banned_step)
        last = jnp.where(feasible, last_acc, -1).astype(jnp.int32)
        done = feasible & ~enter

        # -- the free columns are dependent and the objective slopes along their null
        # direction: follow the descent ray to the first bound; the coordinates that
        # reach 0 leave
        neg = free & (ray_dir < 0)
        reach = jnp.where(neg, y / jnp.where(neg, -ray_dir, 1), jnp.inf)
        step = jnp.min(reach)
        # only where the objective still decreases there (slope - curv step >= 0)
        ray = ray & (curv * step <= slope)
        y_ray = jnp.where(free & ~(neg & (reach <= step)),
                          jnp.maximum(y + step * ray_dir, 0), 0)
        if simplex:
            y_ray = y_ray / jnp.maximum(jnp.dot(a, y_ray), info.tiny)
        y = jnp.where(ray, y_ray, y_new)
        free = jnp.where(ray, free & ~(neg & (reach <= step)), free_new)
        banned = jnp.where(ray, jnp.zeros_like(banned), banned_new)
        last = jnp.where(ray, -1, last).astype(jnp.int32)
        done = done & ~ray
        return y, free, banned, last, it + 1, done

    y, _, _, _, it, _ = jax.lax.while_loop(cond, body, init)
    residual, _, _ = _kkt(g, q, y, a, floor)
    x = y / r
    if simplex:
        x = x / jnp.maximum(jnp.sum(x), info.tiny)
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
    coordinate, and otherwise freeing, among the coordinates whose gradient (G x + q)_j is
    below -tol S_j (S_j its own scale), the one of steepest descent in the equilibrated
    coordinates. It stops when there is none; `QPInfo.residual` is the KKT residual of the
    returned point, and the module docs state what it guarantees (the objective is within
    the residual times sum_i S_i (x_i + m_i) of the minimum, m any minimiser) and when the
    tolerance is attainable.

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

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.combine.functional import nonneg_qp
        >>> x, info = nonneg_qp(jnp.array([[1.0, -0.5], [-0.5, 1.0]]), jnp.array([-1.0, 0.5]))
        >>> [round(v, 3) for v in x.tolist()], bool(info.converged)   # x_1 = 0: bound active
        ([1.0, 0.0], True)
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
    on the support and non-negative elsewhere at the solution, each relative to its own
    scale (module docs): rows whose norms differ by orders of magnitude are resolved alike.

    Args:
        gram: (K, K) symmetric positive semi-definite matrix G.
        linear: (K,) linear term q, or (M, K) for M problems with the same G.
        tol: relative KKT tolerance; default 1e-5 in float32, 1e-10 in float64.
        max_iter: cap on active-set iterations (static); default 4 B + 10 for the padded
            size B.

    Returns:
        `(x, info)`: the minimiser on the simplex, shaped like `linear`, and a `QPInfo`.

    Examples:
        The weights of the min-norm point of the segment between two rows g_1, g_2 with
        Gram matrix G:

        >>> import jax.numpy as jnp
        >>> from pinnx.combine.functional import simplex_qp
        >>> x, info = simplex_qp(jnp.array([[1.0, -1.0], [-1.0, 4.0]]), jnp.zeros(2))
        >>> [round(v, 3) for v in x.tolist()]   # [5/7, 2/7]
        [0.714, 0.286]
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


@jax.jit
def scaled_gram(norms: Float[Array, " tasks"], cos: Float[Array, "tasks tasks"]) -> Array:
    """G / max_k ||g_k||^2 = outer(m, m) * cos with m = norms / max norm: diag(G) <= 1."""
    _, m = relative_norms(norms)
    return cos * jnp.outer(m, m)
