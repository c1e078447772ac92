"""SA-PINN: masks, ascent/descent signs, pinnx.fit, resampling and weight transfer."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import examples

import pinnx.combine as pc
from pinnx import residuals
from pinnx.nn import MLP
from pinnx.pointwise import (
    SAModel,
    freeze_tasks,
    identity_mask,
    polynomial_mask,
    sa_losses,
    sa_optimizer,
    sa_refresh_state,
    sa_transfer,
    sa_weights,
    sigmoid_mask,
    square_mask,
)
from pinnx.pointwise._masks import resolve_mask
from pinnx.pointwise._sa import sa_labels
from pinnx.tasks import task_grads
from pinnx.train import fit

LAMBDAS = hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-20, 20))
POSITIVE = hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(1e-3, 20))


def _grad(mask, lam):
    return jax.vmap(jax.grad(lambda x: mask(x)))(lam)


@examples(15)
@given(LAMBDAS)
def test_sigmoid_mask_range_and_derivative(lam):
    lam = jnp.asarray(lam)
    m = sigmoid_mask(lam)
    assert bool(jnp.all((m > 0) & (m < 1)))
    np.testing.assert_allclose(_grad(sigmoid_mask, lam), m * (1 - m), rtol=1e-12, atol=1e-300)
    assert bool(jnp.all(_grad(sigmoid_mask, lam) > 0))


@examples(15)
@given(LAMBDAS)
def test_identity_and_square_masks(lam):
    lam = jnp.asarray(lam)
    np.testing.assert_array_equal(identity_mask(lam), lam)
    np.testing.assert_array_equal(_grad(identity_mask, lam), jnp.ones_like(lam))
    assert bool(jnp.all(square_mask(lam) >= 0))
    np.testing.assert_allclose(_grad(square_mask, lam), 2 * lam, rtol=1e-12)


@examples(15)
@given(POSITIVE, st.sampled_from([0.5, 1.0, 2.0, 3.0]), st.sampled_from([0.5, 1.0, 4.0]))
def test_polynomial_mask_values_derivative_monotone(lam, q, c):
    lam = jnp.asarray(lam)
    mask = polynomial_mask(q, c)
    np.testing.assert_allclose(mask(lam), c * lam**q, rtol=1e-12)
    np.testing.assert_allclose(_grad(mask, lam), c * q * lam ** (q - 1), rtol=1e-10)
    srt = jnp.sort(lam)
    assert bool(jnp.all(jnp.diff(mask(srt)) >= 0))
    assert bool(jnp.all(mask(-lam) == 0))  # negative weights are masked to zero
    np.testing.assert_array_equal(_grad(mask, -lam), jnp.zeros_like(lam))  # no NaN


def test_mask_errors():
    assert resolve_mask("square") is square_mask
    assert resolve_mask(jnp.exp) is jnp.exp
    with pytest.raises(ValueError, match="unknown mask"):
        resolve_mask("cube")
    with pytest.raises(ValueError, match="q > 0"):
        polynomial_mask(0.0)


LOSSES = residuals.losses(data=residuals.data(), zero=residuals.dirichlet(0.0))


def _batch(n=12):
    x = jnp.linspace(-1, 1, n)[:, None]
    return {"data": (x, jnp.tanh(5 * x[:, 0])), "zero": jnp.array([[-1.0], [1.0]])}


def _net(seed=0):
    return MLP(1, "scalar", width=8, depth=1, key=jax.random.key(seed))


@pytest.mark.standard_promotion
@pytest.mark.parametrize("mask", ["identity", "square", "sigmoid"])
def test_one_step_ascends_weights_descends_network(mask):
    batch = _batch()
    model = SAModel(_net(), sa_weights(batch, ("data",), init=0.5))
    lr_w, lr_n = 0.3, 0.05
    opt = pc.sum() | sa_optimizer(optax.sgd(lr_n), weights=optax.sgd(lr_w))
    params = eqx.filter(model, eqx.is_inexact_array)
    state = opt.init(params, tasks=("data", "zero"))
    loss_fn = sa_losses(LOSSES, mask)
    values, grads = task_grads(loss_fn, model, batch)
    updates, _ = opt.update(grads, state, params, losses=values)
    new = eqx.apply_updates(model, updates)
    # weights: exact gradient *ascent*, lr m'(lambda) r^2 / N
    r2 = LOSSES.pointwise(model.net, batch)["data"]
    m_prime = jax.vmap(jax.grad(resolve_mask(mask)))(model.weights["data"])
    expected = model.weights["data"] + lr_w * m_prime * r2 / r2.shape[0]
    np.testing.assert_allclose(new.weights["data"], expected, rtol=1e-10)
    delta = new.weights["data"] - model.weights["data"]
    assert bool(jnp.all(delta >= 0))
    assert int(jnp.argmax(delta)) == int(jnp.argmax(r2))  # largest residual, largest rise
    # network: plain gradient *descent* on the weighted summed loss
    g_net = jax.grad(lambda n: sum(loss_fn(SAModel(n, model.weights), batch).values()))(
        model.net)
    jax.tree.map(lambda a, b, g: np.testing.assert_allclose(a, b - lr_n * g, rtol=1e-10),
                 eqx.filter(new.net, eqx.is_inexact_array),
                 eqx.filter(model.net, eqx.is_inexact_array),
                 eqx.filter(g_net, eqx.is_inexact_array))
    # and the descent lowers the weighted loss for these fixed weights
    before = sum(loss_fn(model, batch).values())
    after = sum(loss_fn(SAModel(new.net, model.weights), batch).values())
    assert after < before


@pytest.mark.standard_promotion
def test_fit_matches_hand_written_loop_and_weights_rise():
    batch = _batch()
    model = SAModel(_net(), sa_weights(batch, ("data",), init=1.0))
    opt = pc.sum() | sa_optimizer(optax.adam(1e-2), weights_lr=1e-2)
    loss_fn = sa_losses(LOSSES, "square")
    trained, _, hist = fit(loss_fn, model, opt, batch, steps=15, progress=False, log_every=5)
    assert isinstance(trained, SAModel) and hist.steps == 15
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = opt.init(params, tasks=("data", "zero"))

    @jax.jit
    def step(params, state):
        values, grads = task_grads(loss_fn, eqx.combine(params, static), batch)
        updates, state = opt.update(grads, state, params, losses=values)
        return optax.apply_updates(params, updates), state

    for _ in range(15):
        params, state = step(params, state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12),
                 eqx.filter(trained, eqx.is_inexact_array), params)
    assert bool(jnp.all(trained.weights["data"] > 1.0))  # Adam ascent: every weight rose


@pytest.mark.standard_promotion
def test_fit_resampling_keeps_weighted_points_fixed():
    batch = _batch()

    def sample(key):
        return {"data": batch["data"],
                "zero": jax.random.uniform(key, (2, 1), minval=-1, maxval=1)}

    fixed = {"data": batch["data"]}
    data = freeze_tasks(sample, fixed)
    b1, b2 = jax.jit(data)(jax.random.key(1)), jax.jit(data)(jax.random.key(2))
    np.testing.assert_array_equal(b1["data"][0], batch["data"][0])
    assert not np.allclose(b1["zero"], b2["zero"])
    model = SAModel(_net(), sa_weights(batch, ("data",)))
    opt = pc.sum() | sa_optimizer(optax.adam(1e-2), weights_lr=1e-2)
    trained, _, hist = fit(sa_losses(LOSSES), model, opt, data, steps=12, resample_every=4,
                           progress=False, key=jax.random.key(3))
    assert trained.weights["data"].shape == (12,) and hist.nonfinite is None
    with pytest.raises(ValueError, match="draws no entries"):
        freeze_tasks(sample, {"other": batch["zero"]})(jax.random.key(0))


def test_shape_errors():
    batch = _batch()
    loss_fn = sa_losses(LOSSES)
    bad = SAModel(_net(), {"data": jnp.ones(5)})
    with pytest.raises(ValueError, match="12 points but"):
        loss_fn(bad, batch)
    with pytest.raises(ValueError, match="unknown tasks"):
        loss_fn(SAModel(_net(), {"pde": jnp.ones(12)}), batch)
    with pytest.raises(ValueError, match="SAModel"):
        loss_fn(_net(), batch)
    with pytest.raises(ValueError, match="exactly one"):
        sa_optimizer(optax.adam(1e-3))
    with pytest.raises(ValueError, match="exactly one"):
        sa_optimizer(optax.adam(1e-3), 1e-2, weights=optax.sgd(1e-2))
    with pytest.raises(ValueError, match="SAModel"):
        sa_labels({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match="no entry"):
        sa_weights(batch, ("pde",))
    with pytest.raises(ValueError, match="non-finite"):
        sa_weights(batch, ("data",), init=float("nan"))
    with pytest.raises(ValueError, match="pinnx.residuals.Losses"):
        sa_losses(lambda m, b: {})


def test_pair_model_and_labels():
    net = _net()
    labels = sa_labels((eqx.filter(net, eqx.is_inexact_array), {"data": jnp.ones(3)}))
    assert set(jax.tree.leaves(labels[0])) == {"net"}
    assert jax.tree.leaves(labels[1]) == ["sa_weights"]
    batch = _batch()
    pair = (net, sa_weights(batch, ("data",)))
    np.testing.assert_allclose(sa_losses(LOSSES)(pair, batch)["data"],
                               sa_losses(LOSSES)(SAModel(*pair), batch)["data"])


def test_transfer_nearest_reinit_keep():
    old = {"data": (jnp.array([[0.0], [1.0], [2.0]]), jnp.zeros(3))}
    new = {"data": (jnp.array([[1.9], [0.4], [0.6], [5.0]]), jnp.zeros(4))}
    model = SAModel(_net(), {"data": jnp.array([10.0, 20.0, 30.0])})
    out = sa_transfer(model, old, new)
    np.testing.assert_array_equal(out.weights["data"], [30.0, 10.0, 20.0, 30.0])
    out = sa_transfer(model, old, new, how="reinit", init=0.5)
    np.testing.assert_array_equal(out.weights["data"], jnp.full(4, 0.5))
    assert sa_transfer(model, old, old, how="keep").weights["data"] is model.weights["data"]
    with pytest.raises(ValueError, match="same number"):
        sa_transfer(model, old, new, how="keep")
    with pytest.raises(ValueError, match="how must be"):
        sa_transfer(model, old, new, how="linear")


@pytest.mark.standard_promotion
def test_refresh_state_after_growth_keeps_network_moments():
    batch = _batch()
    model = SAModel(_net(), sa_weights(batch, ("data",)))
    opt = pc.sum() | sa_optimizer(optax.adam(1e-2), weights_lr=1e-2)
    model, state, _ = fit(sa_losses(LOSSES), model, opt, batch, steps=5, progress=False)
    x = jnp.linspace(-1, 1, 15)[:, None]
    bigger = {"data": (x, jnp.tanh(5 * x[:, 0])), "zero": batch["zero"]}
    grown = sa_transfer(model, batch, bigger)
    new_state = sa_refresh_state(opt, state, eqx.filter(grown, eqx.is_inexact_array),
                                 tasks=("data", "zero"))
    old_net = state[1].inner_states["net"]
    jax.tree.map(np.testing.assert_array_equal, new_state[1].inner_states["net"], old_net)
    sa_mu = new_state[1].inner_states["sa_weights"].inner_state[0][0].mu
    assert sa_mu.weights["data"].shape == (15,)
    trained, _, hist = fit(sa_losses(LOSSES), grown, opt, bigger, steps=5, progress=False,
                           opt_state=new_state)
    assert trained.weights["data"].shape == (15,) and hist.nonfinite is None
