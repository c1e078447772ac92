"""Stochastic and robust aggregators: graddrop, gradvac, krum, trimmed_mean, random (RLW).

Each method is checked (1) on its defining property against an independent float64 numpy
reference over hypothesis-drawn rows (degenerate ones included), and (2) against torchjd 0.18
through tests/data/robust_reference.npz (made by tests/data/make_robust_reference.py; CI has
no torch). The random methods are written as pure functions of their draws
(`graddrop_select(grads, uniforms)`, `random_weights(z)`, `gradvac_rows(..., order, ...)`);
the reference script fed torchjd the same draws by replacing `torch.rand`, `torch.randn` and
`torch.randperm` while it ran, and the tests feed them to the pure functions.
"""

import functools
import itertools
import math
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import LAYOUTS, examples, flatten, flush, split, task_grads

from pinnx.combine._graddrop import GradDropState, graddrop, graddrop_select
from pinnx.combine._gradvac import TARGET_CAP, GradVacState, gradvac, gradvac_rows
from pinnx.combine._krum import krum, krum_scores, krum_weights
from pinnx.combine._random import random, random_weights
from pinnx.combine._trimmed_mean import trimmed_mean
from pinnx.combine.functional import unit_combination, weighted_sum
from pinnx.tasks import normalized_gram

REF = np.load(Path(__file__).parent / "data" / "robust_reference.npz")


def _ref_cases(method):
    for c in range(int(REF[f"{method}.count"])):
        prefix = f"{method}.{c}."
        yield {key[len(prefix):]: REF[key] for key in REF.files if key.startswith(prefix)}


def _flat_out(out):
    """Params-shaped dict -> (P,) float64 in flatten's order."""
    return flatten({n: np.asarray(v)[None] for n, v in out.items()})[0]


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def _scale(flat):
    return max(float(np.max(np.linalg.norm(flat, axis=1), initial=0.0)), 1e-300)


def _uniforms(u, layout, dtype):
    """(P,) draws -> a params-shaped dict in `layout`."""
    return {n: jnp.asarray(v[0], dtype) for n, v in split(u[None], layout).items()}


# ---------------------------------------------------------------- GradDrop

_SELECT = jax.jit(graddrop_select)


def _sign_parts(flat):
    return np.sum(np.maximum(flat, 0), axis=0), np.sum(np.minimum(flat, 0), axis=0)


