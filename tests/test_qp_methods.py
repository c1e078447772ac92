"""The QP aggregators (mgda, upgrad, dualproj, cagrad, nash_mtl): defining properties against
independent float64 references, agreement with torchjd (tests/data/qp_reference.npz), and the
solver information they keep in their state."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import LAYOUTS, examples, flatten, flush, task_grads
from test_qp_solver import brute_force, resolved

from pinnx.combine._cagrad import cagrad
from pinnx.combine._gram import task_stats
from pinnx.combine._mgda import mgda
from pinnx.combine._nash import nash_mtl
from pinnx.combine._qp import scaled_gram
from pinnx.combine._upgrad import dualproj, upgrad

REFERENCE = np.load(pathlib.Path(__file__).parent / "data" / "qp_reference.npz")


def _tol(dtype):
    return 2e-4 if dtype == jnp.float32 else 1e-9


def _subnormal(ref, scale, dtype):
    """The entries of a reference result (in units of the largest row norm `scale`) whose
    value is below the smallest normal number (1% to spare for rounding), 0 elsewhere: the
    hardware flushes such results to zero (FTZ) as it does inputs (`flush`), so they may
    come back as 0 however the result is formed."""
    if not scale:
        return np.zeros_like(ref)
    return np.where(np.abs(ref) * scale <= 1.01 * float(np.finfo(dtype).tiny), ref, 0.0)


def _assert_close(got, ref, tol, scale, dtype):
    """got = ref to tol (units of `scale`), except that an entry of ref below the smallest
    normal number may be flushed to 0."""
    sub = _subnormal(ref, scale, dtype)
    ok = (np.abs(got - ref) <= tol) | ((sub != 0) & (np.abs(got) <= np.abs(sub) + tol))
    assert np.all(ok), (got[~ok], ref[~ok], tol)


def _run(opt, grads):
    """Eager update (the solvers inside are jitted and cached per K and dtype)."""
    out, state = opt.update(grads, opt.init(None))
    return flatten({n: v[None] for n, v in out.items()})[0], state


def _units(grads, dtype):
    """float64 rows as the hardware sees them, divided by the largest norm (so that 1e20 and
    1e-20 rows stay representable in products), and that norm."""
    flat = flush(flatten(grads), dtype)
    scale = np.max(np.linalg.norm(flat, axis=1))
    return flat / (scale if scale > 0 else 1.0), scale


def _unresolved_in_float32(rows, dtype):
    """Two non-zero rows at an angle float32 cosines cannot resolve (1e-10 < 1 - |cos| <
    1e-5: cosines carry about 7 digits, so such an angle is known to ~3e-4 rad only). The
    dual-cone projections of such rows are ill-conditioned there; the solver then reports
    converged=False, and its result is only as good as the cosines. (Exact multiples are
    fine: 1 - |cos| ~ 1e-15 after rounding.)"""
    if dtype != jnp.float32:
        return False
    norms = np.linalg.norm(rows, axis=1)
    units = rows[norms > 0] / norms[norms > 0, None]
    gap = 1 - np.abs(units @ units.T)
    np.fill_diagonal(gap, 1.0)
    return bool(np.any((gap > 1e-10) & (gap < 1e-5)))


def _attainable(grads, dtype, method):
    """Whether the solver's tolerance is attainable on the QPs `method` solves, as the
    solver's module docs state it (`test_qp_solver.resolved`, on the cosines the method
    computes). Otherwise (rows nearly but not exactly parallel, e.g. 1e-6 rad apart in
    float64, or opposite to rounding while their cosines with a third row still differ by
    1e-10) the solve ends within the documented bound but not within the tolerance, and the
    aggregate is only as close to the reference as that bound allows."""
    norms, cos = task_stats(grads)
    k = norms.shape[0]
    cos64 = np.asarray(cos, np.float64)
    if method == "mgda":
        gram = np.asarray(scaled_gram(norms, cos), np.float64)
        return resolved(gram, np.zeros(k), dtype, simplex=True, check_data=False)
    if method == "dualproj":
        rel = np.asarray(norms, np.float64)
        rel = rel / rel.max() if rel.max() > 0 else rel
        return resolved(cos64, rel / k @ cos64, dtype, check_data=False)
    return all(resolved(cos64, cos64[i], dtype, check_data=False) for i in range(k))


# ---------------------------------------------------------------- MGDA


@examples(20)
@given(task_grads(max_k=8, layouts=LAYOUTS[1:]))
def test_mgda_is_the_min_norm_point_of_the_hull(case):
    """d = J^T w* with w* the brute-force minimiser of ||J^T w|| over the simplex, and the
    KKT conditions d . g_k >= ||d||^2 (all k), min_k d . g_k = ||d||^2."""
    grads, _, dtype = case
    rows, scale = _units(grads, dtype)
    assume(_attainable(grads, dtype, "mgda"))
    got, state = _run(mgda(), grads)
    got = got / (scale if scale > 0 else 1.0)
    _, w = brute_force(rows @ rows.T, np.zeros(len(rows)), simplex=True)
    ref = w @ rows
    tol = _tol(dtype)
    _assert_close(got, ref, tol, scale, dtype)
    tol += 3 * np.linalg.norm(_subnormal(ref, scale, dtype))  # flushed entries (a 0 d)
    dots, sq = rows @ got, got @ got
    assert np.all(dots >= sq - tol)
    assert np.min(dots) <= sq + tol
    assert bool(state.info.converged)


def test_mgda_zero_row_gives_zero():
    grads = {"w": jnp.array([[1.0, 2.0], [0.0, 0.0], [-3.0, 1.0]])}
    got, _ = _run(mgda(), grads)
    np.testing.assert_array_equal(got, 0.0)


# ---------------------------------------------------------------- UPGrad, DualProj


def _dual_cone_projection(rows, lower):
    """Brute-force projection of rows^T lower onto {x : rows x >= 0}. The cone is that of
    the unit rows, so it is solved on those (well scaled whatever the norms):
    v = argmin_{v >= n * lower} ||U^T v||^2, projection U^T v."""
    norms = np.linalg.norm(rows, axis=1)
    units = rows / np.where(norms > 0, norms, 1)[:, None]
    gram = units @ units.T
    low = norms * lower
    _, x = brute_force(gram, gram @ low, simplex=False)
    return (low + x) @ units


def _snap_multiples(rows, dtype):
    """Rows that float32 cannot tell from exact multiples (1 - |cos| <= 1e-10) made exact
    multiples, for the dual-cone references. Rounding an 'opposite' row -3 g to float32
    leaves it ~1e-8 rad from opposite; the dual cone is discontinuous there (a hyperplane
    for opposite rows, a thin wedge for nearly opposite ones, whose limit is a
    half-hyperplane), so a float64 reference on the rounded rows answers a question the
    float32 cosines (1 - |cos| = 1e-7 at best) cannot pose: UPGrad's projection differed
    by a factor 6 (found by the thorough profile). float64 rows are exact multiples
    already."""
    if dtype != jnp.float32:
        return rows
    rows = rows.copy()
    norms = np.linalg.norm(rows, axis=1)
    for j in range(len(rows)):
        for i in range(j):
            if norms[i] > 0 and norms[j] > 0:
                cos = rows[i] @ rows[j] / (norms[i] * norms[j])
                if 1 - abs(cos) <= 1e-10:
                    rows[j] = np.sign(cos) * norms[j] / norms[i] * rows[i]
                    break
    return rows


@examples(20)
@given(task_grads(max_k=8, layouts=LAYOUTS[1:]))
def test_upgrad_projects_each_row_onto_the_dual_cone(case):
    """d = mean_i pi(g_i) (brute-force projections); d . g_k >= 0 for all k; d is the mean
    when no two rows conflict."""
    grads, _, dtype = case
    rows, scale = _units(grads, dtype)
    assume(not _unresolved_in_float32(rows, dtype) and _attainable(grads, dtype, "upgrad"))
    k = len(rows)
    got, state = _run(upgrad(), grads)
    got = got / (scale if scale > 0 else 1.0)
    exact = _snap_multiples(rows, dtype)
    ref = np.mean([_dual_cone_projection(exact, np.eye(k)[i]) for i in range(k)], axis=0)
    tol = _tol(dtype)
    _assert_close(got, ref, tol, scale, dtype)
    flushed = np.linalg.norm(_subnormal(ref, scale, dtype))
    assert np.all(rows @ got >= -(tol + flushed) * np.linalg.norm(rows, axis=1))
    if np.all(rows @ rows.T >= 0):
        _assert_close(got, rows.mean(axis=0), tol, scale, dtype)
    assert bool(state.info.converged)


@examples(20)
@given(task_grads(max_k=8, layouts=LAYOUTS[1:]))
def test_dualproj_projects_the_mean_onto_the_dual_cone(case):
    """d = pi(mean) (brute force); d . g_k >= 0; d is the mean when it conflicts with no row."""
    grads, _, dtype = case
    rows, scale = _units(grads, dtype)
    assume(not _unresolved_in_float32(rows, dtype) and _attainable(grads, dtype, "dualproj"))
    k = len(rows)
    got, state = _run(dualproj(), grads)
    got = got / (scale if scale > 0 else 1.0)
    ref = _dual_cone_projection(_snap_multiples(rows, dtype), np.full(k, 1 / k))
    tol = _tol(dtype)
    _assert_close(got, ref, tol, scale, dtype)
    flushed = np.linalg.norm(_subnormal(ref, scale, dtype))
    assert np.all(rows @ got >= -(tol + flushed) * np.linalg.norm(rows, axis=1))
    if np.all(rows @ rows.mean(axis=0) >= 0):
        _assert_close(got, rows.mean(axis=0), tol, scale, dtype)
    assert bool(state.info.converged)


def test_dualproj_lower_bounds_that_cancel():
    """Rows v, -v (norm 5e20) and three rows 1e-20 times v: the lower bounds are
    (1, 1, 1e-20, 1e-20, 1e-20) / 5 and C lower = 0.2 - 0.2 + 6e-21 cancels, leaving noise
    of either sign (-1.1e-17 with FMA) outside the range of C: an unbounded problem as
    read, flagged converged=False with residual 1 (thorough profile, float64). Entries
    within their own rounding are now zero; the projection of the mean (3 v / ||v||) onto
    the hyperplane v . x = 0 is 0."""
    rows = np.zeros((5, 8))
    rows[0], rows[1], rows[2:] = 5e20, -5e20, 5.0
    d, state = _run(dualproj(), {"w": jnp.asarray(rows)})
    assert bool(state.info.converged)
    np.testing.assert_allclose(d / np.linalg.norm(rows[0]), 0.0, atol=1e-9)


def test_upgrad_ignores_noise_level_conflicts():
    """float32 rows u, -u (exactly opposite to float32), e0 (cosines -8e-16 and 7e-31 with
    them: rounding) and a row of norm 1e-15 at cosine -0.45 with u. Projecting e0, a solver
    that judged every coordinate on its own linear term alone took cos = -8e-16 for a
    conflict, then had to free the exactly opposite row, whose cosine with e0 disagrees at
    the same noise level: no consistent solution, converged=False (residual 1). Linear
    terms below tol times the largest one are as good as zero (module docs)."""
    eps = 4.1119876e-16
    rows = np.full((4, 6), -eps)
    rows[0, 1], rows[1, 0], rows[2, 0], rows[3, 1] = 1.0, 0.0, 1.0, -1.0
    rows[2, 1] = -eps
    grads = {"w": jnp.asarray(rows, jnp.float32)}
    d, state = _run(upgrad(), grads)
    assert bool(state.info.converged)
    units = flush(rows, jnp.float32)
    units = units / np.linalg.norm(units, axis=1)[:, None]
    assert np.min(units @ d) >= -1e-6


def test_float32_unresolved_angles_are_flagged():
    """Rows 6.7e-4 rad from opposite: float32 cosines (1 - |cos| = 2.2e-7) cannot resolve
    the narrow cone, so the float32 projection is ill-determined. The solvers say so
    (converged=False) and stay finite and almost in the cone; float64 is exact."""
    rows = np.zeros((8, 6))
    rows[1, 5], rows[3, 1], rows[4, 3] = 1.5, -8.373608589172363, 7.2460479736328125
    rows[6, :2], rows[7, 0] = (1.5, 0.001), -0.6166893839836121
    units = rows[[1, 3, 4, 6, 7]] / np.linalg.norm(rows[[1, 3, 4, 6, 7]], axis=1)[:, None]
    assert _unresolved_in_float32(rows, jnp.float32)
    for opt in (upgrad(), dualproj()):
        d32, state32 = _run(opt, {"w": jnp.asarray(rows, jnp.float32)})
        d64, state64 = _run(opt, {"w": jnp.asarray(rows)})
        assert np.all(np.isfinite(d32)) and not bool(state32.info.converged)
        assert np.min(units @ d32) >= -2e-3
        assert bool(state64.info.converged) and np.min(units @ d64) >= -1e-9


@pytest.mark.parametrize("value", [4.6e-38, 2.5e-38])
@pytest.mark.parametrize("kind", ["equal", "spread"])
def test_rows_near_the_underflow_threshold(value, kind):
    """Eight float32 rows with entries a few times the smallest normal number (1.2e-38):
    equal rows, or value (1 + e_i / 2), symmetric, so that MGDA spreads its weights 1/8. No
    conflict: UPGrad, DualProj, MGDA and CAGrad(c=0) return the mean, CAGrad(c=1/2) 1.5
    times it (the ball around g0 along g0). Found by the thorough profile for UPGrad at
    4.6e-38 (equal rows): the coefficients beta_k = ||g_k|| / 8 (1.4e-38) times the unit
    directions' entries (0.41) are subnormal and were flushed to zero term by term although
    their sum is not, so UPGrad and DualProj returned 0; at 2.5e-38 beta_k itself underflows
    (7.7e-39), and CAGrad and MGDA (spread weights) returned 0 or a fraction of the mean.
    The combination is now formed relative to the largest norm and scaled last."""
    k = 8
    rows = value * (np.ones((k, k)) + (0.0 if kind == "equal" else 0.5) * np.eye(k))
    rows = rows.astype(np.float32).astype(np.float64)
    mean = rows.mean(axis=0)
    grads = {"w": jnp.asarray(rows, jnp.float32)}
    for opt, expected in ((upgrad(), mean), (dualproj(), mean), (mgda(), mean),
                          (cagrad(c=0.0), mean), (cagrad(c=0.5), 1.5 * mean)):
        got, state = _run(opt, grads)
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=str(opt))
        assert bool(state.info.converged)


@given(task_grads(max_k=6, degenerate=False, layouts=LAYOUTS[1:]))
@examples(20)
def test_upgrad_and_dualproj_are_the_mean_without_conflict(case):
    """Rows with non-negative entries never conflict: both return the mean exactly (up to
    entries below tiny ||g_k||, which are subnormal on the unit direction g_k / ||g_k||
    the aggregate is formed from, and flushed)."""
    grads, _, dtype = case
    grads = jax.tree.map(jnp.abs, grads)
    rows = flush(flatten(grads), dtype)
    atol = 10 * np.finfo(dtype).tiny * max(1.0, np.linalg.norm(rows, axis=1).max())
    for opt in (upgrad(), dualproj()):
        got, _ = _run(opt, grads)
        np.testing.assert_allclose(got, rows.mean(axis=0), rtol=10 * _tol(dtype), atol=atol)


# ---------------------------------------------------------------- CAGrad


@examples(20)
@given(task_grads(max_k=8, layouts=LAYOUTS[1:]))
def test_cagrad_with_c_zero_is_the_mean(case):
    grads, _, dtype = case
    rows, scale = _units(grads, dtype)
    got, _ = _run(cagrad(c=0.0), grads)
    _assert_close(got / (scale if scale > 0 else 1.0), rows.mean(axis=0), _tol(dtype), scale,
                  dtype)


def _cagrad_dual_reference(rows, c):
    """min_{w in simplex} w . (J g0) + c ||g0|| ||J^T w||, by SLSQP from every vertex and
    the centre (float64); returns the best w and its value."""
    k = len(rows)
    g0 = rows.mean(axis=0)
    b, phi = rows @ g0, c * np.linalg.norm(g0)

    def value(w):
        return b @ w + phi * np.sqrt(max(w @ rows @ rows.T @ w, 0.0))

    best = None
    for start in [np.full(k, 1 / k)] + list(np.eye(k) * 0.9 + 0.1 / k):
        res = scipy.optimize.minimize(
            value, start, method="SLSQP", bounds=[(0, 1)] * k,
            constraints={"type": "eq", "fun": lambda w: np.sum(w) - 1},
            options={"ftol": 1e-15, "maxiter": 1000})
        w = np.clip(res.x, 0, None) / np.sum(np.clip(res.x, 0, None))
        if best is None or value(w) < best[1]:
            best = (w, value(w))
    return best


@examples(20)
@given(task_grads(max_k=8, layouts=LAYOUTS[1:]), st.sampled_from([0.5, 2.0]))
def test_cagrad_solves_its_max_min_problem(case, c):
    """Certificate of optimality against an independent dual solve (SLSQP): d lies in the
    ball ||d - g0|| <= c ||g0|| and reaches min_k g_k . d = the reference's dual value,
    which bounds every feasible point's min_k g_k . d from above; so d is the maximiser
    (unique), and d agrees with the reference's d. When ||J^T w|| < 1e-4 ||J||_F, d = 0;
    in float32 below 10 sqrt(eps) ||J||_F, what the Gram matrix resolves (`cagrad`)."""
    grads, _, dtype = case
    rows, scale = _units(grads, dtype)
    got, state = _run(cagrad(c=c), grads)
    got = got / (scale if scale > 0 else 1.0)
    w, dual_value = _cagrad_dual_reference(rows, c)
    g0 = rows.mean(axis=0)
    gw = w @ rows
    ratio = np.linalg.norm(gw) / max(np.linalg.norm(rows), 1e-300)
    threshold = max(1e-4, 10 * np.finfo(dtype).eps ** 0.5)
    # not at the zeroing threshold (torchjd's 1e-4; in float32 the resolution limit, whose
    # test h(lo) = ||J^T w(lo)|| - lo is decided to within sqrt(K eps) ||J||_F)
    assume(abs(ratio - 1e-4) > 1e-6 and not 0.5 * threshold < ratio < 2 * threshold)
    tol = 10 * _tol(dtype)
    if ratio < threshold or not bool(state.info.converged) and np.allclose(got, 0):
        # Pareto-stationary (d = 0), unless pinnx's solve found a better dual point
        assert np.allclose(got, 0, atol=tol) or np.min(rows @ got) >= dual_value - tol
        return
    phi = c * np.linalg.norm(g0)
    ref = g0 + phi * gw / np.linalg.norm(gw)
    flushed = np.linalg.norm(_subnormal(ref, scale, dtype))
    assert np.linalg.norm(got - g0) <= phi + tol + flushed
    assert np.min(rows @ got) >= dual_value - tol - flushed
    _assert_close(got, ref, 1e3 * tol, scale, dtype)
    assert bool(state.info.converged)


@pytest.mark.parametrize("c, expected", [(0.5, [-1 / 3, 0.0]), (2.0, [0.0, 0.0])])
def test_cagrad_zero_row_in_float32(c, expected):
    """A zero row puts 0 in the hull; the dual is then min(0, dual over the non-zero rows).
    Rows e1, 0, -3 e1 (g0 = -2/3 e1): for c = 0.5 the optimum is w = e1's vertex and
    d = g0 + (c ||g0||) e1 = -1/3 e1, which float32 must find as float64 does (it returned
    0 before the zero rows were taken out of the root search); for c = 2 the ball holds 0
    and the dual value over the non-zero rows is 0, so d = 0."""
    rows = np.array([[1.0, 0.0], [0.0, 0.0], [-3.0, 0.0]])
    d64, _ = _run(cagrad(c=c), {"w": jnp.asarray(rows, jnp.float64)})
    d32, state = _run(cagrad(c=c), {"w": jnp.asarray(rows, jnp.float32)})
    np.testing.assert_allclose(d64, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(d32, expected, rtol=0, atol=1e-5)
    assert bool(state.info.converged)


def test_cagrad_converged_flag_certifies_the_returned_point():
    """Rows (1, 3), 0, 0, (0, 1/64), (-3, -9) in float32, c = 0.5 (found by the thorough
    profile): the simplex QP at the low end of the root search stops at residual 1.1e-4
    (0 in the hull through an opposite pair), which only decides that h(lo) > 0 (it is
    +3.7e-3, 4.5x the rounding level of ||J^T w||); the root t = ||J^T w(t)|| is then
    found with a converged QP, which certifies d. `converged` was False because every
    evaluation's QP had to converge."""
    rows = np.array([[1, 3], [0, 0], [0, 0], [0, 1 / 64], [-3, -9]], np.float64)
    w, _ = _cagrad_dual_reference(rows, 0.5)
    g0, gw = rows.mean(axis=0), w @ rows
    ref = g0 + 0.5 * np.linalg.norm(g0) * gw / np.linalg.norm(gw)
    for dtype, atol in ((jnp.float32, 1e-5), (jnp.float64, 1e-9)):
        got, state = _run(cagrad(c=0.5), {"w": jnp.asarray(rows, dtype)})
        np.testing.assert_allclose(got, ref, rtol=0, atol=atol * 10)
        assert bool(state.info.converged)
        assert float(state.info.residual) <= _tol(dtype)


