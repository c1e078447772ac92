"""Per-loss adapters: shapes, the solution forward, LoRA algebra, and the gradient routing."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import examples

import pinnx
import pinnx.combine as pc
from pinnx.combine._route import route
from pinnx.nn._adapters import PerLossAdapters, adapter_owners
from pinnx.nn._mlp import MLP
from pinnx.residuals import adapter_losses, cross_losses
from pinnx.tasks import task_grads

TASKS = ("bc", "pde")


def _model(out="scalar", dtype=None, rank=2, layers=None, tasks=TASKS, seed=0, **kw):
    trunk = MLP(2, out, width=8, depth=2, key=jax.random.key(seed), dtype=dtype)
    return PerLossAdapters(trunk, tasks, rank=rank, layers=layers, key=jax.random.key(seed + 1),
                           **kw)


def _perturb(model, seed=0, scale=0.3):
    """Non-zero B factors (at init they are zero, so every forward is the trunk)."""
    rng = np.random.default_rng(seed)
    return eqx.tree_at(
        lambda m: [b for lora in m.adapters.values() for b in lora.b], model,
        [jnp.asarray(scale * rng.normal(size=b.shape), b.dtype)
         for lora in model.adapters.values() for b in lora.b])


def _problem_losses():
    def residual(u, x):
        return pinnx.operators.laplacian(u, x) + jnp.sin(x[0])

    return pinnx.residuals.losses(pde=pinnx.residuals.pde(residual),
                                  bc=pinnx.residuals.dirichlet(0.0))


def _batch(dtype=jnp.float64):
    rng = np.random.default_rng(0)
    return {"pde": jnp.asarray(rng.uniform(-1, 1, (16, 2)), dtype),
            "bc": jnp.asarray(rng.uniform(-1, 1, (8, 2)), dtype)}


def _numpy_forward(model, task, x):
    """tanh MLP with W_l + (alpha / r) B A on the adapted layers, in numpy float64."""
    h = np.asarray(x, np.float64)
    n = len(model.trunk.layers)
    for i, layer in enumerate(model.trunk.layers):
        w = np.asarray(layer.weight, np.float64)
        if task is not None and i in model.layers:
            j = model.layers.index(i)
            lora = model.adapters[task]
            w = w + model.alpha / model.rank * (np.asarray(lora.b[j], np.float64)
                                                @ np.asarray(lora.a[j], np.float64))
        h = w @ h + np.asarray(layer.bias, np.float64)
        if i < n - 1:
            h = np.tanh(h)
    return h


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)])
@pytest.mark.parametrize("out", ["scalar", 3])
def test_shapes_and_dtypes(out, dtype):
    model = _model(out=out, dtype=dtype, rank=3, layers=(0, -1))
    assert model.tasks == TASKS and model.layers == (0, 2) and model.alpha == 3.0
    for lora in model.adapters.values():
        assert [a.shape for a in lora.a] == [(3, 2), (3, 8)]
        assert [b.shape for b in lora.b] == [(8, 3), ((3 if out == 3 else 1), 3)]
        assert all(x.dtype == dtype for x in jax.tree.leaves(lora))
        assert all(not np.any(b) for b in lora.b)
    x = jnp.ones(2, dtype)
    y = model(x)
    assert y.shape == (() if out == "scalar" else (3,)) and y.dtype == dtype
    ys = jax.vmap(model)(jnp.ones((5, 2), dtype))
    assert ys.shape == (5,) + y.shape and ys.dtype == dtype


def test_tasks_are_sorted_and_validated():
    assert _model(tasks=("pde", "ic", "bc")).tasks == ("bc", "ic", "pde")
    trunk = MLP(2, "scalar", 8, 2, key=jax.random.key(0))
    key = jax.random.key(1)
    for kwargs, match in [(dict(tasks="pde"), "string"), (dict(tasks=("pde", "pde")), "distinct"),
                          (dict(tasks=("bc",)), "main"), (dict(tasks=TASKS, rank=0), "rank"),
                          (dict(tasks=TASKS, layers=(3,)), "layers"),
                          (dict(tasks=TASKS, layers=()), "layers"),
                          (dict(tasks=TASKS, alpha=-1.0), "alpha")]:
        with pytest.raises(ValueError, match=match):
            PerLossAdapters(trunk, key=key, **kwargs)
    with pytest.raises(ValueError, match="MLP"):
        PerLossAdapters(lambda x: x, TASKS, key=key)
    with pytest.raises(ValueError, match="no adapter"):
        _model().for_task("ic")


def test_every_forward_is_the_trunk_at_init():
    model = _model()
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (20, 2)))
    ref = jax.vmap(model.trunk)(x)
    for task in (None, *TASKS):
        np.testing.assert_array_equal(jax.vmap(model.for_task(task))(x), ref)
    np.testing.assert_array_equal(jax.vmap(model)(x), ref)


def test_the_solution_is_the_main_forward():
    """model(x) is trunk + the main task's adapter, not the trunk or another forward."""
    model = _perturb(_model())
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (20, 2)))
    sol = jax.vmap(model)(x)
    np.testing.assert_array_equal(sol, jax.vmap(model.for_task("pde"))(x))
    assert not np.allclose(sol, jax.vmap(model.for_task("bc"))(x))
    assert not np.allclose(sol, jax.vmap(model.trunk)(x))
    other = _perturb(_model(main="bc"))
    np.testing.assert_array_equal(jax.vmap(other)(x), jax.vmap(other.for_task("bc"))(x))
    # the merged forward is a plain MLP: Problem.relative_l2 evaluates the same function
    assert isinstance(model.for_task("pde"), MLP)