@examples(40)
@given(task_grads(max_k=8), st.data())
def test_graddrop_keeps_one_sign_per_coordinate(case, data):
    """At every coordinate the output is the sum of the entries of one sign (so it has the
    sign of every kept entry): the positive ones where the purity P exceeds U, else the
    negative ones. float64 reference on the rows as the hardware sees them."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    p = flat.shape[1]
    u = data.draw(hnp.arrays(np.float64, (p,), elements=st.floats(1e-6, 1 - 1e-6)))
    u = u.astype(dtype).astype(np.float64)
    got = _flat_out(_SELECT(grads, _uniforms(u, layout, dtype)))
    pos, neg = _sign_parts(flat)
    mass = pos - neg
    purity = np.where(mass > 0, 0.5 * (1 + (pos + neg) / np.where(mass > 0, mass, 1)), 0.5)
    tol = 4 * flat.shape[0] * _eps(dtype) * np.maximum(mass, np.finfo(dtype).tiny)
    is_pos = np.abs(got - pos) <= tol
    is_neg = np.abs(got - neg) <= tol
    assert np.all(is_pos | is_neg | (np.abs(got) <= tol)), (got, pos, neg)
    margin = 8 * flat.shape[0] * _eps(dtype)  # P's rounding error
    assert np.all(is_pos[purity > u + margin])
    assert np.all(is_neg[purity < u - margin])
    kept = np.where(is_pos[None] & ~is_neg[None], flat > 0, np.where(is_neg[None], flat < 0, 0))
    assert np.all(got[None] * flat * kept >= 0)  # every kept entry has the output's sign


_GRADDROP = jax.jit(graddrop().update)


@examples(10)
@given(task_grads(max_k=8), st.integers(0, 2**31 - 1))
def test_graddrop_equal_rows_give_their_sum(case, seed):
    """All rows equal: every coordinate has purity 0 or 1 and keeps all rows, whatever the
    draw (the aggregator's own draws, in (0, 1))."""
    grads, layout, dtype = case
    grads = jax.tree.map(lambda g: jnp.broadcast_to(g[:1], g.shape), grads)
    out, _ = _GRADDROP(grads, GradDropState(key=jax.random.key(seed)))
    # x * 1 flushes subnormal entries, as the hardware does when it adds them up
    flat = flatten(jax.tree.map(lambda g: jnp.asarray(g) * 1, grads))
    k = flat.shape[0]
    np.testing.assert_allclose(_flat_out(out), k * flat[0], rtol=2 * k * _eps(dtype),
                               atol=10 * np.finfo(dtype).tiny)


def test_graddrop_is_unbiased_for_the_sum():
    """E d = P S+ + (1 - P) S- = sum_k g_k: the mean over many draws tends to the sum."""
    rng = np.random.default_rng(1)
    flat = rng.normal(size=(4, 6))
    grads = {"w": jnp.asarray(flat)}
    opt = graddrop(seed=5)
    n = 4000

    def step(state, _):
        out, state = opt.update(grads, state)
        return state, out["w"]

    _, outs = jax.lax.scan(step, opt.init(None), None, length=n)
    pos, neg = _sign_parts(flat)
    purity = pos / (pos - neg)
    sd = np.sqrt(purity * (1 - purity)) * (pos - neg) / np.sqrt(n)
    np.testing.assert_array_less(np.abs(np.mean(outs, axis=0) - flat.sum(0)), 5 * sd + 1e-12)
    assert len({np.asarray(o).tobytes() for o in outs[:20]}) > 1  # fresh draws each step


@examples(15)
@given(task_grads(max_k=8, degenerate=False), st.data())
def test_graddrop_leak(case, data):
    """d = sum_k (l_k + (1 - l_k) M_k) g_k; leak 1 is the plain sum."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)  # as the hardware sees it (subnormals are zero)
    k, p = flat.shape
    leak = np.asarray(data.draw(st.lists(st.floats(0, 1), min_size=k, max_size=k)))
    u = np.full(p, 0.5)
    got = _flat_out(_SELECT(grads, _uniforms(u, layout, dtype), jnp.asarray(leak, dtype)))
    pos, neg = _sign_parts(flat)
    purity = 0.5 * (1 + (pos + neg) / np.where(pos - neg > 0, pos - neg, 1))
    assume(np.all(np.abs(purity - 0.5) > 1e-4))
    mask = ((purity > u) & (flat > 0)) | ((purity < u) & (flat < 0))
    ref = np.sum((leak[:, None] + (1 - leak[:, None]) * mask) * flat, axis=0)
    atol = 4 * k * _eps(dtype) * np.sum(np.abs(flat), axis=0).max()
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol)
    out = _SELECT(grads, _uniforms(u, layout, dtype), jnp.ones(k, dtype))
    np.testing.assert_allclose(_flat_out(out), flat.sum(0), rtol=0, atol=atol)


def test_graddrop_matches_torchjd():
    worst = 0.0
    for case in _ref_cases("graddrop"):
        j, u = case["J"], case["U"]
        got = _SELECT({"w": jnp.asarray(j)}, {"w": jnp.asarray(u)}, jnp.asarray(case["leak"]))["w"]
        worst = max(worst, np.max(np.abs(got - case["out"])) / np.max(np.abs(j)))
    assert worst <= 1e-12, worst


def test_graddrop_arguments():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        graddrop(leak=1.5)
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's runtime check
        graddrop(leak=[[0.1]])
    opt = graddrop(leak=[0.1, 0.2])
    with pytest.raises(ValueError, match="2 leak values but the gradients have 3 task rows"):
        opt.update({"w": jnp.ones((3, 2))}, opt.init(None))


# ---------------------------------------------------------------- GradVac


def _raise_error(sin_before, delta):
    """How far a raise lands from its target t when the cosine c before it is off by at most
    delta and ||v|| by at most delta relatively (first order). The raise adds
    w = ||v|| (t s - c s_t) / s_t times u_j (s, s_t the sines of c and t): with x = c + w /
    ||v||, cos(v', u_j) = x / sqrt(x^2 + s^2), whose slope in x is s_t^3 / s at the target;
    the computed x is off by t / s_t (||v|| error * s + c delta / s) + delta + ||v|| error.
    Altogether at most (1 + 1 / s^2 + 2 / s) delta <= 4 delta / s^2."""
    return 4 * delta / sin_before**2


def gradvac_reference(flat, phi, orders, beta, dtype=np.float64):
    """Wang et al.'s Algorithm (GradVac) verbatim in float64, tasks i in ascending order and
    each i's others in `orders[i]`; targets above pinnx's TARGET_CAP are capped when
    raising (the paper does not cap; the states here never reach the cap).

    Returns the adjusted rows, the new targets, every row after each visit (history[i][s]
    is row i after s visits) and a (K, K) mask of the visits whose cosine is not
    determined in `dtype`: from the moment row i has cancelled to within sqrt(K eps) of
    the magnitudes added up in it (raising an opposite pair), its direction is rounding
    noise there (pinnx then counts it as a zero row).

    Self-check: each raise reaches its target up to its own float64 rounding (u = eps / 2):
    the cosine before and (relatively) the norm of v carry at most (2 P + 4) u (products
    and norms of P terms), which the raise amplifies (`_raise_error`); forming
    v + a g_j adds about u (||v|| + 8 |a| ||g_j||) (a itself carries a few u), and the
    cosine after is evaluated with (2 P + 4) u more."""
    k, p = flat.shape
    u64 = np.finfo(np.float64).eps / 2
    phi = np.array(phi, np.float64)
    norms = np.linalg.norm(flat, axis=1)
    noise = 10 * np.sqrt(k * np.finfo(dtype).eps)
    rows, history, unsure = [], [], np.zeros((k, k), bool)
    for i in range(k):
        v, mass, lost = flat[i].copy(), norms[i], False
        history.append([v.copy()])
        for j in orders[i]:
            nv = np.linalg.norm(v)
            lost = lost or nv <= noise * mass
            unsure[i, j] = lost
            cos = np.clip(v @ flat[j] / (nv * norms[j]), -1, 1) if nv * norms[j] > 0 else 0.0
            target = min(phi[i, j], TARGET_CAP)
            if cos < target and norms[j] > 0:
                s_now, s_t = np.sqrt(1 - cos**2), np.sqrt(1 - target**2)
                a = nv * (target * s_now - cos * s_t) / (norms[j] * s_t)
                v, mass = v + a * flat[j], mass + abs(a) * norms[j]
                after = np.linalg.norm(v)
                if s_now > 1e-6 and after > 0:  # the reference itself reaches the target
                    bound = (_raise_error(s_now, (2 * p + 4) * u64) + (2 * p + 4) * u64
                             + 2 * u64 * (nv + 8 * abs(a) * norms[j]) / after)
                    assert abs(v @ flat[j] / (after * norms[j]) - target) <= bound
            phi[i, j] = (1 - beta) * phi[i, j] + beta * cos
            history[i].append(v.copy())
        rows.append(v)
    return np.array(rows), phi, history, unsure


def _gradvac_tol(dtype, k, scale):
    # raising a pair that is (nearly) opposite divides by sin(angle): rows may differ by
    # about sqrt(eps) there, hence the square root
    return 30 * k * np.sqrt(_eps(dtype)) * scale + 10 * np.finfo(dtype).tiny


_GV_FIXED = {beta: jax.jit(gradvac(beta, random_order=False).update) for beta in (0.0, 0.5)}


@examples(15)
@given(task_grads(max_k=8), st.sampled_from([0.0, 0.5]))
def test_gradvac_matches_paper_algorithm(case, beta):
    """Two steps of the aggregator (ascending order) against the paper's algorithm: the
    aggregate and the EMA targets in the state."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    opt = gradvac(beta, random_order=False)
    state = opt.init(jax.tree.map(lambda g: g[0], grads), tasks=k)
    phi = np.zeros((k, k))
    orders = [[j for j in range(k) if j != i] for i in range(k)]
    for step in range(2):
        g = grads if step == 0 else jax.tree.map(lambda x: x[::-1], grads)
        f = flat if step == 0 else flat[::-1]
        out, state = _GV_FIXED[beta](g, state)
        rows, phi, _, unsure = gradvac_reference(f, phi, orders, beta, dtype)
        tol = _gradvac_tol(dtype, k, _scale(f))
        np.testing.assert_allclose(_flat_out(out), rows.sum(0), rtol=0, atol=tol)
        assert state.phi.dtype == dtype
        got = np.asarray(state.phi, np.float64)
        np.testing.assert_allclose(got[~unsure], phi[~unsure], rtol=0,
                                   atol=100 * np.sqrt(_eps(dtype)))
        phi = np.where(unsure, got, phi)  # carry pinnx's (undetermined) targets on


@jax.jit
def _GV_ROWS(grads, phi, order):
    return gradvac_rows(normalized_gram(grads)[1], phi, order, 0.3)


def _gradvac_pinnx_raise_bound(dtype, p, k, c_before, c_after, units, sin_before):
    """How far pinnx's raise may land from its target (see `gradvac_rows`), u = eps / 2.
    pinnx knows row v = sum_k c_k u_k only through the cosines: ||v||^2 = c' cos c and
    v . u_j = sum_k c_k cos_kj carry (2 P + 6) u per cosine (P-term products of the rows,
    their norms, two divisions) plus 2 K u (the sums), times (sum_k |c_k|)^2 =
    rho^2 ||v||^2 and rho ||v||: so the cosine before and (relatively) ||v|| are off by at
    most delta = (3 P + 2 K + 10) u rho^2 (rho >= 1: how far row i has cancelled),
    amplified by the raise (`_raise_error`). After it, c_j + w carries about 9 u
    sum |c|: (K + 10) eps rho_after covers that and this test's float64 evaluation."""
    u = _eps(dtype) / 2

    def rho(c):
        return np.sum(np.abs(c)) / np.linalg.norm(c @ units)

    delta = (3 * p + 2 * k + 10) * u * rho(c_before) ** 2
    return _raise_error(sin_before, delta) + (k + 10) * _eps(dtype) * rho(c_after)


@examples(15)
@given(task_grads(max_k=8), st.data())
def test_gradvac_raises_each_pair_to_its_target(case, data):
    """Visit by visit (random orders and targets): pinnx's adjusted row equals the paper's,
    and a pair whose cosine was below its target has the target cosine after its
    adjustment, to within the rounding of the raise (`_gradvac_pinnx_raise_bound`: it grows
    as the row cancels and as the pair nears opposite)."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k, p = flat.shape
    orders = [data.draw(st.permutations([j for j in range(k) if j != i])) for i in range(k)]
    phi = np.asarray(data.draw(hnp.arrays(np.float64, (k, k), elements=st.floats(-1, 0.99))))
    np.fill_diagonal(phi, -1)
    phi = phi.astype(dtype).astype(np.float64)
    _, ref_phi, history, unsure = gradvac_reference(flat, phi, orders, 0.3, dtype)
    norms64 = np.linalg.norm(flat, axis=1)
    units = flat / np.where(norms64 > 0, norms64, 1)[:, None]
    tol = _gradvac_tol(dtype, k, _scale(flat))
    order = np.asarray(orders, int).reshape(k, k - 1)
    c_before = None
    for s in range(k):
        # the state after s visits: the later visits go to the row itself, whose target
        # (the unused diagonal) is -1, so they raise nothing
        padded = np.concatenate([order[:, :s], np.repeat(np.arange(k)[:, None], k - 1 - s, 1)],
                                axis=1)
        c, new_phi = _GV_ROWS(grads, jnp.asarray(phi, dtype), jnp.asarray(padded))
        c = np.asarray(c, np.float64)
        rows = norms64[:, None] * (c @ units)
        for i in range(k):
            np.testing.assert_allclose(rows[i], history[i][s], rtol=0, atol=tol)
            if s == 0:
                continue
            j = order[i, s - 1]
            before, after = history[i][s - 1], rows[i]
            nb, na = np.linalg.norm(before), np.linalg.norm(after)
            if nb == 0 or norms64[j] == 0 or unsure[i, j]:
                continue
            cos_before = before @ flat[j] / (nb * norms64[j])
            target = min(phi[i, j], TARGET_CAP)
            # clearly below the target, and not (nearly) opposite: reaches it
            if cos_before < target - 1e-3 and abs(cos_before) < 1 - 1e-3 and na > 0:
                err = abs(after @ flat[j] / (na * norms64[j]) - target)
                v = c_before[i] @ units  # pinnx's row before, on the unit directions
                sin_before = np.sqrt(max(1 - (v @ units[j] / np.linalg.norm(v)) ** 2, 0))
                bound = _gradvac_pinnx_raise_bound(dtype, p, k, c_before[i], c[i], units,
                                                   sin_before)
                assert err <= bound, (i, j, s, err, bound)
        c_before = c
    off = ~unsure & ~np.eye(k, dtype=bool)
    np.testing.assert_allclose(np.asarray(new_phi)[off], ref_phi[off], rtol=0,
                               atol=100 * np.sqrt(_eps(dtype)))


_GV_STILL = jax.jit(gradvac(0.0, random_order=False).update)
_ROW_SUM = jax.jit(lambda grads: jax.tree.map(lambda g: jnp.sum(g, axis=0), grads))


@examples(10)
@given(task_grads(max_k=8))
def test_gradvac_with_targets_at_minus_one_is_the_sum(case):
    """Targets at -1 and beta = 0: no cosine is below its target, ever: d = sum_k g_k."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    state = GradVacState(phi=-jnp.ones((k, k), dtype), key=None)
    for _ in range(2):
        out, state = _GV_STILL(grads, state)
        atol = 4 * k * _eps(dtype) * _scale(flat) + 10 * np.finfo(dtype).tiny
        np.testing.assert_allclose(_flat_out(out), flat.sum(0), rtol=0, atol=atol)
        # nothing raised: exactly the rows' sum, as the hardware forms it
        jax.tree.map(np.testing.assert_array_equal, out, _ROW_SUM(grads))
        np.testing.assert_array_equal(state.phi, -1)


_GV_FRESH = jax.jit(gradvac(0.5, random_order=False).update)


@examples(10)
@given(task_grads(max_k=8, degenerate=False))
def test_gradvac_fresh_state_without_conflict_is_the_sum(case):
    """Fresh targets are 0: rows with pairwise non-negative cosines are left alone."""
    grads, layout, dtype = case
    grads = jax.tree.map(jnp.abs, grads)  # non-negative entries: cosines >= 0
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    out, state = _GV_FRESH(grads, gradvac(0.5, random_order=False).init(None, tasks=k))
    atol = 4 * k * _eps(dtype) * _scale(flat)
    np.testing.assert_allclose(_flat_out(out), flat.sum(0), rtol=0, atol=atol)
    n = np.linalg.norm(flat, axis=1)
    n = np.where(n > 0, n, np.inf)  # zero rows: cosine 0
    ref = 0.5 * flat @ flat.T / np.outer(n, n)
    off = ~np.eye(k, dtype=bool)
    np.testing.assert_allclose(np.asarray(state.phi)[off], ref[off], atol=1e-5)


_GV_RANDOM = jax.jit(gradvac(0.5).update)


@examples(10)
@given(task_grads(k=3, max_k=3, degenerate=False), st.integers(0, 2**31 - 1))
def test_gradvac_random_order_is_one_of_the_orders(case, seed):
    """With a random order, the result is the paper's for some order of each row."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    out, _ = _GV_RANDOM(grads, GradVacState(jnp.zeros((3, 3), dtype), jax.random.key(seed)))
    got = _flat_out(out)
    choices = [list(itertools.permutations([j for j in range(3) if j != i])) for i in range(3)]
    errors = [np.max(np.abs(got - gradvac_reference(flat, np.zeros((3, 3)), o, 0.5)[0].sum(0)))
              for o in itertools.product(*choices)]
    assert min(errors) <= _gradvac_tol(dtype, 3, _scale(flat))


def test_gradvac_target_one_is_capped():
    """A target of 1 would need an infinite multiple of g_j: raising stops at TARGET_CAP."""
    grads = {"w": jnp.array([[1.0, 0.0], [0.0, 3.0]])}
    norms, cos = normalized_gram(grads)
    c, _ = gradvac_rows(cos, jnp.ones((2, 2)), jnp.array([[1], [0]]), 0.5)
    rows = np.asarray(c)  # in the unit basis, which is orthonormal here
    for i, j in ((0, 1), (1, 0)):
        np.testing.assert_allclose(rows[i, j] / np.linalg.norm(rows[i]), TARGET_CAP,
                                   rtol=1e-12)
    out, _ = gradvac(0.5, random_order=False).update(grads, GradVacState(jnp.ones((2, 2)), None))
    assert np.all(np.isfinite(out["w"])) and np.max(np.abs(out["w"])) < 1e3 * 3


@jax.jit
def _gradvac_step(j, phi, order, beta):
    grads = {"w": j}
    norms, cos = normalized_gram(grads)
    c, phi = gradvac_rows(cos, phi, order, beta)
    return unit_combination(norms @ c, norms, grads)["w"], phi


def test_gradvac_matches_torchjd():
    worst_out = worst_phi = 0.0
    for case in _ref_cases("gradvac"):
        k = case["J"].shape[1]
        phi = jnp.zeros((k, k))
        for j, order, out, ref_phi in zip(case["J"], case["order"], case["out"], case["phi"],
                                          strict=True):
            got, phi = _gradvac_step(jnp.asarray(j), phi, jnp.asarray(order),
                                     jnp.asarray(case["beta"]))
            worst_out = max(worst_out, np.max(np.abs(got - out)) / np.max(np.abs(out)))
            worst_phi = max(worst_phi, np.max(np.abs(phi - ref_phi)))
    assert worst_out <= 1e-10 and worst_phi <= 1e-12, (worst_out, worst_phi)


def test_gradvac_arguments():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gradvac(1.5)
    opt = gradvac()
    with pytest.raises(ValueError, match="number of tasks"):
        opt.init(None)
    with pytest.raises(ValueError, match="initialised for 3 tasks but got 2 task rows"):
        opt.update({"w": jnp.ones((2, 2))}, opt.init(None, tasks=3))


# ---------------------------------------------------------------- Krum


def krum_reference_scores(flat, f, squared):
    """Brute force: each row's summed (squared) distance to its K - f - 2 nearest rows."""
    d = np.linalg.norm(flat[:, None] - flat[None, :], axis=2)
    d = d**2 if squared else d
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, : flat.shape[0] - f - 2].sum(axis=1)


@functools.cache
def _krum_parts(f, m, squared):
    """Scores, weights and the aggregator's output, from one compiled computation (so the
    weights are the ones the output was formed with, near-ties included)."""

    def parts(grads):
        norms, cos = normalized_gram(grads)
        out, _ = krum(f, m, squared=squared).update(grads, None)
        return krum_scores(norms, cos, f, squared), krum_weights(norms, cos, f, m, squared), out

    return jax.jit(parts)


@examples(15)
@given(task_grads(max_k=8), st.data())
def test_krum_selects_the_most_central_rows(case, data):
    """The m rows averaged have the m smallest sums of (squared) distances to their
    K - f - 2 nearest rows (brute force; ties within rounding may go either way)."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    assume(k >= 3)
    f = data.draw(st.sampled_from(sorted({0, k - 3})))
    m = data.draw(st.sampled_from(sorted({1, 2, k - f - 2})))
    squared = data.draw(st.booleans())
    got_scores, w, out = _krum_parts(f, m, squared)(grads)
    w = np.asarray(w, np.float64)
    chosen = np.flatnonzero(w)
    assert len(chosen) == m and np.allclose(w[chosen], 1 / m)
    # scores in units of the largest norm, as pinnx computes them
    scores = krum_reference_scores(flat / _scale(flat), f, squared)
    err = (k * 8 * _eps(dtype)) if squared else (k * 4 * np.sqrt(_eps(dtype)))
    np.testing.assert_allclose(np.asarray(got_scores, np.float64), scores, rtol=0, atol=err)
    assert np.all(scores[chosen] <= np.sort(scores)[m - 1] + 2 * err), (scores, chosen)
    # the mean of the chosen rows (`row_mean`): an m-term sum is within (m - 1) u sum |g_k|
    # (u = eps / 2, to first order), the division adds u |mean|, a correctly rounded float64
    # reference (fsum) u64 |mean|; plus what is flushed: a mean below tiny, entries below
    # tiny times their column's largest
    ref = np.array([math.fsum(col) for col in flat[chosen].T]) / m
    mean_abs = np.mean(np.abs(flat[chosen]), axis=0)
    tiny = np.finfo(dtype).tiny
    atol = (_eps(dtype) * (m * mean_abs / 2 + np.abs(ref))
            + tiny * (1 + np.max(np.abs(flat[chosen]), axis=0)))
    got = _flat_out(out)
    assert np.all(np.abs(got - ref) <= atol), (got, ref, atol)


def test_krum_ignores_an_outlier():
    rng = np.random.default_rng(3)
    flat = 1.0 + 0.1 * rng.normal(size=(5, 7))
    flat[2] = -50.0
    out, _ = krum(1, 2).update({"w": jnp.asarray(flat)}, None)
    w = krum_weights(*normalized_gram({"w": jnp.asarray(flat)}), 1, 2)
    assert w[2] == 0
    np.testing.assert_allclose(out["w"], flat[np.flatnonzero(w)].mean(0))


def test_krum_with_too_few_rows_is_the_mean():
    grads = {"w": jnp.array([[1.0, 2.0], [3.0, -4.0]])}
    with pytest.warns(UserWarning, match="needs at least 3 task rows"):
        out, _ = krum().update(grads, None)
    np.testing.assert_allclose(out["w"], [2.0, -1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        krum().update({"w": jnp.ones((3, 2))}, None)


_GRAM = jax.jit(normalized_gram)
_KRUM_WEIGHTS = jax.jit(krum_weights, static_argnums=(2, 3, 4))


def test_krum_matches_torchjd():
    """squared=False: torchjd's Krum sums distances, not squared distances."""
    worst = 0.0
    for case in _ref_cases("krum"):
        w = _KRUM_WEIGHTS(*_GRAM({"w": jnp.asarray(case["J"])}), int(case["n_byzantine"]),
                          int(case["n_selected"]), False)
        got = np.asarray(w) @ case["J"]
        worst = max(worst, np.max(np.abs(got - case["out"])) / np.max(np.abs(case["J"])))
    assert worst <= 1e-14, worst


def test_krum_arguments():
    with pytest.raises(ValueError, match="at least 0"):
        krum(-1)
    with pytest.raises(ValueError, match="at least 1"):
        krum(0, 0)
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's runtime check
        krum(0.5)
    with pytest.raises(ValueError, match="selects more rows than the 3 task rows"):
        krum(0, 4).update({"w": jnp.ones((3, 2))}, None)


# ---------------------------------------------------------------- TrimmedMean


@functools.cache
def _trimmed(trim):
    return jax.jit(trimmed_mean(trim).update)


@examples(25)
@given(task_grads(max_k=8), st.data())
def test_trimmed_mean_is_the_coordinatewise_trimmed_mean(case, data):
    grads, layout, dtype = case
    flat = flatten(grads)  # sorting and averaging: what the hardware sees, entry by entry
    flat = np.where(np.abs(flat) < np.finfo(dtype).tiny, 0.0, flat)
    k = flat.shape[0]
    trim = data.draw(st.integers(0, (k - 1) // 2))
    out, _ = _trimmed(trim)(grads, None)
    kept = [sorted(col)[trim : k - trim] for col in flat.T]  # brute force, column by column
    ref = np.array([np.mean(col) for col in kept])
    atol = 2 * k * _eps(dtype) * np.array([np.max(np.abs(col)) for col in kept])
    got = _flat_out(out)
    assert np.all(np.abs(got - ref) <= atol + 10 * np.finfo(dtype).tiny), (got, ref)


def test_trimmed_mean_matches_torchjd():
    worst = 0.0
    for case in _ref_cases("trimmed_mean"):
        got = trimmed_mean(int(case["trim"])).update({"w": jnp.asarray(case["J"])}, None)[0]
        worst = max(worst, np.max(np.abs(got["w"] - case["out"])) / np.max(np.abs(case["J"])))
    assert worst <= 1e-14, worst


def test_trimmed_mean_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        trimmed_mean(-1)
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's runtime check
        trimmed_mean(1.5)
    with pytest.raises(ValueError, match="needs at least 3 task rows; got 2"):
        trimmed_mean(1).update({"w": jnp.ones((2, 2))}, None)


# ---------------------------------------------------------------- Random (RLW)


_SOFTMAX = jax.jit(random_weights)


@given(hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-8, 8)),
       st.sampled_from([jnp.float32, jnp.float64]))
def test_random_weights_are_a_softmax(z, dtype):
    w = np.asarray(_SOFTMAX(jnp.asarray(z, dtype)), np.float64)
    zz = np.asarray(z, dtype).astype(np.float64)
    ref = np.exp(zz - zz.max()) / np.sum(np.exp(zz - zz.max()))
    assert np.all(w > 0)
    np.testing.assert_allclose(w.sum(), 1, rtol=len(z) * _eps(dtype))
    np.testing.assert_allclose(w, ref, rtol=8 * _eps(dtype))


_RANDOM = jax.jit(random(seed=11).update)


@examples(20)
@given(task_grads(max_k=8, layouts=LAYOUTS[2:], degenerate=False))
def test_random_is_a_positive_convex_combination(case):
    """Black box: the weights solved back from the output (rows independent, as the
    hardware sees them) are positive, sum to one, and change from step to step.

    The output is sum_k w_k g_k to within e_p = (K + 1) eps max_k |g_kp| plus
    (K + 1) tiny (1 + max_k |g_kp|) for what is flushed (`convex_sum`), so the least-squares
    weights are within ||e|| / sigma_min of w. Checked where that determines them to 1e-3:
    rows near the smallest normal number, whose combinations are flushed to zero, are
    checked exactly in test_robust_aggregators_at_the_float_limits."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    sv = np.linalg.svd(flat, compute_uv=False)
    assume(sv[-1] > 0 and sv[0] < 1e3 * sv[-1])
    top = np.max(np.abs(flat), axis=0)
    e = (k + 1) * (_eps(dtype) * top + np.finfo(dtype).tiny * (1 + top))
    tol = np.linalg.norm(e) / sv[-1] + 1e-12  # + float64 least squares' own error
    assume(tol < 1e-3)
    state = random(seed=11).init(None)
    seen = []
    for _ in range(2):
        out, state = _RANDOM(grads, state)
        w, *_ = np.linalg.lstsq(flat.T, _flat_out(out), rcond=None)
        assert np.all(w > -tol) and abs(w.sum() - 1) <= np.sqrt(k) * tol, (w, tol)
        seen.append(w)
    if k > 1:
        assert np.max(np.abs(seen[0] - seen[1])) > 2 * tol


def test_random_uses_a_fresh_normal_draw_each_step():
    """The documented scheme: each update splits the key into (next key, draw key) and
    draws z ~ N(0, I_K) from the second."""
    grads = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)))}
    opt = random(seed=7)
    state = opt.init(None)
    key = jax.random.key(7)
    for _ in range(3):
        out, state = opt.update(grads, state)
        key, sub = jax.random.split(key)
        w = random_weights(jax.random.normal(sub, (3,), jnp.float64))
        np.testing.assert_allclose(out["w"], weighted_sum(w, grads)["w"], rtol=1e-14)


@jax.jit
def _RLW(z, grads):
    return weighted_sum(random_weights(z), grads)


def test_random_matches_torchjd():
    worst = 0.0
    for case in _ref_cases("random"):
        got = _RLW(jnp.asarray(case["z"]), {"w": jnp.asarray(case["J"])})
        worst = max(worst, np.max(np.abs(got["w"] - case["out"])) / np.max(np.abs(case["J"])))
    assert worst <= 1e-14, worst


# ---------------------------------------------------------------- the float limits


def _limit_rows(dtype, k):
    """(name, (K, 3) rows): equal rows at the ends of the float range, and a subnormal
    row (zero to the hardware)."""
    fi = np.finfo(dtype)
    for name, value in (("tiny", fi.tiny), ("1.5 tiny", 1.5 * fi.tiny), ("max", fi.max),
                        ("-max", -fi.max), ("subnormal", fi.smallest_subnormal * 3)):
        yield name, np.full((k, 3), value, dtype)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
def test_robust_aggregators_at_the_float_limits(dtype):
    """Equal rows at the ends of the float range: the means (random's convex combination,
    krum's and trimmed_mean's means) are the row itself, exactly (finite, and not flushed to
    zero: within the range of the entries); graddrop (all rows of one sign: all kept) and
    gradvac (cosine 1: nothing raised) are the rows' sum as the hardware forms it (inf where
    that overflows); a subnormal row is zero everywhere."""
    k = 4
    means = {"random": random(seed=2), "krum": krum(0, 2), "trimmed_mean": trimmed_mean(1)}
    sums = {"graddrop": graddrop(seed=3), "gradvac": gradvac(0.5, random_order=False)}
    for name, flat in _limit_rows(dtype, k):
        row = flush(flat[:1].astype(np.float64), dtype)[0]
        grads = {"w": jnp.asarray(flat)}
        for label, opt in {**means, **sums}.items():
            out, _ = opt.update(grads, opt.init(None, tasks=k))
            got = np.asarray(out["w"], np.float64)
            want = row if label in means else np.asarray(jnp.sum(grads["w"], axis=0))
            np.testing.assert_array_equal(got, want, err_msg=f"{label}, rows of {name}")
        # a single row: random's weight is exactly 1, gradvac has nothing to raise
        for label, opt in (("random", random(seed=2)), ("gradvac", gradvac(0.5))):
            out, _ = opt.update({"w": jnp.asarray(flat[:1])}, opt.init(None, tasks=1))
            np.testing.assert_array_equal(np.asarray(out["w"], np.float64), row,
                                          err_msg=f"{label}, one row of {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_graddrop_purity_at_the_float_limits(dtype):
    """P is computed in units of each coordinate's largest entry: entries near the smallest
    normal number (whose sum S would be subnormal, flushed) and near the largest (whose
    sum A would overflow) get their true purity, and the kept sum is not flushed."""
    fi = np.finfo(dtype)
    for scale, a, b in ((fi.tiny, 1.5, -1.0), (fi.max, 0.9, -0.3)):
        pos, neg = scale * a, scale * b
        purity = 0.5 * (1 + (a + b) / (a - b))  # 0.6 and 0.75
        grads = {"w": jnp.asarray([[pos], [neg]], dtype)}
        for u, want in ((purity - 0.04, pos), (purity + 0.04, neg)):
            got = _SELECT(grads, {"w": jnp.asarray([u], dtype)})["w"]
            np.testing.assert_array_equal(np.asarray(got), np.asarray([want], dtype))


def test_krum_mean_is_not_flushed_next_to_an_outlier():
    """The power of two that scales krum's mean comes from the selected rows only: a 1e30
    outlier does not flush float32 rows of 1e-30 (1e-30 / 2^99 is subnormal)."""
    small = np.array([[1.0, 2.0], [1.5, 2.0], [1.0, 2.5]]) * 1e-30
    flat = np.concatenate([small, [[1e30, 1e30]]]).astype(np.float32)
    out, _ = krum(1, 2).update({"w": jnp.asarray(flat)}, None)
    w = krum_weights(*normalized_gram({"w": jnp.asarray(flat)}), 1, 2)
    assert w[3] == 0
    np.testing.assert_allclose(out["w"], flat[np.flatnonzero(w)].mean(0), rtol=1e-6)
