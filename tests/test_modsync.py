"""ModSync masked layers: shapes, the binary mask, the long-tailed STE, L_s, sparsity, and the
routing of each objective's thresholds to its own loss."""


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
from pinnx.combine._route import owners, route
from pinnx.nn._mlp import MLP
from pinnx.nn._modsync import (
    MaskedLinear,
    ModSyncMLP,
    binary_step,
    long_tailed_derivative,
    modsync_labels,
    modsync_owners,
    sparsity,
)
from pinnx.recipes import modsync_optimizer, sparsity_penalty
from pinnx.residuals import sparsity_loss
from pinnx.tasks import task_grads

TASKS = ("bc", "pde")


@eqx.filter_jit
def _build(key, out, dtype, objectives, width, depth):
    return ModSyncMLP(2, out, width, depth, objectives=objectives, key=key, dtype=dtype)


def _model(out="scalar", dtype=None, objectives=TASKS, seed=0, width=8, depth=2):
    """A small ModSyncMLP; built under jit (one compilation instead of many eager ones)."""
    return _build(jax.random.key(seed), out, dtype, tuple(objectives), width, depth)


def _with_thresholds(model, seed=0, low=0.0, high=0.4):
    """Random, objective-specific thresholds (at init they are all zero: nothing pruned)."""
    rng = np.random.default_rng(seed)
    return eqx.tree_at(
        lambda m: [t for layer in m.layers for t in layer.thresholds.values()], model,
        [jnp.asarray(rng.uniform(low, high, t.shape), t.dtype)
         for layer in model.layers for t in layer.thresholds.values()])


def _hand_step_derivative(x):
    a = np.abs(np.asarray(x, np.float64))
    return np.where(a <= 0.4, 2 - 4 * a, np.where(a <= 1, 0.4, 0.0))


def _problem_losses():
    def residual(u, x):
        return pinnx.operators.laplacian(u, x) + jnp.sin(x[0])

    return pinnx.residuals.losses(pde=pinnx.residuals.pde(residual),
                                  bc=pinnx.residuals.dirichlet(0.0))


def _batch(dtype=jnp.float64, bc_value=0.0):
    rng = np.random.default_rng(0)
    return {"pde": jnp.asarray(rng.uniform(-1, 1, (16, 2)), dtype),
            "bc": jnp.asarray(rng.uniform(-1, 1, (8, 2)), dtype),
            "bc_value": jnp.asarray(bc_value, dtype)}


def _fit_losses(model, batch):
    """Two cheap objectives (no input derivatives: the routing does not depend on them)."""
    u_pde, u_bc = jax.vmap(model)(batch["pde"]), jax.vmap(model)(batch["bc"])
    return {"bc": jnp.mean((u_bc - batch["bc_value"]) ** 2),
            "pde": jnp.mean((u_pde - jnp.sin(3 * batch["pde"][:, 0])) ** 2)}


@pytest.mark.parametrize(("out", "dtype"), [("scalar", jnp.float32), (3, jnp.float64)])
def test_shapes_and_dtypes(out, dtype):
    model = _model(out=out, dtype=dtype, objectives=("pde", "bc"))
    assert model.objectives == TASKS and len(model.layers) == 3
    m = 3 if out == 3 else 1
    assert [layer.weight.shape for layer in model.layers] == [(8, 2), (8, 8), (m, 8)]
    for layer in model.layers:
        assert layer.objectives == TASKS
        for t in layer.thresholds.values():
            assert t.shape == layer.weight.shape[:1] and t.dtype == dtype and not np.any(t)
    y, ys, masks, s = _apply(model, jnp.ones(2, dtype), jnp.ones((5, 2), dtype))
    assert all(mk.dtype == dtype and mk.shape == layer.weight.shape
               for mk, layer in zip(masks, model.layers, strict=True))
    assert y.shape == (() if out == "scalar" else (3,)) and y.dtype == dtype
    assert ys.shape == (5,) + y.shape and ys.dtype == dtype
    assert set(s) == {"sparsity_0", "sparsity_1", "sparsity_2", "sparsity"}
    assert all(v.shape == () and float(v) == 0.0 for v in s.values())


@eqx.filter_jit
def _apply(model, x, xs):
    return model(x), jax.vmap(model)(xs), [layer.mask() for layer in model.layers], sparsity(model)


