"""Defining properties of each combiner, against independent float64 references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import LAYOUTS, examples, flatten, flush, params_like, split, task_grads

import pinnx.combine as pc


def _tol(dtype):
    return 2e-4 if dtype == jnp.float32 else 1e-10


def _scale(flat):
    return max(np.max(np.linalg.norm(flat, axis=1)), np.finfo(np.float64).tiny)


def _close(out, ref, layout, dtype, scale):
    got = flatten({n: v[None] for n, v in out.items()})[0]
    # subnormal results may be flushed to zero: allow the dtype's smallest normal number
    atol = _tol(dtype) * scale + 10 * np.finfo(dtype).tiny
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol)


# ---------------------------------------------------------------- linear aggregators


@given(task_grads(), st.data())
def test_linear_aggregators_are_weighted_sums(case, data):
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    w = data.draw(st.lists(st.floats(-3, 3, allow_subnormal=False), min_size=k, max_size=k))
    for opt, weights in ((pc.sum(), np.ones(k)), (pc.mean(), np.full(k, 1 / k)),
                         (pc.weighted(w), np.asarray(w))):
        out, _ = opt.update(grads, opt.init(None))
        weights = np.asarray(weights, dtype).astype(np.float64)  # as the combiner sees them
        weights[np.abs(weights) < np.finfo(dtype).tiny] = 0.0  # subnormal: flushed
        ref = weights @ flat
        scale = np.sum(np.abs(weights)[:, None] * np.abs(flat), axis=0).max(initial=1e-300)
        _close(out, ref, layout, dtype, scale)


def test_weighted_by_name_uses_losses_keys():
    grads = {"w": jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])}
    losses = {"pde": 1.0, "bc": 2.0, "ic": 3.0}  # rows follow sorted names: bc, ic, pde
    out, _ = pc.weighted({"pde": 1.0, "bc": 10.0, "ic": 100.0}).update(
        grads, None, losses=losses)
    np.testing.assert_allclose(out["w"], [10.0 + 1.0, 100.0 + 1.0])


def test_weighted_errors():
    grads = {"w": jnp.ones((3, 2))}
    with pytest.raises(ValueError, match="2 weights but the gradients have 3 task rows"):
        pc.weighted([1.0, 2.0]).update(grads, None)
    with pytest.raises(ValueError, match="needs losses="):
        pc.weighted({"a": 1.0, "b": 1.0, "c": 1.0}).update(grads, None)
    with pytest.raises(ValueError, match="weights for tasks"):
        pc.weighted({"a": 1.0, "b": 1.0, "c": 1.0}).update(
            grads, None, losses={"a": 0.0, "b": 0.0, "x": 0.0})
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's runtime check
        pc.weighted([[1.0]])
    with pytest.raises(ValueError, match="finite weights"):
        pc.weighted([1.0, float("nan")])
    with pytest.raises(ValueError, match="finite weights"):
        pc.weighted({"a": float("inf")})


def test_weighted_with_inject_hyperparams():
    opt = pc.as_aggregator(optax.inject_hyperparams(pc.weighted)(weights=jnp.array([1.0, 3.0])))
    grads = {"w": jnp.array([[1.0], [1.0]])}
    state = opt.init({"w": jnp.zeros(1)})
    out, state = jax.jit(opt.update)(grads, state)
    np.testing.assert_allclose(out["w"], [4.0])
    state.hyperparams["weights"] = jnp.array([2.0, 0.0])
    out, _ = jax.jit(opt.update)(grads, state)
    np.testing.assert_allclose(out["w"], [2.0])


# ---------------------------------------------------------------- PCGrad


def pcgrad_reference(flat, orders):
    """Yu et al.'s algorithm verbatim, in float64 on flattened rows."""
    total = np.zeros(flat.shape[1])
    for i, order in enumerate(orders):
        c = flat[i].copy()
        for j in order:
            d = c @ flat[j]
            if d < 0:
                c = c - d / (flat[j] @ flat[j]) * flat[j]
        total += c
    return total


_PCGRAD_FIXED = jax.jit(pc.pcgrad(random_order=False).update)