def test_cagrad_rescale_and_errors():
    grads = {"w": jnp.array([[1.0, 0.0], [-0.5, 1.0]])}
    d0, _ = _run(cagrad(c=0.5), grads)
    d1, _ = _run(cagrad(c=0.5, rescale=1), grads)
    d2, _ = _run(cagrad(c=0.5, rescale=2), grads)
    np.testing.assert_allclose(d1, d0 / 1.25, rtol=1e-12)
    np.testing.assert_allclose(d2, d0 / 1.5, rtol=1e-12)
    with pytest.raises(ValueError, match="non-negative"):
        cagrad(c=-1.0)
    with pytest.raises(ValueError, match="rescale"):
        cagrad(rescale=3)


# ---------------------------------------------------------------- Nash-MTL


def _min_norm_of_units(units):
    _, w = brute_force(units @ units.T, np.zeros(len(units)), simplex=True)
    return np.linalg.norm(w @ units)


@examples(20)
@given(task_grads(max_k=8, layouts=LAYOUTS[1:]))
def test_nash_mtl_satisfies_the_bargaining_condition(case):
    """a_k (G a)_k = 1 with d = J^T a, i.e. (a_k = 1 / (d . g_k)) d = sum_k u_k / (d . u_k)
    over the non-zero rows, checked on d in float64. The solution exists iff 0 is not in
    the convex hull of the unit rows; otherwise (opposite rows) only finiteness is
    required. Zero rows drop out."""
    grads, _, dtype = case
    rows = flush(flatten(grads), dtype)
    norms = np.linalg.norm(rows, axis=1)
    got, state = _run(nash_mtl(), grads)
    assert np.all(np.isfinite(got))
    alive = norms > 0
    if not np.any(alive):
        np.testing.assert_array_equal(got, 0)
        return
    units = rows[alive] / norms[alive, None]
    if _min_norm_of_units(units) < 0.05:  # no (well-posed) bargaining solution
        return
    proj = units @ got
    assert np.all(proj > 0)
    fixed = units.T @ (1 / proj)
    size = np.sum(1 / proj) ** 3  # the ridge reg = 1e-8 shifts d by about reg sum a_k^3
    np.testing.assert_allclose(got, fixed, rtol=0, atol=(1e-3 if dtype == jnp.float32
                                                         else 1e-7) * size)
    np.testing.assert_allclose(got @ got, alive.sum(), rtol=1e-3 if dtype == jnp.float32
                               else 1e-6)  # ||d||^2 = K
    assert bool(state.info.converged)