@examples(25)
@given(rank=st.integers(1, 5), alpha=st.floats(0.1, 10), seed=st.integers(0, 1000),
       layers=st.sets(st.integers(0, 2), min_size=1), task=st.sampled_from([None, *TASKS]))
def test_forward_is_the_merged_lora_mlp(rank, alpha, seed, layers, task):
    """Forward k = the trunk with W_l + (alpha / r) B_{k,l} A_{k,l} on the adapted layers."""
    model = _perturb(_model(rank=rank, layers=tuple(layers), alpha=alpha, seed=seed), seed)
    x = np.random.default_rng(seed).uniform(-1, 1, 2)
    got = model.for_task(task)(jnp.asarray(x))
    np.testing.assert_allclose(got, _numpy_forward(model, task, x)[0], rtol=1e-10, atol=1e-12)


def test_jit_vmap_grad():
    model = _perturb(_model())
    x = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (7, 2)))
    eager = jax.vmap(model)(x)
    np.testing.assert_allclose(eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(model, x), eager,
                               rtol=1e-12)

    def loss(m, task):
        return jnp.sum(jax.vmap(m.for_task(task))(x) ** 2)

    g = eqx.filter_grad(loss)(model, "bc")
    assert not np.any(np.concatenate([np.ravel(a) for a in jax.tree.leaves(g.adapters["pde"])]))
    assert np.any(g.adapters["bc"].b[0]) and np.any(g.adapters["bc"].a[0])
    assert np.any(g.trunk.layers[0].weight)


@pytest.mark.parametrize("wrapped", ["losses", "function"])
def test_adapter_losses_evaluate_each_loss_on_its_forward(wrapped):
    base = _problem_losses()
    fn = base if wrapped == "losses" else (lambda m, b: dict(base(m, b)))
    loss = adapter_losses(fn)
    model = _perturb(_model())
    batch = _batch()
    got = loss(model, batch)
    assert tuple(got) == TASKS
    for k in TASKS:
        np.testing.assert_allclose(got[k], base(model.for_task(k), batch)[k], rtol=1e-12)
    if wrapped == "losses":
        pw = loss.pointwise(model, batch)
        assert pw["pde"].shape == (16,) and pw["bc"].shape == (8,)
        np.testing.assert_allclose(jnp.mean(pw["bc"]), got["bc"], rtol=1e-12)
        assert loss.residuals(model, batch)["bc"].shape == (8,)
    else:
        with pytest.raises(ValueError, match="Losses"):
            loss.pointwise(model, batch)


def test_adapter_losses_errors():
    loss = adapter_losses(_problem_losses())
    with pytest.raises(ValueError, match="PerLossAdapters"):
        loss(MLP(2, "scalar", 8, 2, key=jax.random.key(0)), _batch())
    with pytest.raises(ValueError, match="adapters for"):
        loss(_model(tasks=("bc", "ic", "pde")), _batch())
    with pytest.raises(ValueError, match="loss function"):
        adapter_losses(3)


def test_other_rows_vanish_on_each_adapter():
    """By construction loss j does not touch adapter k (j != k): its row is exactly zero
    there, which is what lets route give adapter k its own row."""
    _, _, _, _, grads, _ = _routing_inputs()
    for k, task in enumerate(TASKS):
        for j in range(len(TASKS)):
            rows = [np.asarray(g[j]) for g in jax.tree.leaves(grads.adapters[task])]
            assert all(np.any(r) for r in rows) if j == k else not any(np.any(r) for r in rows)