@given(task_grads(max_k=5, layouts=LAYOUTS[1:]))
def test_pcgrad_fixed_order_matches_reference(case):
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    out, _ = _PCGRAD_FIXED(grads, optax.EmptyState())
    orders = [[j for j in range(k) if j != i] for i in range(k)]
    _close(out, pcgrad_reference(flat, orders), layout, dtype, k * _scale(flat))


@given(task_grads(k=2))
def test_pcgrad_two_tasks_never_conflict(case):
    """K = 2: d . g_k >= 0 for both tasks (Yu et al. 2020, Theorem 1's set-up)."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    for opt in (pc.pcgrad(), pc.pcgrad(random_order=False)):
        out, _ = opt.update(grads, opt.init(None))
        d = flatten({n: v[None] for n, v in out.items()})[0]
        for g in flat:
            n = np.linalg.norm(g)
            if n > 0:
                assert d @ (g / n) >= -_tol(dtype) * _scale(flat)


@examples(30)
@given(task_grads(k=3, degenerate=False), st.integers(0, 2**31 - 1))
def test_pcgrad_random_order_is_one_of_the_orders(case, seed):
    """With a random order, the result equals the reference for some order of each row."""
    grads, layout, dtype = case
    flat = flush(flatten(grads), dtype)
    k = flat.shape[0]
    opt = pc.pcgrad(seed=seed)
    out, _ = opt.update(grads, opt.init(None))
    got = flatten({n: v[None] for n, v in out.items()})[0]
    choices = [list(itertools.permutations([j for j in range(k) if j != i])) for i in range(k)]
    errors = [np.max(np.abs(got - pcgrad_reference(flat, orders)))
              for orders in itertools.product(*choices)]
    assert min(errors) <= _tol(dtype) * k * _scale(flat) + 10 * np.finfo(dtype).tiny


def test_pcgrad_draws_new_orders_each_step():
    grads = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(4, 6)))}
    opt = pc.pcgrad(seed=0)
    state = opt.init(None)
    outs = []
    for _ in range(6):
        out, state = opt.update(grads, state)
        outs.append(np.asarray(out["w"]))
    assert len({o.round(8).tobytes() for o in outs}) > 1


def test_pcgrad_known_example():
    """Hand-computed: g1 = (1, 0, 1), g2 = (-1, 1, 0.5); g1 . g2 = -0.5."""
    grads = {"w": jnp.array([[1.0, 0.0, 1.0], [-1.0, 1.0, 0.5]], jnp.float64)}
    out, _ = pc.pcgrad(random_order=False).update(grads, optax.EmptyState())
    g1p = np.array([1, 0, 1]) + 0.5 / 2.25 * np.array([-1, 1, 0.5])
    g2p = np.array([-1, 1, 0.5]) + 0.5 / 2 * np.array([1, 0, 1])
    np.testing.assert_allclose(out["w"], g1p + g2p, rtol=1e-12)


# ---------------------------------------------------------------- cosine gate


def _gate_reference(flat_shared, main, threshold):
    u = flat_shared[main]
    keep = []
    for i, g in enumerate(flat_shared):
        nu, ng = np.linalg.norm(u), np.linalg.norm(g)
        cos = u @ g / (nu * ng) if nu > 0 and ng > 0 else 0.0
        keep.append((i == main, cos))
    return keep


@given(task_grads(layouts=({"w": (2, 2), "b": (2,)},)), st.data())
def test_cosine_gate_keeps_agreeing_rows_only(case, data):
    grads, layout, dtype = case
    k = grads["w"].shape[0]
    main = data.draw(st.integers(0, k - 1))
    threshold = data.draw(st.sampled_from([0.0, -0.5, 0.5]))
    shared_only = data.draw(st.booleans())
    where = {"w": True, "b": False} if shared_only else None
    opt = pc.cosine_gate(main=main, threshold=threshold, where=where)
    out, _ = opt.update(grads, opt.init(None))
    shared = flatten({"w": grads["w"]}) if shared_only else flatten(grads)
    shared = flush(shared, dtype)
    tiny = np.finfo(dtype).tiny
    w_in = np.where(np.abs(grads["w"]) < tiny, 0, grads["w"])  # gating multiplies: FTZ
    b_in = np.where(np.abs(grads["b"]) < tiny, 0, grads["b"])
    for i, (is_main, cos) in enumerate(_gate_reference(shared, main, threshold)):
        assume(is_main or abs(cos - threshold) > 1e-3)
        kept = is_main or cos > threshold
        np.testing.assert_array_equal(out["w"][i], w_in[i] if kept else 0 * w_in[i])
        if shared_only:
            np.testing.assert_array_equal(out["b"][i], grads["b"][i])
        else:
            np.testing.assert_array_equal(out["b"][i], b_in[i] if kept else 0 * b_in[i])


def test_cosine_gate_by_name_and_callable_where():
    grads = {"trunk": jnp.array([[1.0, 0.0], [-1.0, 0.1], [1.0, 1.0]]),
             "head": jnp.array([[1.0], [2.0], [3.0]])}
    losses = {"pde": 0.0, "aux": 0.0, "bc": 0.0}  # rows: aux, bc, pde
    opt = pc.cosine_gate(main="aux", where=lambda p: {"trunk": True, "head": False})
    out, _ = opt.update(grads, None, params={"trunk": jnp.zeros(2), "head": jnp.zeros(1)},
                        losses=losses)
    np.testing.assert_array_equal(out["trunk"], [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(out["head"], grads["head"])


def test_cosine_gate_errors():
    grads = {"w": jnp.ones((2, 3))}
    with pytest.raises(ValueError, match="needs the loss dictionary"):
        pc.cosine_gate(main="pde").update(grads, None)
    with pytest.raises(ValueError, match="not among the tasks"):
        pc.cosine_gate(main="pde").update(grads, None, losses={"a": 0.0, "b": 0.0})
    with pytest.raises(ValueError, match="out of range"):
        pc.cosine_gate(main=2).update(grads, None)
    with pytest.raises(ValueError, match=r"\[-1, 1\)"):
        pc.cosine_gate(main=0, threshold=1.0)
    with pytest.raises(ValueError, match="selects no parameters"):
        pc.cosine_gate(main=0, where={"w": False}).update(grads, None)


# ---------------------------------------------------------------- per_task


@pytest.mark.standard_promotion
@examples(20)
@given(task_grads(layouts=({"w": (2, 2), "b": (2,)},), degenerate=False))
def test_per_task_equals_rowwise_application(case):
    grads, layout, dtype = case
    k = grads["w"].shape[0]
    tx = optax.scale_by_adam()
    params = params_like(layout, dtype)
    opt = pc.per_task(tx)
    state = opt.init(params, tasks=k)
    rows = [{n: v[i] for n, v in grads.items()} for i in range(k)]
    ref_states = [tx.init(params) for _ in range(k)]
    for step in range(3):
        scaled = jax.tree.map(lambda g, c=step + 1: g * c, grads)
        out, state = opt.update(scaled, state, params)
        for i in range(k):
            row = jax.tree.map(lambda g, c=step + 1: g * c, rows[i])
            ref, ref_states[i] = tx.update(row, ref_states[i], params)
            for n in ref:
                np.testing.assert_allclose(out[n][i], ref[n], rtol=1e-5, atol=1e-6)


def test_per_task_needs_and_checks_k():
    params = {"w": jnp.zeros(2)}
    opt = pc.per_task(optax.scale_by_adam())
    with pytest.raises(ValueError, match="needs the number of tasks"):
        opt.init(params)
    state = opt.init(params, tasks=("pde", "bc", "ic"))
    with pytest.raises(ValueError, match="initialised for 3 tasks but got 2 task rows"):
        opt.update({"w": jnp.ones((2, 2))}, state, params)
    bound = pc.per_task(optax.scale_by_adam(), tasks=2)
    assert jax.tree.leaves(bound.init(params))[0].shape[0] == 2
    stateless = pc.per_task(optax.clip(1.0))
    out, _ = stateless.update({"w": jnp.full((4, 2), 3.0)}, stateless.init(params), params)
    np.testing.assert_array_equal(out["w"], 1.0)


def test_split_roundtrip():
    flat = np.arange(2 * 8, dtype=float).reshape(2, 8)
    layout = {"a": (4,), "b": (), "c": (1, 3)}
    np.testing.assert_array_equal(flatten(split(flat, layout)), flat)
