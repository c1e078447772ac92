"""The small-QP solvers of pinnx.combine._qp against scipy and a brute-force enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import examples

from pinnx.combine._qp import default_tol, nonneg_qp, psd_solve, simplex_qp

_NONNEG = jax.jit(nonneg_qp)
_SIMPLEX = jax.jit(simplex_qp)


def brute_force(gram, linear, simplex):
    """Exact minimiser by enumerating every support set S (float64, K <= 8): solve the
    equality-constrained problem on S by least squares, keep the feasible candidates that
    satisfy the KKT sign conditions off S, return the best objective and its G x."""
    k = len(linear)
    best = (0.0, np.zeros(k)) if not simplex else (np.inf, None)
    for r in range(1, k + 1):
        for support in itertools.combinations(range(k), r):
            s = list(support)
            block = gram[np.ix_(s, s)]
            if simplex:
                m = np.block([[block, np.ones((r, 1))], [np.ones((1, r)), np.zeros((1, 1))]])
                sol = np.linalg.lstsq(m, np.append(-linear[s], 1.0), rcond=None)[0][:r]
            else:
                sol = np.linalg.lstsq(block, -linear[s], rcond=None)[0]
            if np.any(sol < -1e-9):
                continue
            x = np.zeros(k)
            x[s] = np.maximum(sol, 0)
            if simplex:
                x /= x.sum()
            value = 0.5 * x @ gram @ x + linear @ x
            if value < best[0]:
                best = (value, x)
    return best


def pad(gram, linear, simplex, size=8):
    """An equivalent problem of size `size`, so that one compilation serves every K: zero
    rows for `nonneg_qp` (they never leave their bound), copies of row 0 for `simplex_qp`
    (a repeated vertex leaves the hull unchanged). Both make G singular."""
    k = len(linear)
    src = np.concatenate([np.arange(k), np.zeros(size - k, int)])
    g, q = gram[np.ix_(src, src)], linear[src]
    if not simplex:
        g[k:], g[:, k:], q[k:] = 0, 0, 0
    return g, q


def objective(gram, linear, x):
    return 0.5 * x @ gram @ x + linear @ x


@st.composite
def psd_problems(draw, max_k=8):
    """(G, c): a unit-diagonal (zero for zero rows) Gram matrix of random rows, some zero,
    parallel, opposite or nearly parallel, or an ill-conditioned spectrum; c in R^K."""
    k = draw(st.integers(1, max_k))
    kind = draw(st.sampled_from(["rows", "rows", "spectrum"]))
    if kind == "rows":
        p = draw(st.integers(1, 10))
        rows = draw(hnp.arrays(np.float64, (k, p), elements=st.floats(-10, 10, width=32)))
        for i in range(1, k):
            how = draw(st.sampled_from(["keep", "keep", "zero", "parallel", "opposite", "near"]))
            j = draw(st.integers(0, i - 1))
            if how == "zero":
                rows[i] = 0
            elif how == "parallel":
                rows[i] = 2.5 * rows[j]
            elif how == "opposite":
                rows[i] = -0.5 * rows[j]
            elif how == "near":
                rows[i] = rows[j] + 1e-6 * rows[i]
        norms = np.linalg.norm(rows, axis=1)
        units = rows / np.where(norms > 0, norms, 1)[:, None]
        gram = units @ units.T
    else:
        exps = draw(hnp.arrays(np.float64, (k,), elements=st.floats(-12, 0)))
        q, _ = np.linalg.qr(draw(hnp.arrays(np.float64, (k, k), elements=st.floats(-1, 1)))
                            + 3 * np.eye(k))
        gram = (q * 10.0**exps) @ q.T
        if draw(st.booleans()):  # exactly singular
            gram = (q[:, 1:] * 10.0 ** exps[1:]) @ q[:, 1:].T
        gram = (gram + gram.T) / 2
    # entries 0 or of order 1 (1e-220 would underflow the reference's objective values)
    entries = st.floats(-3, 3).map(lambda v: v if abs(v) > 1e-6 else 0.0)
    c = draw(hnp.arrays(np.float64, (k,), elements=entries))
    return gram, c


def read(a, dtype):
    """What the solver reads: `a` rounded to `dtype` and its subnormal entries flushed to zero
    (XLA on CPU flushes them: FTZ/DAZ), as float64. The guarantee is for this data."""
    a = np.asarray(jnp.asarray(a, dtype), np.float64)
    return np.where(np.abs(a) < np.finfo(dtype).tiny, 0.0, a)


def resolution_scales(gram, dtype):
    """r_i = sqrt(max(G_ii, tau)), tau = tiny / eps, rounded to a power of two as the solver
    does (r_i^2 within a factor 2 of max(G_ii, tau))."""
    info = np.finfo(dtype)
    _, e = np.frexp(np.maximum(np.diagonal(gram), float(info.tiny) / float(info.eps)))
    return np.ldexp(1.0, e // 2)


def kkt(gram, linear, x, simplex, dtype):
    """The documented KKT residual of x (module docs of pinnx.combine._qp), in float64:
    max_i max(-w_i, [x_i > 0] |w_i|) / S_i with S_i = max(|q_i|, r_i Q, r_i max_j r_j x_j,
    Lambda, tau), Q = max |q_j| / r_j over the rows with G_jj >= tau. Returns
    (residual, S, w)."""
    info = np.finfo(dtype)
    tau = float(info.tiny) / float(info.eps)
    r = resolution_scales(gram, dtype)
    w = gram @ x + linear
    top = np.max(r * x, initial=0.0)
    big = np.max(np.where(np.diagonal(gram) >= tau, np.abs(linear) / r, 0.0), initial=0.0)
    scale = np.maximum(np.abs(linear), r * np.maximum(top, big))
    if simplex:
        w = w - (x @ w) / x.sum()
        scale = np.maximum(scale, np.max(x * np.maximum(r * top, np.abs(linear))))
    scale = np.maximum(scale, tau)
    violation = np.maximum(-w, np.where(x > 0, np.abs(w), 0.0))
    return float(np.max(violation / scale)), scale, w


def rounding_slack(k, dtype):
    """How far the exact residual may be from the one computed in working precision: the
    K + 1 terms of w_i, each at most about S_i, summed in that precision."""
    return (k + 1) ** 2 * float(np.finfo(dtype).eps)


def check_guarantee(gram, linear, x, info, simplex, dtype, x_ref):
    """The module's guarantee, checked in float64 on the data the solver read (`gram`,
    `linear`, both padded) and its output x:
    - the reported residual is the documented one (up to rounding), and `converged` says
      whether it is at most tol;
    - hence, against any feasible x* (`x_ref`, e.g. a brute-force minimiser):
      f(x) - f(x*) <= B + delta/2 ||x - x*||^2 with B = residual sum_i S_i (x_i + x*_i)
      (the reported residual, up to rounding)
      and delta >= 0 the data's departure from positive semi-definiteness (rounding); and
      G x = G x* up to what that allows: (x - x*)' G (x - x*) = 2 (w . (x - x*) - gap)
      <= 2 (B - gap).
    Returns the residual."""
    k = len(linear)
    tol = default_tol(dtype)
    slack = rounding_slack(k, dtype)
    residual, scale, _ = kkt(gram, linear, x, simplex, dtype)
    reported = float(info.residual)
    assert abs(residual - reported) <= slack * max(1.0, reported), (residual, reported)
    assert bool(info.converged) == (reported <= tol)
    lam = np.linalg.eigvalsh(gram)
    lam_max = max(float(lam[-1]), 0.0)
    delta = max(-float(lam[0]), 0.0) + 10 * k * np.finfo(np.float64).eps * lam_max
    diff = x - x_ref
    # float64 rounding of the two objective values (and of products near underflow)
    floor = 10 * k * np.finfo(np.float64).eps * sum(
        abs(v) @ np.abs(gram) @ abs(v) + np.abs(linear) @ abs(v) for v in (x, x_ref))
    floor += np.finfo(np.float64).tiny
    # the documented bound with the reported residual (up to its rounding)
    bound = (reported + slack * max(1.0, reported)) * (scale @ (x + x_ref))
    gap = objective(gram, linear, x) - objective(gram, linear, x_ref)
    assert gap <= bound + delta / 2 * diff @ diff + floor, (gap, bound)
    curvature = 2 * (bound - gap) + delta * diff @ diff + 2 * floor
    image = gram @ diff
    assert image @ image <= lam_max * curvature + delta**2 * diff @ diff + floor, (
        image @ image, lam_max * curvature)
    return residual


def resolved(gram, linear, dtype, simplex=False, check_data=True):
    """Whether the default tolerance is attainable on this data in `dtype` (module docs,
    "What is attainable"), in the solver's coordinates y = r x (G' = G / (r r^T),
    q' = q / r; for the simplex on the plane a . y = 1, a = 1 / r, that is, restricted to
    a^perp). It is not when
    - an entry is lost to the flush of subnormal numbers (q may then leave the range of
      G: an unbounded problem as read), or G is not positive semi-definite as read: a zero
      diagonal entry in a non-zero row (an underflowed G_ii), or, for nonneg_qp, a zero
      row with q_i < 0 (unbounded);
    - a principal submatrix (non-zero rows) is nearly, not exactly, singular: its
      smallest eigenvalue lies between rounding level 10 K eps (where the solver drops a
      column as dependent) and (10 eps / tol)^2 (above which a solve reaches the
      tolerance: its error in w is about eps / sqrt(lambda_min) of the scales);
    - or it is singular to rounding, but the null direction v is not a dependency of the
      data to the tolerance: G' v (all rows) or, for nonneg_qp, q' . v exceeds tol / 10
      (rows at an angle below sqrt(eps) whose other cosines still differ visibly).
    `check_data=False` leaves out the first item (for data that is meant to lose its
    negligible entries, as the aggregators' G for rows of norm 1e-20 and 1e20 in float32).
    """
    tiny, eps = float(np.finfo(dtype).tiny), float(np.finfo(dtype).eps)
    tol = default_tol(dtype)
    raw = [np.asarray(jnp.asarray(a, dtype), np.float64) for a in (gram, linear)]
    if check_data and any(np.any((a != 0) & (np.abs(a) < tiny)) for a in raw):
        return False
    gram, linear = read(gram, dtype), read(linear, dtype)
    zero = np.diagonal(gram) <= 0
    unbounded = not simplex and np.any(zero & (linear < 0))
    if check_data and (np.any(zero & np.any(gram != 0, axis=1)) or unbounded):
        return False
    r = resolution_scales(gram, dtype)
    scaled, q = gram / np.outer(r, r), linear / r
    qmax = max(np.max(np.abs(q)), tiny)
    live = np.flatnonzero(np.diagonal(gram) > 0)
    low, high = 10 * len(gram) * eps, (10 * eps / tol) ** 2
    for size in range(2, len(live) + 1):
        for support in itertools.combinations(live, size):
            support = list(support)
            basis = np.eye(size)
            if simplex:  # directions along the plane
                basis = scipy.linalg.null_space((1 / r[support])[None, :])
            block = basis.T @ scaled[np.ix_(support, support)] @ basis
            lam, vec = np.linalg.eigh(block)
            if np.any((low < lam) & (lam < high)):
                return False
            for v in (basis @ vec[:, lam <= low]).T:
                if np.max(np.abs(scaled[:, support] @ v)) > tol / 10:
                    return False
                if not simplex and abs(q[support] @ v) > tol / 10 * qmax:
                    return False
    return True


def _solve(gram, linear, dtype, simplex):
    """The padded problem as the solver reads it, the solution of the original problem
    (copies of vertex 0 merged) and the padded solution with its info."""
    g, q = (read(a, dtype) for a in pad(gram, linear, simplex))
    solver = _SIMPLEX if simplex else _NONNEG
    x_pad, info = solver(jnp.asarray(g, dtype), jnp.asarray(q, dtype))
    x_pad = np.asarray(x_pad, np.float64)
    assert np.all(np.isfinite(x_pad)) and np.all(x_pad >= 0)
    x = x_pad.copy()
    k = len(linear)
    if simplex:
        x[0] += x[k:].sum()
        assert abs(x_pad.sum() - 1) < 10 * np.finfo(dtype).eps * len(x_pad)
    else:
        assert np.all(x[k:] == 0)
    return g, q, x_pad, x[:k], info


def _check(gram, linear, dtype, simplex):
    """Solve, then check the guarantee on the padded problem against the brute-force
    minimiser of the original one (padded with zeros: both are minimisers there)."""
    k = len(linear)
    gram, linear = read(gram, dtype), read(linear, dtype)
    g, q, x_pad, x, info = _solve(gram, linear, dtype, simplex)
    _, x_ref = brute_force(gram, linear, simplex)
    ref_pad = np.zeros(len(q))
    ref_pad[:k] = x_ref
    check_guarantee(g, q, x_pad, info, simplex, dtype, ref_pad)
    return x, info


@examples(60)
@given(psd_problems(), st.sampled_from([jnp.float32, jnp.float64]))
def test_nonneg_qp_matches_brute_force(problem, dtype):
    """Dual-cone projections, q = G c (bounded for every c, however singular G is): the
    module's guarantee against the brute-force minimiser (`check_guarantee`) always, and
    convergence wherever the data makes the tolerance attainable (`resolved`)."""
    gram, c = problem
    gram = read(gram, dtype)
    linear = gram @ c
    _, info = _check(gram, linear, dtype, simplex=False)
    if resolved(gram, linear, dtype):
        assert bool(info.converged), info


@examples(40)
@given(psd_problems(max_k=6))
def test_nonneg_qp_matches_scipy_nnls(problem):
    """Independent reference: with G = L L^T, q = G c the problem is NNLS
    min_{x>=0} ||L^T x + L^T c||^2, solved by scipy.optimize.nnls (which may return a huge
    point along a numerically null direction: the bound allows for it)."""
    gram, c = problem
    lam, vec = np.linalg.eigh(gram)
    factor = vec * np.sqrt(np.maximum(lam, 0))
    x_ref, _ = scipy.optimize.nnls(factor.T, -factor.T @ c)
    g, q = pad(gram, gram @ c, simplex=False)
    x, info = _NONNEG(jnp.asarray(g), jnp.asarray(q))
    x = np.asarray(x)
    ref_pad = np.zeros(len(q))
    ref_pad[: len(c)] = x_ref
    check_guarantee(g, q, x, info, False, jnp.float64, ref_pad)
    if resolved(gram, gram @ c, jnp.float64):
        assert bool(info.converged), info


@examples(60)
@given(psd_problems(), st.sampled_from([jnp.float32, jnp.float64]), st.booleans())
def test_simplex_qp_matches_brute_force(problem, dtype, with_linear):
    """As for `nonneg_qp`: the guarantee against the brute-force minimiser, and
    convergence wherever the tolerance is attainable."""
    gram, c = problem
    linear = c if with_linear else np.zeros_like(c)
    _, info = _check(gram, linear, dtype, simplex=True)
    if resolved(gram, linear, dtype, simplex=True):
        assert bool(info.converged), info


@pytest.mark.parametrize("dtype, small", [
    (jnp.float32, 1e-5), (jnp.float32, 1e-20), (jnp.float32, 1e-30),
    (jnp.float64, 1e-5), (jnp.float64, 1e-20), (jnp.float64, 1e-280),
])
def test_small_rows_are_solved_on_their_own_scale(dtype, small):
    """G = diag(1, s, s), q = G (0, -1, -1): x* = (0, 1, 1). With one KKT scale for all
    coordinates (the largest row's), the small rows' gradients -s looked converged: float32,
    s = 1e-5 stopped at x = (0, 1, 0) (and float64 with s = 1e-20), reported converged.
    Each coordinate is now judged on its own terms (equilibrated problem)."""
    gram = np.diag([1.0, small, small])
    linear = gram @ np.array([0.0, -1.0, -1.0])
    x, info = _check(gram, linear, dtype, simplex=False)
    assert bool(info.converged), info
    np.testing.assert_allclose(x, [0.0, 1.0, 1.0], atol=10 * default_tol(dtype))


@pytest.mark.parametrize("dtype, small", [(jnp.float32, 1e-37), (jnp.float64, 1e-300)])
def test_rows_below_the_resolution_limit(dtype, small):
    """The same problem with s below tau = tiny / eps (float32: 1e-31): the gradients -s of
    the small coordinates are terms below tau, which carry no correct digit (G's entries
    below tiny are flushed), so x = 0 there is within the guarantee, and so is any other
    value; the objective is within residual * sum_i S_i (x_i + x*_i) of the minimum."""
    gram = np.diag([1.0, small, small])
    linear = gram @ np.array([0.0, -1.0, -1.0])
    x, info = _check(gram, linear, dtype, simplex=False)
    assert bool(info.converged), info
    assert x[0] == 0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_simplex_rows_of_very_different_norms(dtype):
    """MGDA's problem for orthogonal rows of norms 1, 3e-3, 3e-3 (G = diag(1, 1e-5, 1e-5),
    q = 0): the min-norm point of the hull has weights proportional to 1 / G_ii. float32
    stopped at the vertex (0, 1, 0), twice the minimum, reported converged: the
    multipliers -1e-5 of the other vertices were below the tolerance of the largest row."""
    gram = np.diag([1.0, 1e-5, 1e-5])
    x, info = _check(gram, np.zeros(3), dtype, simplex=True)
    assert bool(info.converged), info
    expected = np.array([1e-5, 1.0, 1.0]) / (2 + 1e-5)
    np.testing.assert_allclose(x, expected, rtol=10 * default_tol(dtype))


@pytest.mark.parametrize("order", [[0, 1, 2], [1, 0, 2]])
def test_nearly_parallel_rows_are_exchanged(order):
    """Rows u0, u1 at an angle of 2e-8 (float64 sees them as parallel: 1 - cos = 2e-16)
    whose cosines with a third row still differ by 1e-8. The better of the two is u0; when
    u1 is taken first, u0 can only enter in exchange for it (a dependent column with a
    descent slope: the solver follows that ray to the bound). The min-norm point of the hull
    was 2.5e-9 above the minimum before, flagged converged=False; nonneg_qp likewise."""
    theta, s = 2e-8, 0.5
    rows = np.array([[1.0, 0.0, 0.0], [np.cos(theta), 0.0, np.sin(theta)],
                     [-0.5, np.sqrt(0.75 - s * s), s]])[order]
    gram = rows @ rows.T
    best = order.index(0)
    x, info = _check(gram, np.zeros(3), jnp.float64, simplex=True)
    assert bool(info.converged), info
    np.testing.assert_allclose(x[best], 0.5, atol=1e-12)
    x, info = _check(gram, gram @ np.array([0.0, 0.0, 1.0]), jnp.float64, simplex=False)
    assert bool(info.converged), info
    np.testing.assert_allclose(x[best], 0.5, atol=1e-12)


def test_psd_solve_drops_a_dependent_column_exactly():
    """Column 1 is parallel to column 0 to rounding (pivot 2e-15, below the threshold
    10 K eps max diag) and the right-hand side is not consistent with that dependency. The
    dropped coordinate is 0 and the kept one solves its own equation. The factor's row 1
    used to keep column 0's entry, so x_1 came out as -a_10 x_0: a point that solved
    neither system, on which nonneg_qp stopped with the wrong support (found by the
    thorough profile on a singular 'spectrum' matrix in float64)."""
    a = np.array([[1.958823124225436, -1.8076657264864269],
                  [-1.8076657264864269, 1.6681727606242203]])
    rhs = np.array([[0.5188115523852207], [-0.4787761692517253]])
    x = np.asarray(psd_solve(jnp.asarray(a), jnp.asarray(rhs)))[:, 0]
    assert x[1] == 0
    np.testing.assert_allclose(x[0], rhs[0, 0] / a[0, 0], rtol=1e-15)


def test_nonneg_qp_known_solutions():
    x, info = nonneg_qp(jnp.array([[1.0, -0.5], [-0.5, 1.0]]), jnp.array([-1.0, 0.5]))
    np.testing.assert_allclose(x, [1.0, 0.0], atol=1e-12)
    assert bool(info.converged) and float(info.residual) <= 1e-10
    # interior solution of a positive-definite problem: G x = -q
    g = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.5]])
    x_true = jnp.array([0.3, 1.2, 0.7])
    x, _ = nonneg_qp(g, -(g @ x_true))
    np.testing.assert_allclose(x, x_true, rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("copies", [1, 5])
def test_simplex_qp_collinear_rows_with_linear_term(dtype, copies):
    """Rows v (repeated), 0 and -v are affinely dependent: on their common face the
    objective is linear along the dependency and has no minimiser, so the solver must
    follow the descent ray (it stopped, not converged, at x = (0, 1/2, 1/2) before).
    Optimum: x = (3/8 on v, 0, 5/8 on -v), value -1.28125 (by hand: on the segment from v
    to -v, f(s) = (1 - 2 s)^2 / 2 - 1 - s / 2)."""
    k = copies + 2
    gram = np.zeros((k, k))
    gram[:copies, :copies] = 1
    gram[:copies, -1] = gram[-1, :copies] = -1
    gram[-1, -1] = 1
    linear = np.zeros(k)
    linear[copies - 1:] = [-1.0, -1.0, -1.5]
    x, info = simplex_qp(jnp.asarray(gram, dtype), jnp.asarray(linear, dtype))
    x = np.asarray(x, np.float64)
    assert bool(info.converged)
    np.testing.assert_allclose(objective(gram, linear, x), -1.28125, atol=1e-6)
    np.testing.assert_allclose([x[:copies].sum(), x[copies], x[-1]], [0.375, 0, 0.625],
                               atol=1e-6)


def test_simplex_qp_known_solution():
    x, info = simplex_qp(jnp.array([[1.0, -1.0], [-1.0, 4.0]]), jnp.zeros(2))
    np.testing.assert_allclose(x, [5 / 7, 2 / 7], rtol=1e-12)
    assert int(info.iterations) <= 3


@pytest.mark.parametrize("solver", [nonneg_qp, simplex_qp])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_degenerate_inputs_are_finite(solver, dtype):
    opposite = jnp.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype)
    for gram in (jnp.zeros((3, 3), dtype), jnp.ones((3, 3), dtype), opposite,
                 jnp.zeros((1, 1), dtype)):
        k = gram.shape[0]
        for linear in (jnp.zeros((k,), dtype), gram @ jnp.arange(k, dtype=dtype) - 1):
            x, info = solver(gram, linear)
            assert x.dtype == dtype and np.all(np.isfinite(x)) and np.all(np.asarray(x) >= 0)
            assert np.isfinite(float(info.residual))


def test_unbounded_problem_reports_failure():
    """q outside the range of G with a descent ray: no minimiser; finite x, not converged."""
    x, info = nonneg_qp(jnp.zeros((2, 2)), jnp.array([-1.0, 0.0]))
    assert np.all(np.isfinite(x)) and not bool(info.converged)


@pytest.mark.parametrize("solver", [nonneg_qp, simplex_qp])
def test_iteration_cap_reports_not_converged(solver):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 4))
    gram = jnp.asarray(rows @ rows.T)
    linear = gram @ jnp.asarray(rng.normal(size=6)) - 1.0 if solver is simplex_qp else (
        gram @ jnp.asarray(rng.normal(size=6)))
    x, info = solver(gram, linear, max_iter=1)
    assert np.all(np.isfinite(x)) and int(info.iterations) == 1 and not bool(info.converged)
    x, info = solver(gram, linear)
    assert bool(info.converged) and int(info.iterations) > 1


def test_vmap_and_single_compilation():
    traces = []

    @jax.jit
    def solve(g, q):
        traces.append(1)
        return jax.vmap(lambda qq: nonneg_qp(g, qq))(q)

    rng = np.random.default_rng(1)
    for seed in range(3):
        rows = rng.normal(size=(4, 3)) * (seed + 1)
        g = jnp.asarray(rows @ rows.T)
        x, info = solve(g, g)  # the K dual-cone projections of UPGrad at once
        assert np.all(np.asarray(info.converged))
    assert len(traces) == 1


def test_bad_shapes_raise():
    # TypeError: jaxtyping's runtime check (under the test suite's beartype hook)
    with pytest.raises((ValueError, TypeError)):
        nonneg_qp(jnp.zeros((2, 3)), jnp.zeros(2))
    with pytest.raises((ValueError, TypeError)):
        simplex_qp(jnp.zeros((2, 2)), jnp.zeros(3))
    with pytest.raises(ValueError, match="dtype"):
        nonneg_qp(jnp.zeros((2, 2), jnp.float32), jnp.zeros(2, jnp.float64))


def test_default_tolerances():
    assert default_tol(jnp.float32) == 1e-5 and default_tol(jnp.float64) == 1e-10