@functools.cache
def _routing_inputs():
    model = _perturb(_model())
    base = _problem_losses()
    batch = _batch()
    values, grads = eqx.filter_jit(task_grads)(adapter_losses(base), model, batch)
    own = {t: eqx.filter_jit(eqx.filter_grad(lambda m, t=t: base(m.for_task(t), batch)[t]))(
        model) for t in TASKS}
    return model, base, batch, values, grads, own


@pytest.mark.standard_promotion
@pytest.mark.parametrize("inner", ["sum", "lra_sum", "pcgrad"])
def test_routing_adapter_gets_its_own_loss_gradient(inner):
    """With route(...) | sgd(1): adapter k's update is minus the gradient of loss k alone;
    the trunk's is minus what the inner chain makes of the trunk rows alone."""
    model, base, batch, values, grads, own_grads = _routing_inputs()
    loss = adapter_losses(base)
    make = {"sum": pc.sum, "lra_sum": lambda: pc.lra(main="pde") | pc.sum(),
            "pcgrad": lambda: pc.pcgrad(random_order=False)}[inner]
    opt = route(make(), own=adapter_owners) | optax.sgd(1.0)
    params = eqx.filter(model, eqx.is_inexact_array)
    updates, _ = jax.jit(lambda g, s, p, v: opt.update(g, s, p, losses=v))(
        grads, opt.init(params, tasks=TASKS), params, values)
    for task in TASKS:
        jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -g, rtol=1e-10, atol=1e-14),
                     updates.adapters[task], own_grads[task].adapters[task])
    trunk_rows = grads.trunk
    ref_opt = make()
    ref, _ = ref_opt.update(trunk_rows, ref_opt.init(params.trunk, tasks=TASKS), params.trunk,
                            losses=values)
    jax.tree.map(lambda u, r: np.testing.assert_allclose(u, -r, rtol=1e-10, atol=1e-14),
                 updates.trunk, ref)
    if inner == "sum":  # the combined gradient: of the summed loss w.r.t. the trunk
        total = eqx.filter_jit(eqx.filter_grad(lambda m: sum(loss(m, batch).values())))(model)
        jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -g, rtol=1e-10, atol=1e-14),
                     updates.trunk, total.trunk)


def test_owners_of_the_model_and_of_nested_trees():
    model = _model()
    params = eqx.filter(model, eqx.is_inexact_array)
    from pinnx.combine._route import owners

    tags = owners(adapter_owners, params)
    n_trunk = len(jax.tree.leaves(model.trunk))
    n_ad = len(jax.tree.leaves(model.adapters["bc"]))
    assert tags == [None] * n_trunk + ["bc"] * n_ad + ["pde"] * n_ad
    nested = {"net": params, "extra": jnp.zeros(2)}
    assert owners(adapter_owners, nested) == [None, *tags]
    with pytest.raises(ValueError, match="no pinnx.nn.PerLossAdapters"):
        adapter_owners({"w": jnp.zeros(2)})


def test_cross_losses():
    model = _perturb(_model())
    trunk, cross = cross_losses(_problem_losses(), model, _batch())
    assert set(cross) == set(TASKS) and all(set(v) == set(TASKS) for v in cross.values())
    assert set(trunk) == set(TASKS)
    own = adapter_losses(_problem_losses())(model, _batch())
    np.testing.assert_allclose(cross["bc"]["bc"], own["bc"], rtol=1e-12)
    assert not np.isclose(cross["pde"]["bc"], own["bc"])
    np.testing.assert_allclose(trunk["bc"], _problem_losses()(model.trunk, _batch())["bc"])


@pytest.mark.standard_promotion
def test_fit_trains_the_adapters_unchanged():
    """pinnx.fit runs the recipe as is: both adapters leave zero, the trunk moves, and the
    reported model is trunk + pde adapter."""
    model = _model()
    opt = route(pc.lra(main="pde") | pc.sum(), own=adapter_owners) | optax.adam(1e-2)
    trained, _, history = pinnx.fit(adapter_losses(_problem_losses()), model, opt, _batch(),
                                    steps=30, log_every=30, progress=False)
    assert history.nonfinite is None and history.steps == 30
    assert history.losses["pde"][-1] < history.losses["pde"][0]
    for task in TASKS:
        assert all(np.any(b) for b in trained.adapters[task].b)
    assert not np.allclose(trained.trunk.layers[0].weight, model.trunk.layers[0].weight)
    x = _batch()["pde"]
    np.testing.assert_array_equal(jax.vmap(trained)(x), jax.vmap(trained.for_task("pde"))(x))