def test_same_weights_and_function_as_the_mlp_at_init():
    """Same key, same weights as pinnx.nn.MLP; thresholds 0 keep every weight."""
    model = _model(seed=3)
    dense = eqx.filter_jit(lambda key: MLP(2, "scalar", 8, 2, key=key))(jax.random.key(3))
    for a, b in zip(model.layers, dense.layers, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (20, 2)))
    u, v = eqx.filter_jit(lambda m, d, x: (jax.vmap(m)(x), jax.vmap(d)(x)))(model, dense, x)
    np.testing.assert_array_equal(u, v)


def test_validation():
    key = jax.random.key(0)
    for objectives, match in [("pde", "string"), (("pde", "pde"), "distinct"), ((), "distinct"),
                              (("pde", ""), "distinct")]:
        with pytest.raises(ValueError, match=match):
            ModSyncMLP(2, "scalar", 4, 1, objectives=objectives, key=key)
    w = jnp.zeros((3, 2))
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's check, in the tests
        MaskedLinear(w, jnp.zeros(3), {"pde": jnp.zeros(2)})
    with pytest.raises(ValueError, match="at least one"):
        MaskedLinear(w, jnp.zeros(3), {})
    with pytest.raises(ValueError, match="with a bias"):
        MaskedLinear.from_linear(eqx.nn.Linear(2, 3, use_bias=False, key=key), TASKS)
    with pytest.raises(ValueError, match="no thresholds"):
        _model().layers[0].threshold("ic")
    plain = {"w": jnp.zeros(2)}
    for fn in (sparsity, sparsity_loss, modsync_owners, modsync_labels):
        with pytest.raises(ValueError, match="no pinnx.nn.MaskedLinear"):
            fn(plain)
    with pytest.raises(ValueError, match="beta"):
        sparsity_loss(_model(), beta=0.0)
    with pytest.raises(ValueError, match="lambda_s"):
        sparsity_penalty(-1.0)
    with pytest.raises(ValueError, match="not both"):
        modsync_optimizer(optax.sgd(1.0), 1e-4, thresholds=optax.sgd(1.0))
    with pytest.raises((ValueError, TypeError)):
        modsync_optimizer(lambda g: g)
    penalty = sparsity_penalty()
    with pytest.raises(ValueError, match="needs params"):
        penalty.update(_model(), penalty.init(_model()))


@examples(25)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 3), scale=st.sampled_from([0.1, 0.5, 2.0]),
       tie=st.booleans())
