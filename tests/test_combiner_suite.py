"""The shared suite every combiner must pass (cf. optax/contrib/_common_test.py).

jit, inside `optax.chain`, float32/float64 preserved, state structure stable, no
recompilation on later steps, convergence on a two-task quadratic, finite output for finite
degenerate input.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from combiners import CASES, COORDINATEWISE, NOT_PARETO
from hypothesis import given
from hypothesis import strategies as st
from strategies import LAYOUTS, examples, params_like, task_grads

import pinnx.combine as pc

pytestmark = pytest.mark.standard_promotion  # optax transforms run in every chain

LAYOUT = {"w": (2, 2), "b": (2,)}


def _grads(k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {n: jnp.asarray(rng.normal(size=(k,) + s), dtype) for n, s in LAYOUT.items()}


def _init(opt, params, k):
    return opt.init(params, tasks=k) if isinstance(opt, pc.Combiner) else opt.init(params)


def _signature(tree):
    return jax.tree.structure(tree), [(jnp.shape(x), jnp.result_type(x)) for x in
                                      jax.tree.leaves(tree)]


each_combiner = pytest.mark.parametrize("name", sorted(CASES))


@pytest.mark.parametrize("k", [1, 3])
@each_combiner
def test_jit_matches_eager(name, k):
    make = CASES[name]
    opt = make(k)
    params = params_like(LAYOUT, jnp.float32)
    grads = _grads(k, jnp.float32)
    state = _init(opt, params, k)
    eager, _ = opt.update(grads, state, params)
    jitted, _ = jax.jit(opt.update)(grads, state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), eager,
                 jitted)
    assert jax.tree.structure(eager) == jax.tree.structure(params)


@each_combiner
def test_inside_optax_chain(name):
    make = CASES[name]
    k = 3
    opt = make(k)
    params = params_like(LAYOUT, jnp.float32)
    grads = _grads(k, jnp.float32)
    ours = opt | optax.sgd(0.1)
    theirs = optax.chain(opt, optax.sgd(0.1))
    u1, _ = ours.update(grads, ours.init(params, tasks=k), params)
    try:
        s2 = theirs.init(params)
    except ValueError as err:  # a per-task state: optax.chain passes params only
        assert "number of tasks" in str(err)
        theirs = optax.chain(_bind(opt, k), optax.sgd(0.1))
        s2 = theirs.init(params)
    u2, _ = theirs.update(grads, s2, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), u1, u2)


def _bind(opt, k):
    """The same transform with K fixed at init (what a user does for optax.chain)."""
    return optax.GradientTransformationExtraArgs(
        lambda params: opt.init(params, tasks=k), opt.update
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@each_combiner
def test_dtype_and_state_preserved(name, dtype):
    make = CASES[name]
    k = 3
    opt = make(k)
    params = params_like(LAYOUT, dtype)
    state = _init(opt, params, k)
    before = _signature(state)
    step = jax.jit(opt.update)
    for seed in range(3):
        updates, state = step(_grads(k, dtype, seed), state, params)
        for leaf in jax.tree.leaves(updates):
            assert leaf.dtype == dtype
        assert _signature(state) == before


@each_combiner
def test_no_recompilation(name):
    make = CASES[name]
    k = 3
    opt = make(k)
    traces = []

    @jax.jit
    def step(grads, state, params):
        traces.append(1)
        return opt.update(grads, state, params)

    params = params_like(LAYOUT, jnp.float32)
    state = _init(opt, params, k)
    for seed in range(4):
        _, state = step(_grads(k, jnp.float32, seed), state, params)
    assert len(traces) == 1


@each_combiner
def test_converges_on_two_task_quadratic(name):
    """Two quadratics with optima a and b: training settles on the Pareto set, the segment
    [a, b] (where no direction decreases both); coordinate-wise methods settle inside the
    box spanned by a and b."""
    if name in NOT_PARETO:
        pytest.skip(NOT_PARETO[name])
    make = CASES[name]
    a = jnp.array([1.0, -2.0, 0.5])
    b = jnp.array([-1.0, 1.0, 2.0])

    def losses(x):
        return {"t0": jnp.sum((x["w"] - a) ** 2), "t1": 3.0 * jnp.sum((x["w"] - b) ** 2)}

    opt = make(2) | optax.adam(optax.exponential_decay(0.05, 200, 0.5))
    x = {"w": jnp.zeros(3)}
    state = opt.init(x, tasks=2)

    @jax.jit
    def step(x, state):
        vals = losses(x)
        grads = jax.tree.map(lambda *r: jnp.stack(r),
                             *[jax.grad(lambda y, t=t: losses(y)[t])(x) for t in sorted(vals)])
        updates, state = opt.update(grads, state, x, losses=vals)
        return optax.apply_updates(x, updates), state

    path = []
    for _ in range(1500):
        x, state = step(x, state)
        path.append(np.asarray(x["w"]))
    w = path[-1]
    assert np.linalg.norm(path[-1] - path[-100]) < 1e-3, "did not settle"
    tol = 2e-2 * np.linalg.norm(b - a)
    if name in COORDINATEWISE:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        assert np.all((w > lo - tol) & (w < hi + tol)), w
    else:
        s = np.clip(np.dot(w - a, b - a) / np.dot(b - a, b - a), 0, 1)
        dist = np.linalg.norm(w - (a + s * (b - a)))
        assert dist < tol, (w, dist)


@functools.cache
def _cached(name, k):
    opt = CASES[name](k)
    return opt, jax.jit(opt.update)


@each_combiner
@examples(20)
@given(data=st.data())
def test_finite_input_gives_finite_output(name, data):
    """Zero, parallel, opposite, 1e-20- and 1e20-scaled rows: finite updates, dtype kept.
    One pytree layout (three leaves, one of them scalar), so that compilations are few."""
    grads, layout, dtype = data.draw(task_grads(max_k=4, layouts=LAYOUTS[2:]))
    k = jax.tree.leaves(grads)[0].shape[0]
    opt, update = _cached(name, k)
    params = params_like(layout, dtype)
    state = _init(opt, params, k)
    for _ in range(2):
        updates, state = update(grads, state, params)
        for leaf in jax.tree.leaves(updates):
            assert leaf.dtype == dtype
            assert np.all(np.isfinite(np.asarray(leaf))), (updates, grads)