def test_nash_mtl_is_invariant_to_rescaling_a_task():
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(3, 7))
    scaled = rows * np.array([[1e-3], [1.0], [250.0]])
    d1, _ = _run(nash_mtl(), {"w": jnp.asarray(rows)})
    d2, _ = _run(nash_mtl(), {"w": jnp.asarray(scaled)})
    np.testing.assert_allclose(d1, d2, rtol=1e-9)


def test_nash_mtl_max_norm_and_degenerate_rows():
    rows = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    d, _ = _run(nash_mtl(), {"w": rows})
    # the zero row drops out; rtol: the ridge reg = 1e-8 moves d by 5e-9 here
    np.testing.assert_allclose(d, [1.0, 1.0, 0.0], rtol=1e-8)
    d, _ = _run(nash_mtl(max_norm=0.5), {"w": rows})
    np.testing.assert_allclose(np.linalg.norm(d), 0.5, rtol=1e-9)
    # exactly opposite tasks: no bargaining solution; the ridge makes them cancel
    d, _ = _run(nash_mtl(), {"w": jnp.array([[1.0, 0.0], [-2.0, 0.0], [0.0, 1.0]])})
    np.testing.assert_allclose(d, [0.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="max_norm"):
        nash_mtl(max_norm=-1.0)


# ---------------------------------------------------------------- torchjd reference


_NAMES = [str(n) for n in REFERENCE["names"]]
_METHODS = {
    "mgda": (mgda, 1e-9),
    "upgrad": (upgrad, 1e-9),
    "dualproj": (dualproj, 1e-9),
    "nash": (nash_mtl, 1e-6),  # pinnx's ridge reg = 1e-8 moves d by ~1e-7 here
}


@pytest.mark.parametrize("method", sorted(_METHODS))
def test_agrees_with_torchjd(method):
    """float64, deviation relative to the largest row norm. Settings in
    tests/data/make_qp_reference.py (no ridge in UPGrad/DualProj; MGDA from an exact
    quadprog solve; NashMTL without clipping, tight stopping test)."""
    make, tol = _METHODS[method]
    checked = 0
    for i, name in enumerate(_NAMES):
        ref = REFERENCE[f"{method}{i}"]
        if np.isnan(ref).any():
            continue
        j = REFERENCE[f"J{i}"]
        got, state = _run(make(), {"w": jnp.asarray(j)})
        scale = np.max(np.linalg.norm(j, axis=1))
        assert np.linalg.norm(got - ref) <= tol * scale, name
        assert bool(state.info.converged), name
        checked += 1
    assert checked >= 15


@pytest.mark.slow  # a comparison with an approximate method
def test_mgda_beats_torchjd_frank_wolfe():
    """torchjd's MGDA is Frank-Wolfe (1e-12 step threshold, 20000 steps) and stops short of
    the minimum (up to 2.3e-3 away here): pinnx's d is no longer than its d, and close."""
    for i, name in enumerate(_NAMES):
        j, ref = REFERENCE[f"J{i}"], REFERENCE[f"mgda_fw{i}"]
        got, _ = _run(mgda(), {"w": jnp.asarray(j)})
        scale = np.max(np.linalg.norm(j, axis=1))
        assert got @ got <= ref @ ref + 1e-12 * scale**2, name
        assert np.linalg.norm(got - ref) <= 3e-3 * scale, name


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_cagrad_agrees_with_torchjd(c):
    """torchjd solves the dual with Clarabel (tolerances tightened to 1e-12 by the generator);
    the results agree to 2.3e-6 of the row scale, and pinnx's d is the better primal point:
    inside the ball and with a min_k g_k . d at least as large."""
    key = "cagrad" if c == 0.5 else "cagrad_c2"
    for i, name in enumerate(_NAMES):
        j, ref = REFERENCE[f"J{i}"], REFERENCE[f"{key}{i}"]
        got, state = _run(cagrad(c=c), {"w": jnp.asarray(j)})
        scale = np.max(np.linalg.norm(j, axis=1))
        assert np.linalg.norm(got - ref) <= 1e-5 * scale, name
        assert bool(state.info.converged), name
        if not np.any(ref):  # both at the Pareto-stationary zero (here: a zero row)
            continue
        g0 = j.mean(axis=0)
        assert np.linalg.norm(got - g0) <= c * np.linalg.norm(g0) * (1 + 1e-12), name
        assert np.min(j @ got) >= np.min(j @ ref) - 1e-10 * scale**2, name


# ---------------------------------------------------------------- solver information


_ALL = {
    "mgda": mgda,
    "upgrad": upgrad,
    "dualproj": dualproj,
    "cagrad": cagrad,
    "nash_mtl": nash_mtl,
}


@pytest.mark.slow  # every solver's cap, in both dtypes
@pytest.mark.parametrize("name", sorted(_ALL))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_iteration_cap_reports_not_converged(name, dtype):
    """With max_iter=1 the solve cannot finish: the output is finite and the state says
    converged=False; with the defaults it converges. The state keeps its structure and
    dtypes (the shared suite checks this under jit too)."""
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(4, 6))
    rows[1] = -0.9 * rows[0] + 0.1 * rows[1]  # conflicts, so that every method must work
    rows[3] = -0.7 * rows[2] + 0.2 * rows[3]
    grads = {"a": jnp.asarray(rows[:, :4], dtype), "b": jnp.asarray(rows[:, 4:], dtype)}
    for opt, converged in ((_ALL[name](max_iter=1), False), (_ALL[name](), True)):
        state0 = opt.init(None)
        out, state = opt.update(grads, state0)
        assert jax.tree.structure(state) == jax.tree.structure(state0)
        assert [x.dtype for x in jax.tree.leaves(state)] == [
            x.dtype for x in jax.tree.leaves(state0)]
        assert all(np.all(np.isfinite(np.asarray(v))) for v in out.values())
        assert bool(state.info.converged) == converged
        if converged:
            assert float(state.info.residual) <= (1e-4 if dtype == jnp.float32 else 1e-9)
        else:
            assert int(state.info.iterations) == 1