def test_forward_mask_is_binary_and_the_forward_is_m_times_theta(seed, k, scale, tie):
    """M = 1[|theta| > mean_k t_k] exactly (0 on ties), and the layer is (M * theta) x + b."""
    rng = np.random.default_rng(seed)
    out, fan_in = 3, 4  # fixed shapes: every example reuses the compiled operations
    w = rng.normal(0, scale, (out, fan_in))
    ts = {f"o{i}": rng.uniform(-0.2, 1.0, out) * scale for i in range(k)}
    if tie:  # the mean threshold equals |theta_i0| (exactly: K <= 2): step(0) = 0 prunes it
        ts = {name: np.abs(w[:, 0]) for name in list(ts)[:2]}
    layer = MaskedLinear(jnp.asarray(w), jnp.asarray(rng.normal(size=out)),
                         {n: jnp.asarray(t) for n, t in ts.items()})
    m = np.asarray(layer.mask())
    assert set(np.unique(m)) <= {0.0, 1.0}
    t = np.mean([ts[n] for n in sorted(ts)], axis=0)
    np.testing.assert_array_equal(m, (np.abs(w) > t[:, None]).astype(float))
    if tie:
        assert not np.any(m[:, 0])
    x = rng.uniform(-1, 1, fan_in)
    np.testing.assert_allclose(layer(jnp.asarray(x)),
                               (m * w) @ x + np.asarray(layer.bias), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(layer.masked_weight(), m * w)


def test_the_step_derivative_is_the_long_tailed_estimator():
    """Liu et al. 2020: H'(x) = 2 - 4|x| (|x| <= 0.4), 0.4 (0.4 < |x| <= 1), 0 (|x| > 1);
    reverse and forward mode, with the binary forward unchanged."""
    x = jnp.asarray(np.concatenate([np.linspace(-1.5, 1.5, 61), [-1.0, -0.4, 0.0, 0.4, 1.0,
                                                                  0.39, 0.41, 0.99, 1.01]]))
    hand = _hand_step_derivative(x)
    np.testing.assert_array_equal(binary_step(x), (np.asarray(x) > 0).astype(float))
    np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(binary_step(v)))(x), hand,
                               rtol=1e-14, atol=1e-15)
    _, tangent = jax.jvp(binary_step, (x,), (jnp.ones_like(x),))
    np.testing.assert_allclose(tangent, hand, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(long_tailed_derivative(x), hand, rtol=1e-14, atol=1e-15)
    assert long_tailed_derivative(jnp.float32(0.3)).dtype == jnp.float32


def test_layer_gradients_follow_the_estimator():
    """For L = sum(G * (M * W)): dL/dW = G (M + |W| H'(|W| - t)) and
    dL/dt_k = -(1/K) sum_j G_ij W_ij H'(|W_ij| - t_i)."""
    rng = np.random.default_rng(4)
    w = rng.normal(0, 0.5, (4, 6))
    ts = {"bc": rng.uniform(0, 0.5, 4), "ic": rng.uniform(0, 0.5, 4), "pde": rng.uniform(0, 0.5, 4)}
    g = rng.normal(size=(4, 6))
    layer = MaskedLinear(jnp.asarray(w), jnp.zeros(4), {n: jnp.asarray(t) for n, t in ts.items()})
    grads = jax.grad(lambda lay: jnp.sum(jnp.asarray(g) * lay.masked_weight()))(layer)
    t = np.mean(list(ts.values()), axis=0)[:, None]
    m = (np.abs(w) > t).astype(float)
    h = _hand_step_derivative(np.abs(w) - t)
    np.testing.assert_allclose(grads.weight, g * (m + np.abs(w) * h), rtol=1e-12, atol=1e-14)
    for name in ts:
        np.testing.assert_allclose(grads.thresholds[name], -np.sum(g * w * h, axis=1) / 3,
                                   rtol=1e-12, atol=1e-14)


def test_jit_vmap_grad_and_input_derivatives():
    model = _with_thresholds(_model())
    x = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (7, 2)))
    eager = jax.vmap(model)(x)
    np.testing.assert_allclose(eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(model, x), eager,
                               rtol=1e-12)
    # reverse mode through the forward-mode Laplacian of a PINN loss reaches the thresholds
    batch = _batch()
    g = eqx.filter_jit(eqx.filter_grad(lambda m: sum(_problem_losses()(m, batch).values())))(
        model)
    assert all(np.any(t) for layer in g.layers for t in layer.thresholds.values())
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(g))


def test_sparsity_loss_against_a_hand_computation():
    beta = 0.3
    t1 = {"bc": np.array([0.1, -0.2, 0.3]), "pde": np.array([0.0, 0.2, 0.1])}
    t2 = {"bc": np.array([0.5, 0.4]), "pde": np.array([0.45, 0.35])}

    def layer(ts):
        n = len(next(iter(ts.values())))
        return MaskedLinear(jnp.ones((n, 2)), jnp.zeros(n), {k: jnp.asarray(v) for k, v in
                                                             ts.items()})

    def paper(ts):  # exp(||t_r - t_b||^2 / beta) (R_s(t_r) + R_s(t_b))
        return np.exp(np.sum((ts["pde"] - ts["bc"]) ** 2) / beta) * (
            np.sum(np.exp(-ts["pde"])) + np.sum(np.exp(-ts["bc"])))

    tree = [layer(t1), {"other": jnp.ones(3), "l": layer(t2)}]
    np.testing.assert_allclose(sparsity_loss(tree, beta), paper(t1) + paper(t2), rtol=1e-13)
    # K = 3: R_w uses the mean over the three pairs; K = 1: R_w = 1 (plain DST)
    t3 = {**t1, "ic": np.array([0.2, 0.2, -0.1])}
    pairs = [("bc", "ic"), ("bc", "pde"), ("ic", "pde")]
    spread = np.mean([np.sum((t3[a] - t3[b]) ** 2) for a, b in pairs])
    hand3 = np.exp(spread / beta) * sum(np.sum(np.exp(-v)) for v in t3.values())
    np.testing.assert_allclose(sparsity_loss(layer(t3), beta), hand3, rtol=1e-13)
    np.testing.assert_allclose(sparsity_loss(layer({"pde": t1["pde"]}), beta),
                               np.sum(np.exp(-t1["pde"])), rtol=1e-13)
    # at initialisation (thresholds 0): R_w = 1, L_s = K * (number of units)
    assert float(sparsity_loss(_model())) == 2 * (8 + 8 + 1)


