"""ATL-PINN multi-task networks: shapes, dtypes, jit/vmap/grad, gradient routing, gates."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import examples

from pinnx.combine._gate import cosine_gate
from pinnx.nn._hard_sharing import HardSharing
from pinnx.nn._mmoe import MMoE
from pinnx.nn._multitask import shared_mask
from pinnx.nn._ple import PLE
from pinnx.nn._soft_sharing import SoftSharing
from pinnx.tasks import cosines, task_grads

KEY = jax.random.key(0)


@functools.cache
def make(kind, k=2, out_size="scalar", dtype=None):
    """A small network of each kind (cached: building one eagerly costs seconds)."""
    return build(kind, k, out_size, dtype, KEY)


def build(kind, k, out_size, dtype, key):
    if kind == "hard":
        return HardSharing(2, out_size, k, width=6, depth=2, key=key, dtype=dtype)
    if kind == "soft":
        return SoftSharing(2, out_size, k, width=6, depth=2, key=key, dtype=dtype)
    if kind == "mmoe":
        return MMoE(2, out_size, k, num_experts=3, width=6, depth=2, key=key, dtype=dtype)
    return PLE(2, out_size, k, width=6, depth=1, levels=3, key=key, dtype=dtype)


KINDS = ("hard", "soft", "mmoe", "ple")
# hard sharing and MMoE in the fast tier; the other two nets in the slow one
KINDS_FAST = ("hard", pytest.param("soft", marks=pytest.mark.slow), "mmoe",
              pytest.param("ple", marks=pytest.mark.slow))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)])
def test_shapes_and_dtypes(kind, dtype):
    net = make(kind, k=3, dtype=dtype)
    y = net(jnp.array([0.2, 0.7], dtype))
    assert y.shape == (3,) and y.dtype == dtype
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(net))
    vec = make(kind, k=2, out_size=4, dtype=dtype)
    assert jax.vmap(vec)(jnp.ones((5, 2), dtype)).shape == (5, 2, 4)
    assert net.num_tasks == 3 and net.in_size == 2


@pytest.mark.parametrize("kind", KINDS_FAST)
def test_jit_vmap_grad(kind):
    net = make(kind)
    x = jax.random.uniform(jax.random.key(1), (7, 2))

    @jax.jit
    def run(net, x, keys):
        g = jax.grad(lambda m: jnp.sum(jax.vmap(m)(x) ** 2))(net)
        # a batch of networks (e.g. one per seed), built and applied under vmap
        seeds = jax.vmap(lambda k: jax.vmap(build(kind, 2, "scalar", None, k))(x))(keys)
        return g, jax.vmap(net)(x), seeds

    g, y, seeds = run(net, x, jax.random.split(KEY, 3))
    assert jax.tree.structure(g) == jax.tree.structure(net)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(g))
    np.testing.assert_allclose(y[0], net(x[0]), rtol=1e-5)
    assert seeds.shape == (3, 7, 2) and y.shape == (7, 2)


def _dependence(net, points):
    """(K, leaves) bools: does output k depend on leaf j (nonzero Jacobian at the points)?"""
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def out(p):
        return jax.vmap(eqx.combine(p, static))(points)  # (N, K)

    jac = jax.jit(jax.jacrev(out))(params)
    leaves = jax.tree.leaves(jac)
    return np.stack([[np.any(np.asarray(leaf)[:, k] != 0) for leaf in leaves]
                     for k in range(net.num_tasks)])


@pytest.mark.parametrize("kind", KINDS)
def test_shared_mask_is_what_several_outputs_depend_on(kind):
    """The mask is True exactly on the leaves more than one task output depends on, and
    every task-specific leaf belongs to one output only."""
    net = make(kind, k=3, dtype=jnp.float64)
    points = jax.random.uniform(jax.random.key(2), (5, 2), jnp.float64)
    dep = _dependence(net, points)
    mask = np.array(jax.tree.leaves(shared_mask(net)))
    assert mask.shape == (dep.shape[1],)
    np.testing.assert_array_equal(mask, dep.sum(axis=0) >= 2)
    assert np.all(dep.sum(axis=0) >= 1)  # no dead parameters
    assert mask.any() and not mask.all()


def test_shared_masks_by_name():
    hard = make("hard")
    m = hard.shared_mask()
    assert all(jax.tree.leaves(m.trunk)) and not any(jax.tree.leaves(m.heads))
    soft = make("soft").shared_mask()
    assert soft.stitches is True and not any(jax.tree.leaves(soft.heads))
    mm = make("mmoe").shared_mask()
    assert all(jax.tree.leaves(mm.experts)) and not any(jax.tree.leaves(mm.gate_layers))
    ple = make("ple").shared_mask()  # three levels
    assert [all(jax.tree.leaves(lev.task_gates)) for lev in ple.levels] == [True, False, False]
    assert not any(jax.tree.leaves(ple.levels[1].task_gates))
    assert [all(jax.tree.leaves(lev.task_experts)) for lev in ple.levels] == [True, True, False]
    assert ple.levels[-1].shared_gate is None and all(jax.tree.leaves(ple.levels[0].shared_gate))
    with pytest.raises(ValueError, match="no shared_mask"):
        shared_mask(jnp.zeros(3))


def _two_task_losses(x, y0, y1):
    def losses(m, batch):
        u = jax.vmap(m)(batch)
        return {"main": jnp.mean((u[:, 0] - y0) ** 2), "aux0": jnp.mean((u[:, 1] - y1) ** 2)}

    return losses


@pytest.mark.parametrize("kind", KINDS_FAST)
def test_gate_routes_only_shared_gradients(kind):
    """cosine_gate(where=net.shared_mask): the main row passes untouched; the auxiliary row
    is kept or zeroed on the shared leaves by the cosine there; task leaves keep their rows."""
    net = make(kind, dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(3), (16, 2), jnp.float64)
    y0, y1 = jnp.sin(3 * x[:, 0]), -jnp.cos(2 * x[:, 1])
    losses, grads = jax.jit(functools.partial(task_grads, _two_task_losses(x, y0, y1)))(
        net, x)
    assert tuple(losses) == ("aux0", "main")  # rows: 0 = aux0, 1 = main
    mask = net.shared_mask()
    params = eqx.filter(net, eqx.is_inexact_array)
    flags = jax.tree.leaves(mask)
    g_in = jax.tree.leaves(grads)
    shared_rows = jax.tree.map(lambda m, g: g if m else None, mask, grads)
    cos = float(cosines(shared_rows)[0, 1])
    for threshold in (-1.0, 0.0, 0.999):
        gate = cosine_gate(main="main", threshold=threshold, where=net.shared_mask)
        out, _ = gate.update(grads, gate.init(params), params, losses=losses)
        g_out = jax.tree.leaves(out)
        keep = cos > threshold
        assert keep == (threshold == -1.0) or threshold == 0.0
        for flag, a, b in zip(flags, g_in, g_out, strict=True):
            np.testing.assert_array_equal(b[1], a[1])  # main row: never touched
            if flag and not keep:
                assert np.all(np.asarray(b[0]) == 0)
            else:
                np.testing.assert_array_equal(b[0], a[0])
    # the auxiliary task's own tower learns from its own loss, gated or not
    dep = _dependence(net, x[:4])
    own = [a[0] for flag, a, d in zip(flags, g_out, dep.T, strict=True)
           if not flag and d[1] and not d[0]]
    assert own and all(np.any(np.asarray(g) != 0) for g in own)


@pytest.mark.parametrize("kind", ["mmoe", "ple"])
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 100.0),
       x=st.tuples(st.floats(-50, 50), st.floats(-50, 50)))
@examples(10)
def test_gates_are_distributions(kind, seed, scale, x):
    """Every gate row is a probability vector (non-negative, sums to one), for any point and
    any (rescaled) gate parameters."""
    gates = _GATES[kind](_GATE_NETS[kind], jnp.asarray(x, jnp.float64), jax.random.key(seed),
                         jnp.float64(scale))
    for g in gates:
        g = np.asarray(g)
        assert np.all(g >= 0) and np.all(np.isfinite(g))
        np.testing.assert_allclose(g.sum(axis=-1), 1.0, rtol=1e-12)


_GATE_NETS = {"mmoe": make("mmoe", k=3, dtype=jnp.float64),
              "ple": make("ple", k=3, dtype=jnp.float64)}


def _perturb(net, key, scale):
    leaves, tree = jax.tree.flatten(net)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [scale * (a + jax.random.normal(k, a.shape, a.dtype))
                                     for a, k in zip(leaves, keys, strict=True)])


@jax.jit
def _mmoe_gates(net, x, key, scale):
    return (_perturb(net, key, scale).gates(x),)


@jax.jit
def _ple_gates(net, x, key, scale):
    out = []
    for task_gates, shared_gate in _perturb(net, key, scale).gates(x):
        out.append(task_gates)
        if shared_gate is not None:
            out.append(shared_gate)
    return tuple(out)


_GATES = {"mmoe": _mmoe_gates, "ple": _ple_gates}


def test_soft_sharing_stitch_init_and_single_task():
    net = SoftSharing(2, "scalar", 3, width=4, depth=2, key=KEY, stitch_self=0.8)
    np.testing.assert_allclose(net.stitches[0], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1],
                                                 [0.1, 0.1, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(net.stitches.sum(axis=-1), 1.0, rtol=1e-6)
    one = SoftSharing(2, "scalar", 1, width=4, depth=2, key=KEY)
    assert one(jnp.zeros(2)).shape == (1,)
    np.testing.assert_array_equal(one.stitches, 1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_tasks"):
        HardSharing(2, "scalar", 0, width=4, depth=2, key=KEY)
    with pytest.raises(ValueError, match="out_size"):
        MMoE(2, "vector", 2, num_experts=2, width=4, depth=1, key=KEY)
    with pytest.raises(ValueError, match="levels"):
        PLE(2, 1, 2, width=4, depth=1, levels=0, key=KEY)
    with pytest.raises(ValueError, match="stitch_self"):
        SoftSharing(2, 1, 2, width=4, depth=1, key=KEY, stitch_self=1.5)
    with pytest.raises(ValueError, match="head_depth"):
        HardSharing(2, 1, 2, width=4, depth=1, key=KEY, head_depth=-1)
    for kind in KINDS:
        with pytest.raises((ValueError, TypeError), match=r"one point of shape|in_size"):
            make(kind)(jnp.ones((4, 2)))


def test_soft_sharing_distance_coupling():
    net = SoftSharing(2, "scalar", 3, width=4, depth=2, key=KEY, coupling="distance")
    assert net.stitches is None and not any(jax.tree.leaves(net.shared_mask()))
    assert float(net.distance()) == 0.0  # the columns start equal
    x = jnp.array([0.3, -0.7])
    # with equal columns and no mixing, output k is head_k(column(x)): check by hand
    h = x
    for layer in net.columns[0]:
        h = jnp.tanh(layer(h))
    by_hand = []
    for head in net.heads:
        z = h
        for layer in head[:-1]:
            z = jnp.tanh(layer(z))
        by_hand.append(head[-1](z)[0])
    np.testing.assert_allclose(net(x), jnp.stack(by_hand), rtol=1e-6)
    # distance(): sum over pairs j < k and layers of squared parameter differences
    moved = eqx.tree_at(lambda n: (n.columns[1][0].weight, n.columns[2][1].bias), net,
                        replace_fn=lambda a: a + 0.5)
    w, b = net.columns[1][0].weight, net.columns[2][1].bias
    # pairs (0,1) and (1,2) see the weight shift, pairs (0,2) and (1,2) the bias shift
    expected = 2 * 0.25 * w.size + 2 * 0.25 * b.size
    np.testing.assert_allclose(moved.distance(), expected, rtol=1e-6)
    # the penalty's gradient pulls each column towards the others, never touches the heads
    g = jax.grad(lambda n: n.distance())(moved)
    np.testing.assert_allclose(g.columns[1][0].weight, 2 * 2 * 0.5 * jnp.ones_like(w),
                               rtol=1e-6)
    assert not any(bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(g.heads))
    one = SoftSharing(2, "scalar", 1, width=4, depth=2, key=KEY, coupling="distance")
    assert float(one.distance()) == 0.0 and one(x).shape == (1,)
    with pytest.raises(ValueError, match="coupling"):
        SoftSharing(2, "scalar", 2, width=4, depth=1, key=KEY, coupling="l1")
