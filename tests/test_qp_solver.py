"""The small-QP solvers of pinnx.combine._qp against scipy and a brute-force enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import examples

from pinnx.combine._qp import default_tol, nonneg_qp, simplex_qp

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


def _check_nonneg(gram, linear, dtype):
    x, info = _NONNEG(*(jnp.asarray(a, dtype) for a in pad(gram, linear, simplex=False)))
    x = np.asarray(x, np.float64)
    assert np.all(x[len(linear):] == 0)
    x = x[: len(linear)]
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    value, x_ref = brute_force(gram, linear, simplex=False)
    scale = max(np.max(np.abs(linear)), 1e-300)
    tol = 1e-3 if dtype == jnp.float32 else 1e-8
    floor = 10 * np.finfo(dtype).tiny  # subnormal entries are flushed to zero
    size = max(1, np.max(x_ref))
    # the minimiser may not be unique, but its value and G x are
    gap = objective(gram, linear, x) - value
    assert gap <= tol * scale * size + floor
    _assert_same_image(gram, x, x_ref, gap, tol * scale * size + floor)
    return x, info


def _assert_same_image(gram, x, x_ref, gap, atol):
    """G x = G x* up to what the objective gap allows. For the minimiser x* of a convex QP
    over a convex set and any feasible x, f(x) - f(x*) >= 1/2 (x - x*)^T G (x - x*) >=
    ||G (x - x*)||^2 / (2 lambda_max), so ||G (x - x*)|| <= sqrt(2 lambda_max gap): on an
    ill-conditioned G a solve within the KKT tolerance can differ from x* in G x by more
    than the tolerance itself (seen with near-parallel rows in float64: gap 4e-13, G x off
    by 5e-7), never by more than this bound."""
    lam_max = max(float(np.max(np.linalg.eigvalsh(gram), initial=0.0)), 0.0)
    bound = np.sqrt(2 * lam_max * max(gap, 0.0)) + atol
    assert np.linalg.norm(gram @ (x - x_ref)) <= bound * (1 + 1e-6)


@examples(60)
@given(psd_problems(), st.sampled_from([jnp.float32, jnp.float64]))
def test_nonneg_qp_matches_brute_force(problem, dtype):
    """Dual-cone projections: q = G c (bounded for every c, however singular G is)."""
    gram, c = problem
    gram = np.asarray(jnp.asarray(gram, dtype), np.float64)  # what the solver sees
    linear = gram @ c
    x, info = _check_nonneg(gram, linear, dtype)
    if dtype == jnp.float64:
        assert bool(info.converged), info


@examples(40)
@given(psd_problems(max_k=6))
def test_nonneg_qp_matches_scipy_nnls(problem):
    """Independent reference: with G = L L^T, q = G c the problem is NNLS
    min_{x>=0} ||L^T x + L^T c||^2, solved by scipy.optimize.nnls."""
    gram, c = problem
    lam, vec = np.linalg.eigh(gram)
    factor = vec * np.sqrt(np.maximum(lam, 0))
    x_ref, _ = scipy.optimize.nnls(factor.T, -factor.T @ c)
    x, info = _NONNEG(*(jnp.asarray(a) for a in pad(gram, gram @ c, simplex=False)))
    x = np.asarray(x)[: len(c)]
    atol = 1e-7 * max(1, np.max(np.abs(gram @ c)), np.max(x_ref))
    gap = objective(gram, gram @ c, x) - objective(gram, gram @ c, x_ref)
    assert gap <= atol
    if gap >= 0:  # (on near-singular G, nnls can stop at a worse point than ours)
        _assert_same_image(gram, x, x_ref, gap, atol)


@examples(60)
@given(psd_problems(), st.sampled_from([jnp.float32, jnp.float64]), st.booleans())
def test_simplex_qp_matches_brute_force(problem, dtype, with_linear):
    gram, c = problem
    gram = np.asarray(jnp.asarray(gram, dtype), np.float64)
    linear = c if with_linear else np.zeros_like(c)
    linear = np.asarray(jnp.asarray(linear, dtype), np.float64)
    x, info = _SIMPLEX(*(jnp.asarray(a, dtype) for a in pad(gram, linear, simplex=True)))
    x = np.array(x, np.float64)
    x[0] += x[len(linear):].sum()  # merge the copies of vertex 0
    x = x[: len(linear)]
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    assert abs(x.sum() - 1) < 10 * jnp.finfo(dtype).eps * len(x)
    value, x_ref = brute_force(gram, linear, simplex=True)
    tol = 1e-4 if dtype == jnp.float32 else 1e-9
    scale = max(1.0, np.max(np.abs(linear)))
    assert objective(gram, linear, x) <= value + tol * scale
    if dtype == jnp.float64:
        assert bool(info.converged), info
        w = gram @ x + linear
        lam = x @ w
        assert np.all(w >= lam - 1e-8 * scale)  # KKT: no vertex direction descends
        np.testing.assert_allclose(w[x > 1e-6], lam, atol=1e-8 * scale)


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