def test_sparsity_on_a_hand_made_example():
    w0 = jnp.array([[0.1, -0.5, 0.3], [0.05, 0.02, -0.9]])  # thresholds mean (0.2, 0.1)
    l0 = MaskedLinear(w0, jnp.zeros(2), {"bc": jnp.array([0.1, 0.0]),
                                         "pde": jnp.array([0.3, 0.2])})
    w1 = jnp.array([[0.2, -0.2]])
    l1 = MaskedLinear(w1, jnp.zeros(1), {"bc": jnp.array([0.25]), "pde": jnp.array([0.15])})
    s = sparsity((l0, l1))
    # layer 0: row 0 keeps -0.5, 0.3 (0.1 <= 0.2 pruned); row 1 keeps -0.9: 3 of 6 pruned
    # layer 1: |0.2| > 0.2 is false: both pruned
    np.testing.assert_allclose([s["sparsity_0"], s["sparsity_1"], s["sparsity"]],
                               [3 / 6, 2 / 2, 5 / 8], rtol=1e-12)
    s_bc = sparsity((l0, l1), objective="bc")  # t = (0.1, 0.0) and 0.25
    np.testing.assert_allclose([s_bc["sparsity_0"], s_bc["sparsity_1"]], [1 / 6, 1.0])
    s_pde = sparsity((l0, l1), objective="pde")  # t = (0.3, 0.2) and 0.15
    np.testing.assert_allclose([s_pde["sparsity_0"], s_pde["sparsity_1"]], [4 / 6, 0.0])
    jitted = jax.jit(sparsity)((l0, l1))
    np.testing.assert_allclose(jitted["sparsity"], 5 / 8)


def test_owners_and_labels():
    model = _model()
    params = eqx.filter(model, eqx.is_inexact_array)
    tags = owners(modsync_owners, params)
    assert tags == [None, None, "bc", "pde"] * 3  # fields: weight, bias, thresholds{bc, pde}
    labels = jax.tree.leaves(modsync_labels(params))
    assert labels == ["net", "net", "thresholds", "thresholds"] * 3
    nested = {"net": params, "extra": jnp.zeros(2)}
    assert owners(modsync_owners, nested) == [None, *tags]


LAMBDA_S, BETA = 0.05, 0.3


@eqx.filter_jit
def _routing(model, batch):
    """Everything the routing test compares, in one compiled function:

    - `updates`: route(dcgd) | modsync_optimizer(sgd(1), thresholds=sgd(1)), i.e. minus the
      routed gradient after the penalty;
    - `own[k]`: d(L_k + lambda_s L_s)/dt_k, differentiating w.r.t. t_k alone;
    - `ref`: DCGD's aggregate of the weights' and biases' rows alone;
    - `penalised[k]`: row k on t_k of the per-task gradients of {k: L_k + lambda_s L_s}.
    """
    values, grads = task_grads(_fit_losses, model, batch)
    opt = route(pc.dcgd(), own=modsync_owners) | modsync_optimizer(
        optax.sgd(1.0), thresholds=optax.sgd(1.0), lambda_s=LAMBDA_S, beta=BETA)
    params = eqx.filter(model, eqx.is_inexact_array)
    updates, _ = opt.update(grads, opt.init(params, tasks=TASKS), params, losses=values)
    own = {}
    for task in TASKS:
        where = lambda m, task=task: [layer.thresholds[task] for layer in m.layers]  # noqa: E731

        def objective(ts, where=where, task=task):
            m = eqx.tree_at(where, model, ts)
            return _fit_losses(m, batch)[task] + LAMBDA_S * sparsity_loss(m, BETA)

        own[task] = jax.grad(objective)(where(model))
    shared = eqx.tree_at(lambda m: [layer.thresholds for layer in m.layers], grads,
                         [{} for _ in grads.layers])
    dcgd = pc.dcgd()
    ref, _ = dcgd.update(shared, dcgd.init(shared))

    def loss(m, b):
        reg = LAMBDA_S * sparsity_loss(m, BETA)
        return {k: v + reg for k, v in _fit_losses(m, b).items()}

    _, rows = task_grads(loss, model, batch)
    penalised = {k: [layer.thresholds[k][i] for layer in rows.layers]
                 for i, k in enumerate(TASKS)}
    return dict(grads=grads, updates=updates, own=own, ref=ref, penalised=penalised)


