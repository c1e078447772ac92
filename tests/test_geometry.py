"""Tests for pinnx.geometry: domains and collocation sampling.

Every distinct (domain, n, method, sides, dtype) is one XLA compilation (~0.1-0.5 s on CPU),
so the tests share a few configurations through the cached `_points` helper.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import qmc

from pinnx.geometry import METHODS, Box, Interval, SpaceTime

N = 32
DOMAINS = {
    "interval": Interval(-1.0, 2.0),
    "box2": Box((0.0, -1.0), (2.0, 1.0), names=("x", "y")),
    "box3": Box((0.0, 0.0, 0.0), (1.0, 0.5, 2.0)),
    "st2": SpaceTime(Box((0.0, 0.0), (1.0, 2.0)), 0.5, 1.5),
}
# (domain, set) pairs sampled with every method: the 1-D endpoints, a 3-D box, and all three
# sets of a space-time domain with 2-D space (lateral faces are 2-D).
SETS = [
    ("interval", "boundary"),
    ("box3", "interior"),
    ("st2", "interior"),
    ("st2", "boundary"),
    ("st2", "initial"),
]


def _sample(dom, which, key, n, method, dtype=None):
    if which == "interior":
        return dom.sample_interior(key, n, method, dtype)
    if which == "boundary":
        return dom.sample_boundary(key, n, None, method, dtype)
    return dom.sample_initial(key, n, method, dtype)


@functools.cache
def _points(name, which, method, seed=0, n=N, dtype=None):
    x = np.asarray(_sample(DOMAINS[name], which, jax.random.key(seed), n, method, dtype))
    x.flags.writeable = False
    return x


def _rows(dom, which, n, method):
    if method != "grid":
        return n
    if which == "interior":
        return math.prod(dom.grid_shape(n))
    if which == "boundary":
        return sum(dom.boundary_counts(n, method="grid").values())
    return math.prod(dom.space.grid_shape(n))


def _inside(x, dom):
    return bool(np.all((x >= np.asarray(dom.lo)) & (x <= np.asarray(dom.hi))))


def _blocks(dom, x, method="uniform"):
    """(side, rows of x on that side) in stacking order."""
    start = 0
    for side, rows in dom.boundary_counts(N, method=method).items():
        yield side, x[start : start + rows]
        start += rows
    assert start == len(x)


# ----------------------------------------------------------------------------- construction


def test_box_attributes_and_defaults():
    box = Box([0, 1, 2], [1, 3, 5])
    assert box.dim == 3 and box.names == ("x0", "x1", "x2")
    assert box.lo == (0.0, 1.0, 2.0) and box.hi == (1.0, 3.0, 5.0)
    assert box.volume == pytest.approx(6.0)
    assert box.sides == ("x0-", "x0+", "x1-", "x1+", "x2-", "x2+")
    assert Box([0.0], [1.0]).names == ("x",)
    line = Interval(-1, 1, name="r")
    assert line == Box((-1.0,), (1.0,), names=("r",)) and line.sides == ("r-", "r+")


def test_spacetime_attributes():
    dom = DOMAINS["st2"]
    assert dom.dim == 3 and dom.names == ("x0", "x1", "t")
    assert dom.lo == (0.0, 0.0, 0.5) and dom.hi == (1.0, 2.0, 1.5)
    assert dom.sides == ("x0-", "x0+", "x1-", "x1+")  # lateral only: no t-/t+
    assert dom.volume == pytest.approx(2.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Box((0.0, 1.0), (1.0, 1.0)),  # lo == hi
        lambda: Box((0.0,), (1.0, 2.0)),  # length mismatch
        lambda: Box((), ()),
        lambda: Box((0.0,), (math.inf,)),
        lambda: Box((0.0, 0.0), (1.0, 1.0), names=("x",)),
        lambda: Box((0.0, 0.0), (1.0, 1.0), names=("x", "x")),
        lambda: Interval(1.0, 0.0),
        lambda: SpaceTime(Interval(0.0, 1.0), 1.0, 1.0),
        lambda: SpaceTime(Interval(0.0, 1.0, name="t"), 0.0, 1.0),
    ],
)
def test_invalid_domains_raise(make):
    with pytest.raises(ValueError):
        make()


# ----------------------------------------------------------------------------- sets


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name,which", SETS)
def test_points_inside_with_expected_shape(name, which, method):
    dom = DOMAINS[name]
    x = _points(name, which, method)
    assert x.shape == (_rows(dom, which, N, method), dom.dim)
    assert x.dtype == np.float64  # conftest enables x64: the default float is float64
    assert _inside(x, dom)


@pytest.mark.parametrize("method", METHODS)
def test_boundary_points_exactly_on_their_side(method):
    for name in ("interval", "st2"):
        dom = DOMAINS[name]
        for side, block in _blocks(dom, _points(name, "boundary", method), method):
            axis = dom.names.index(side[:-1])
            fixed = dom.hi[axis] if side.endswith("+") else dom.lo[axis]
            assert np.all(block[:, axis] == fixed), side
            assert _inside(block, dom)


@pytest.mark.parametrize("method", METHODS)
def test_initial_points_at_t0_exactly(method):
    x = _points("st2", "initial", method)
    assert np.all(x[:, -1] == 0.5)


def test_float32_and_default_dtype():
    dom = DOMAINS["st2"]
    x = _points("st2", "boundary", "lhs", dtype=jnp.float32)
    assert x.dtype == np.float32 and _inside(x, dom)
    x = _points("st2", "initial", "sobol", dtype=jnp.float32)
    assert x.dtype == np.float32 and np.all(x[:, -1] == np.float32(0.5))
    with jax.enable_x64(False):
        assert dom.sample_interior(jax.random.key(0), 8, "halton").dtype == jnp.float32


def test_boundary_subset_of_sides():
    box = DOMAINS["box2"]
    x = np.asarray(box.sample_boundary(jax.random.key(0), 10, sides=["x-", "x+"]))
    assert box.boundary_counts(10, ["x-", "x+"]) == {"x-": 5, "x+": 5}
    assert np.all(x[:5, 0] == 0.0) and np.all(x[5:, 0] == 2.0) and _inside(x, box)


# ----------------------------------------------------------------------------- LHS


@given(
    n=st.sampled_from([1, 7, 64, 257]),  # few sizes: each (n, d) is one compilation
    d=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_lhs_one_point_per_stratum_per_axis(n, d, seed):
    box = Box([-1.0] * d, [0.5 + i for i in range(d)])
    x = np.asarray(box.sample_interior(jax.random.key(seed), n, "lhs"))
    assert x.shape == (n, d) and _inside(x, box)
    u = (x - np.asarray(box.lo)) / (np.asarray(box.hi) - np.asarray(box.lo))
    strata = np.minimum(np.floor(u * n), n - 1).astype(int)
    for axis in range(d):
        np.testing.assert_array_equal(np.sort(strata[:, axis]), np.arange(n))


@pytest.mark.parametrize("method", ["lhs", "sobol", "halton"])
def test_faces_are_stratified_too(method):
    # each face of the boundary is its own LHS / QMC set: check the x-/x+ endpoints' t values
    # of a 1-D-space domain are 1-D stratified.
    dom = SpaceTime(Interval(0.0, 1.0), 0.0, 4.0)
    x = np.asarray(dom.sample_boundary(jax.random.key(3), 16, method=method))
    for side in ("x-", "x+"):
        t = x[x[:, 0] == (0.0 if side == "x-" else 1.0), 1]
        np.testing.assert_array_equal(np.sort(np.floor(t / 4.0 * 8).astype(int)), np.arange(8))


# ----------------------------------------------------------------------------- QMC


@pytest.mark.parametrize("method", ["sobol", "halton", "lhs"])
@pytest.mark.parametrize("d,n", [(2, 128), (3, 100)])
def test_qmc_lower_discrepancy_than_iid(method, d, n):
    box = Box([0.0] * d, [1.0] * d)
    keys = [jax.random.key(s) for s in range(3)]

    def mean_discrepancy(m):
        xs = [np.asarray(box.sample_interior(k, n, m)) for k in keys]
        return np.mean([qmc.discrepancy(x) for x in xs])

    bound = 0.3 if method == "lhs" else 0.15  # measured ratios: lhs ~0.1, sobol/halton < 0.06
    assert mean_discrepancy(method) < bound * mean_discrepancy("uniform")


@pytest.mark.parametrize("d", [1, 2])
def test_sobol_power_of_two_balance_survives_the_random_shift(d):
    # unscrambled Sobol' in d <= 2 is a (0, m, d)-net: every elementary dyadic box of volume
    # 1/n holds exactly one point. The digital shift must keep that (a shift mod 1 would not).
    m = 6
    box = Box([0.0] * d, [1.0] * d)
    for seed in range(3):
        x = np.asarray(box.sample_interior(jax.random.key(seed), 2**m, "sobol"))
        for split in [(m,)] if d == 1 else [(a, m - a) for a in range(m + 1)]:
            cells = [np.floor(x[:, i] * 2**bits).astype(int) for i, bits in enumerate(split)]
            assert len(set(zip(*cells, strict=True))) == 2**m


# ----------------------------------------------------------------------------- keys and jit


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name,which", [("box3", "interior"), ("st2", "boundary")])
def test_reproducible_and_key_dependent(name, which, method):
    dom = DOMAINS[name]
    again = np.asarray(_sample(dom, which, jax.random.key(0), N, method))
    np.testing.assert_array_equal(again, _points(name, which, method))
    assert not np.array_equal(_points(name, which, method, seed=1), again)


def test_legacy_uint32_keys():
    x = DOMAINS["box3"].sample_interior(jax.random.PRNGKey(0), N)
    assert x.shape == (N, 3) and _inside(np.asarray(x), DOMAINS["box3"])


def test_jit_with_traced_key_matches_eager():
    dom = DOMAINS["st2"]

    cases = [("boundary", m) for m in METHODS] + [("interior", "lhs"), ("initial", "halton")]

    @jax.jit
    def sample_all(key):
        return {(which, m): _sample(dom, which, key, N, m) for which, m in cases}

    for (which, method), x in sample_all(jax.random.key(0)).items():
        np.testing.assert_array_equal(x, _points("st2", which, method), err_msg=f"{which} {method}")


def test_resampling_inside_scan_with_domain_as_argument():
    @jax.jit
    def resample(dom, key):
        def step(key, _):
            key, sub = jax.random.split(key)
            return key, dom.sample_interior(sub, 16, "sobol")

        return jax.lax.scan(step, key, length=3)[1]

    xs = np.asarray(resample(DOMAINS["box2"], jax.random.key(0)))
    assert xs.shape == (3, 16, 2) and _inside(xs.reshape(-1, 2), DOMAINS["box2"])
    assert not np.array_equal(xs[0], xs[1])


# ----------------------------------------------------------------------------- split, normals, grid


@given(
    n=st.integers(1, 500),
    widths=st.lists(st.floats(0.01, 100.0), min_size=1, max_size=4),
    data=st.data(),
)
def test_boundary_split_sums_to_n_and_is_proportional(n, widths, data):
    box = Box([0.0] * len(widths), widths)
    sides = data.draw(st.lists(st.sampled_from(box.sides), min_size=1, unique=True))
    counts = box.boundary_counts(n, sides)
    assert list(counts) == sides and sum(counts.values()) == n
    measures = np.array([math.prod(_drop(widths, box.names.index(s[:-1]))) for s in sides])
    quotas = n * measures / measures.sum()
    assert np.all(np.abs(np.array(list(counts.values())) - quotas) < 1 + 1e-9)


def _drop(values, axis):
    return values[:axis] + values[axis + 1 :]


def test_boundary_split_examples():
    counts = Box((0.0, 0.0), (2.0, 1.0)).boundary_counts(10)
    assert counts == {"x0-": 2, "x0+": 2, "x1-": 3, "x1+": 3}  # largest remainders first
    assert Interval(0.0, 1.0).boundary_counts(5) == {"x-": 3, "x+": 2}  # endpoints weigh 1
    # measures 2, 2, 1, 1: quotas 1, 1, .5, .5; the tie goes to the earlier side; x1+ gets 0
    assert DOMAINS["st2"].boundary_counts(3) == {"x0-": 1, "x0+": 1, "x1-": 1, "x1+": 0}
    # shares 11, 11, 5, 5 on faces (x1, t) = 2 x 1 and (x0, t) = 1 x 1: grids 5x3 and 3x3
    assert DOMAINS["st2"].boundary_counts(N, method="grid") == {
        "x0-": 15,
        "x0+": 15,
        "x1-": 9,
        "x1+": 9,
    }


def test_normals_are_outward_unit_vectors():
    for name in ("interval", "st2"):
        dom = DOMAINS[name]
        for side, block in _blocks(dom, _points(name, "boundary", "uniform")):
            nrm = np.asarray(dom.normal(side))
            axis = dom.names.index(side[:-1])
            assert nrm.shape == (dom.dim,) and np.sum(nrm**2) == 1.0
            assert nrm[axis] == (1.0 if side.endswith("+") else -1.0)
            p = block[0]
            assert not _inside(p + 1e-3 * nrm, dom) and _inside(p - 1e-3 * nrm, dom)
    assert DOMAINS["st2"].normal("x1+", dtype=jnp.float32).dtype == jnp.float32
    np.testing.assert_array_equal(DOMAINS["st2"].normal("x1+"), [0.0, 1.0, 0.0])


def test_grid_count_rule_and_lattice():
    assert Box([0.0] * 3, [1.0] * 3).grid_shape(1000) == (10, 10, 10)
    assert Box([0.0] * 2, [1.0] * 2).grid_shape(50) == (8, 8)  # ceil(sqrt(50))
    assert Box((0.0, 0.0), (2.0, 1.0)).grid_shape(50) == (10, 5)
    assert Interval(0.0, 1.0).grid_shape(7) == (7,)
    assert DOMAINS["st2"].grid_shape(N) == (3, 6, 3)  # lengths 1, 2, 1: 16 ** (1/3) = 2.52
    for n in range(1, 300, 7):
        assert math.prod(DOMAINS["box3"].grid_shape(n)) >= n
    dom = DOMAINS["st2"]
    k = dom.grid_shape(N)
    x = _points("st2", "interior", "grid")
    g = x.reshape(*k, 3)
    for axis, count in enumerate(k):
        values = np.unique(x[:, axis])
        assert len(values) == count
        np.testing.assert_allclose(np.diff(values), (dom.hi[axis] - dom.lo[axis]) / count)
    assert np.all(g[:, :, :, 0] == g[:, :1, :1, 0]) and np.all(g[..., 2] == g[:1, :1, :, 2])
    assert not np.array_equal(_points("st2", "interior", "grid", seed=1), x)  # random shift


def test_invalid_arguments_raise():
    box, dom, key = DOMAINS["box2"], DOMAINS["st2"], jax.random.key(0)
    with pytest.raises(ValueError, match="valid methods: uniform, lhs, sobol, halton, grid"):
        box.sample_interior(key, 10, "random")
    with pytest.raises(ValueError, match="valid sides: x-, x\\+, y-, y\\+"):
        box.sample_boundary(key, 10, sides="z-")
    with pytest.raises(ValueError, match="sample_initial"):
        dom.sample_boundary(key, 10, sides="t-")
    for bad in (
        lambda: box.normal("left"),
        lambda: box.sample_interior(key, 0),
        lambda: box.sample_boundary(key, 0),
        lambda: dom.sample_initial(key, 0),
        lambda: dom.sample_initial(key, 5, "qmc"),
        lambda: box.sample_boundary(key, 5, sides=[]),
        lambda: box.sample_boundary(key, 5, sides=["x-", "x-"]),
        lambda: box.sample_interior(key, 5, dtype=jnp.int32),
        lambda: box.boundary_counts(5, method="nope"),
        lambda: box.grid_shape(0),
    ):
        with pytest.raises(ValueError):
            bad()
