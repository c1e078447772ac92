"""`route`: owned leaves get their task's row exactly; the shared leaves go through the chain."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import examples, task_grads

import pinnx.combine as pc
from pinnx.combine._route import owners, route

LAYOUT3 = ("a", "b", "c")


def _grads(k, seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    return {"a": jnp.asarray(rng.normal(size=(k, 4)), dtype),
            "b": jnp.asarray(rng.normal(size=(k,)), dtype),
            "c": jnp.asarray(rng.normal(size=(k, 1, 3)), dtype)}


def _params(dtype=jnp.float64):
    return {"a": jnp.zeros(4, dtype), "b": jnp.zeros((), dtype), "c": jnp.zeros((1, 3), dtype)}


def _names(k):
    return {f"t{i}": jnp.asarray(float(i + 1)) for i in range(k)}


def _recorder(seen):
    """A sum aggregator that records the leaves it is given."""

    def update(updates, state, params=None, **extra):
        seen.append(updates)
        return pc.sum().update(updates, state, params)

    return pc.as_aggregator(optax.GradientTransformationExtraArgs(
        lambda params: optax.EmptyState(), update), label="recorder")


def test_owners_broadcasts_a_prefix():
    tree = {"shared": jnp.zeros(2), "mine": (jnp.zeros(1), jnp.zeros(3))}
    assert owners({"shared": None, "mine": "pde"}, tree) == ["pde", "pde", None]
    assert owners(lambda p: {k: (1 if k == "mine" else None) for k in p}, tree) == [1, 1, None]


@pytest.mark.parametrize("own", [{"a": True, "b": None, "c": None},
                                 {"a": 1.5, "b": None, "c": None}])
def test_owners_rejects_non_task_leaves(own):
    with pytest.raises(ValueError, match="task names"):
        owners(own, _params())


def test_owners_rejects_a_non_prefix():
    with pytest.raises(ValueError, match="prefix"):
        owners({"a": None, "z": "t0"}, _params())


@examples(30)
@given(data=st.data())
def test_owned_rows_exact_and_shared_is_the_inner_aggregate(data):
    """Owned leaf: exactly its owner's row; shared leaves: what the inner chain returns on
    the shared leaves alone (here sum and mean; PCGrad, LRA: test_adapters.py)."""
    grads, layout, dtype = data.draw(task_grads(max_k=4, layouts=({"a": (4,), "b": (),
                                                                   "c": (1, 3)},)))
    k = grads["a"].shape[0]
    own = {n: data.draw(st.one_of(st.none(), st.integers(-k, k - 1)), label=n)
           for n in LAYOUT3}
    if all(v is None for v in own.values()):
        own["b"] = 0
    if all(v is not None for v in own.values()):
        own["a"] = None
    make = data.draw(st.sampled_from([pc.sum, pc.mean]))
    opt = route(make(), own=own)
    params = {n: jnp.zeros(s, dtype) for n, s in layout.items()}
    out, _ = opt.update(grads, opt.init(params, tasks=k), params)
    shared = {n: g for n, g in grads.items() if own[n] is None}
    ref, _ = make().update(shared, make().init(shared), shared)
    for n in LAYOUT3:
        assert out[n].dtype == dtype and out[n].shape == grads[n].shape[1:]
        expected = grads[n][own[n]] if own[n] is not None else ref[n]
        np.testing.assert_array_equal(np.asarray(out[n]), np.asarray(expected))


def test_inner_chain_sees_the_shared_leaves_only():
    seen = []
    opt = route(_recorder(seen), own={"a": "t1", "b": None, "c": "t0"})
    grads = _grads(2)
    opt.update(grads, opt.init(_params(), tasks=2), _params(), losses=_names(2))
    assert [jax.tree.leaves(s) for s in seen][0][0] is grads["b"]
    assert len(jax.tree.leaves(seen[0])) == 1


def test_task_names_need_losses_and_must_exist():
    opt = route(pc.sum(), own={"a": "t1", "b": None, "c": None})
    state = opt.init(_params())
    with pytest.raises(ValueError, match="needs the loss dictionary"):
        opt.update(_grads(2), state, _params())
    out, _ = opt.update(_grads(2), state, _params(), losses=_names(2))
    np.testing.assert_array_equal(out["a"], _grads(2)["a"][1])
    bad = route(pc.sum(), own={"a": "pde", "b": None, "c": None})
    with pytest.raises(ValueError, match="'pde' is not among"):
        bad.update(_grads(2), state, _params(), losses=_names(2))
    with pytest.raises(ValueError, match="not among the tasks"):
        bad.init(_params(), tasks=("t0", "t1"))


def test_row_index_out_of_range():
    opt = route(pc.sum(), own={"a": 2, "b": None, "c": None})
    with pytest.raises(ValueError, match="out of range"):
        opt.update(_grads(2), opt.init(_params()), _params())


def test_nothing_shared_is_an_error():
    opt = route(pc.sum(), own=0)
    with pytest.raises(ValueError, match="nothing is shared"):
        opt.init(_params())


@pytest.mark.standard_promotion
def test_chain_rules():
    own = {"a": 0, "b": None, "c": None}
    chain = pc.lra(main=0) | route(pc.sum(), own=own) | optax.adam(1e-3)
    assert isinstance(route(pc.sum(), own=own), pc.Aggregator)
    assert "route(aggregator=sum()" in repr(chain)
    with pytest.raises(ValueError, match="exactly one aggregator"):
        route(pc.sum(), own=own) | pc.mean()
    with pytest.raises(ValueError, match="after the aggregator"):
        route(pc.sum(), own=own) | pc.lra(main=0)
    with pytest.raises(ValueError, match="goes on after its aggregator"):
        route(pc.sum() | optax.sgd(0.1), own=own)
    with pytest.raises(ValueError, match="aggregator"):
        route(pc.lra(main=0), own=own)
    with pytest.raises(ValueError, match="aggregator"):
        route(optax.sgd(0.1), own=own)


@pytest.mark.standard_promotion
def test_task_transform_inside_route_sees_shared_rows_only():
    """lra inside route: its weights come from the shared rows; the owned leaf keeps its raw
    row. lra before route: the owned leaf gets the weighted row."""
    grads = _grads(2, seed=1)
    own = {"a": 1, "b": None, "c": None}
    inside = route(pc.lra(main=0) | pc.sum(), own=own)
    out, state = inside.update(grads, inside.init(_params(), tasks=2), _params())
    shared = {"b": grads["b"], "c": grads["c"]}
    ref_opt = pc.lra(main=0) | pc.sum()
    ref, ref_state = ref_opt.update(shared, ref_opt.init(shared, tasks=2), shared)
    np.testing.assert_allclose(state[0].weights, ref_state[0].weights, rtol=1e-12)
    np.testing.assert_array_equal(out["a"], grads["a"][1])
    for n in ("b", "c"):
        np.testing.assert_allclose(out[n], ref[n], rtol=1e-12)
    before = pc.lra(main=0) | route(pc.sum(), own=own)
    out2, state2 = before.update(grads, before.init(_params(), tasks=2), _params())
    w = state2[0].weights
    assert not np.isclose(float(w[1]), 1.0)
    np.testing.assert_allclose(out2["a"], w[1] * grads["a"][1], rtol=1e-12)


@pytest.mark.standard_promotion
def test_jit_no_retrace_and_params_shaped_state():
    own = {"a": "t0", "b": None, "c": "t1"}
    opt = route(pc.per_task(optax.scale_by_adam()) | pc.mean(), own=own) | optax.sgd(0.1)
    state = opt.init(_params(jnp.float32), tasks=2)
    # the per-task Adam moments exist for the shared leaf only
    assert [x.shape for x in jax.tree.leaves(state[0][0].inner.mu)] == [(2,)]
    traces = []

    @jax.jit
    def step(grads, state):
        traces.append(1)
        return opt.update(grads, state, _params(jnp.float32), losses=_names(2))

    eager, _ = opt.update(_grads(2, dtype=jnp.float32), state, _params(jnp.float32),
                          losses=_names(2))
    for seed in range(3):
        out, state = step(_grads(2, seed, jnp.float32), state)
        if seed == 0:
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), out, eager)
    assert len(traces) == 1
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(out))


def test_callable_ownership_reads_params_else_updates():
    calls = []

    def own(tree):
        calls.append(jax.tree.map(jnp.shape, tree))
        return {"a": 0, "b": None, "c": None}

    opt = route(pc.sum(), own=own)
    state = opt.init(_params())
    opt.update(_grads(3), state, _params())
    opt.update(_grads(3), state)
    assert calls[1]["a"] == (4,) and calls[-1]["a"] == (3, 4)