@pytest.mark.standard_promotion
def test_each_threshold_learns_from_its_own_loss_and_the_regulariser():
    """t_k's update is -d(L_k + lambda_s L_s)/dt_k exactly; weights and biases get the DCGD
    aggregate of their own rows; changing the bc loss leaves t_pde's update unchanged; and
    adding lambda_s L_s to every loss instead of the penalty gives the same updates."""
    model = _with_thresholds(_model(depth=1))
    out = _routing(model, _batch())
    updates = out["updates"]
    for task in TASKS:
        for layer, own, pen in zip(updates.layers, out["own"][task], out["penalised"][task],
                                   strict=True):
            np.testing.assert_allclose(layer.thresholds[task], -own, rtol=1e-10, atol=1e-14)
            # the documented equivalence with lambda_s L_s added to every loss, routed
            np.testing.assert_allclose(layer.thresholds[task], -pen, rtol=1e-10, atol=1e-14)
    for layer, r in zip(updates.layers, out["ref"].layers, strict=True):
        np.testing.assert_allclose(layer.weight, -r.weight, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(layer.bias, -r.bias, rtol=1e-10, atol=1e-14)
    # another boundary condition: the bc loss (and every weight's update) changes, t_pde's not
    other = _routing(model, _batch(bc_value=0.7))
    assert not np.allclose(other["grads"].layers[0].thresholds["bc"][0],
                           out["grads"].layers[0].thresholds["bc"][0])
    for a, b in zip(updates.layers, other["updates"].layers, strict=True):
        np.testing.assert_array_equal(a.thresholds["pde"], b.thresholds["pde"])
        assert not np.allclose(a.thresholds["bc"], b.thresholds["bc"])
    assert not np.allclose(updates.layers[0].weight, other["updates"].layers[0].weight)


def test_sparsity_penalty_adds_the_regulariser_gradient_to_the_thresholds_only():
    model = _with_thresholds(_model())
    params = eqx.filter(model, eqx.is_inexact_array)
    zeros = jax.tree.map(jnp.zeros_like, params)
    penalty = sparsity_penalty(0.1, beta=0.5)
    update = jax.jit(penalty.update)
    out, _ = update(zeros, penalty.init(params), params)
    g = jax.jit(jax.grad(lambda m: sparsity_loss(m, 0.5)))(params)
    for a, b in zip(out.layers, g.layers, strict=True):
        assert not np.any(a.weight) and not np.any(a.bias)
        for k in TASKS:
            np.testing.assert_allclose(a.thresholds[k], 0.1 * b.thresholds[k], rtol=1e-12)
    # equal thresholds (at init: 0): dR_w/dt = 0, so dL_s/dt_k,i = -exp(-t_k,i) = -1
    init = eqx.filter(_model(), eqx.is_inexact_array)
    out, _ = update(zeros, penalty.init(init), init)
    for layer in out.layers:
        for t in layer.thresholds.values():
            np.testing.assert_allclose(t, -0.1, rtol=1e-14)


@pytest.mark.standard_promotion
def test_fit_with_a_dcgd_chain():
    """The recipe in pinnx.fit: finite losses, thresholds move, sparsity recorded."""
    model = _model(depth=1)
    opt = route(pc.dcgd(), own=modsync_owners) | modsync_optimizer(
        optax.adam(1e-2), thresholds_lr=1e-2)
    trained, _, history = pinnx.fit(_fit_losses, model, opt, _batch(), steps=20,
                                    log_every=10, eval_fn=eqx.filter_jit(sparsity),
                                    progress=False)
    assert history.nonfinite is None and history.steps == 20
    assert all(np.all(np.isfinite(v)) for v in history.losses.values())
    assert [s for s, _ in history.evals] == [0, 10, 20]
    assert set(history.evals[-1][1]) == {"sparsity_0", "sparsity_1", "sparsity"}
    assert all(0 <= v <= 1 for _, e in history.evals for v in e.values())
    for a, b in zip(trained.layers, model.layers, strict=True):
        assert not np.allclose(a.thresholds["pde"], b.thresholds["pde"])
        assert not np.allclose(a.thresholds["pde"], a.thresholds["bc"])
    assert np.all(np.isfinite(jax.vmap(trained)(_batch()["pde"])))
