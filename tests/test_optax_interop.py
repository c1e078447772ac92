"""optax's own wrappers on pinnx pieces: inject_hyperparams, gradient accumulation,
optax.chain and vmap over a batch of problems."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pinnx

pytestmark = pytest.mark.standard_promotion  # optax transforms in every chain

PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros(())}
GRADS = {"w": jnp.array([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.0], [0.5, -2.0, 1.0]]),
         "b": jnp.array([1.0, -2.0, 0.5])}
LOSSES = {"bc": jnp.array(0.3), "ic": jnp.array(2.0), "pde": jnp.array(1.5)}


def _close(a, b, rtol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7), a, b)


def test_optax_inject_hyperparams_of_cagrad_is_traced():
    """The issue's example: optax.inject_hyperparams(pinnx.cagrad)(c=0.5), kept an
    aggregator by as_aggregator, equals cagrad(c=0.5), and follows a changed c."""
    opt = pinnx.as_aggregator(optax.inject_hyperparams(pinnx.cagrad)(c=0.5)) | optax.sgd(1.0)
    state = opt.init(PARAMS)
    update = jax.jit(opt.update)
    u, state = update(GRADS, state, PARAMS)
    ref = pinnx.cagrad(c=0.5) | optax.sgd(1.0)
    _close(u, ref.update(GRADS, ref.init(PARAMS), PARAMS)[0], rtol=1e-5)
    state[0].hyperparams["c"] = jnp.asarray(0.2)
    u, _ = update(GRADS, state, PARAMS)
    ref = pinnx.cagrad(c=0.2) | optax.sgd(1.0)
    _close(u, ref.update(GRADS, ref.init(PARAMS), PARAMS)[0], rtol=1e-5)


# every factory with float hyperparameters, injected: the same update as built directly
INJECTED = {
    "cagrad": dict(c=0.3),
    "fairgrad": dict(alpha=2.0),
    "nash_mtl": dict(max_norm=0.5),
    "gradvac": dict(beta=0.3),
    "graddrop": dict(leak=0.2),
    "m_config": dict(b1=0.5, b2=0.9),
    "weighted": dict(weights=jnp.array([1.0, 2.0, 3.0])),
    "aligned_mtl": dict(weights=jnp.array([0.2, 0.3, 0.5])),
    "cosine_gate": dict(main=0, threshold=0.1),
    "lra": dict(alpha=0.3, main=1, every=1),
    "grad_norm_weights": dict(alpha=0.3, every=1),
    "gradnorm": dict(alpha=1.0, learning_rate=0.1),
    "relobralo": dict(alpha=0.5, tau=2.0, rho=1.0),
    "softadapt": dict(beta=0.5),
    "dwa": dict(temperature=3.0),
    "uncertainty": dict(learning_rate=0.1),
    "multiadam": dict(b1=0.9),
}


FAST = {"cagrad", "fairgrad", "lra", "multiadam"}  # a QP, a Newton, a weighting, a chain


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(INJECTED)])
def test_pinnx_inject_hyperparams_keeps_kind_and_result(name):
    factory = getattr(pinnx, name)
    kwargs = INJECTED[name]
    direct = factory(**kwargs)
    injected = pinnx.inject_hyperparams(factory)(**kwargs)
    assert type(injected) is (pinnx.Aggregator if isinstance(direct, pinnx.Chain)
                              else type(direct))
    tail = pinnx.sum() if isinstance(injected, pinnx.TaskTransform) else optax.identity()
    ours, theirs = injected | tail, direct | tail
    s1, s2 = ours.init(PARAMS, tasks=3), theirs.init(PARAMS, tasks=3)
    step = jax.jit(lambda g, s: ours.update(g, s, PARAMS, losses=LOSSES))
    for _ in range(3):
        u1, s1 = step(GRADS, s1)
        u2, s2 = theirs.update(GRADS, s2, PARAMS, losses=LOSSES)
        _close(u1, u2, rtol=1e-5)


def test_vmap_over_a_combiner_coefficient():
    """An ensemble over c: one vmapped update, each member equal to its own cagrad(c)."""
    opt = pinnx.inject_hyperparams(pinnx.cagrad)(c=0.5)
    cs = jnp.array([0.0, 0.25, 0.5, 1.0])
    states = jax.vmap(lambda c: opt.init(PARAMS)._replace(
        hyperparams={"c": c, "norm_eps": jnp.asarray(1e-4)}))(cs)
    out, _ = jax.jit(jax.vmap(lambda s: opt.update(GRADS, s, PARAMS)))(states)
    for i, c in enumerate(cs):
        ref, _ = pinnx.cagrad(c=float(c)).update(GRADS, pinnx.cagrad().init(PARAMS), PARAMS)
        _close(jax.tree.map(lambda x, i=i: x[i], out), ref, rtol=1e-5)


def test_traced_structural_argument_is_refused_clearly():
    opt = pinnx.as_aggregator(optax.inject_hyperparams(pinnx.mgda)(tol=1e-6))
    with pytest.raises(ValueError, match="cannot be traced"):
        jax.jit(opt.update)(GRADS, opt.init(PARAMS), PARAMS)


def _problem(points):
    """Two tasks whose losses are means over points: (x . w - y)^2 and (w . w - 1)^2 x."""

    def losses(params, batch):
        x, y = batch
        fit = jnp.mean((x @ params["w"] + params["b"] - y) ** 2)
        reg = jnp.mean((params["w"] @ params["w"] - 1.0) ** 2 * jnp.abs(x[:, 0]))
        return {"fit": fit, "reg": reg}

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(points, 3)))
    y = jnp.asarray(rng.normal(size=(points,)))
    return losses, (x, y)


@pytest.mark.parametrize("make", [lambda: pinnx.upgrad() | optax.adam(1e-2),
                                  pytest.param(lambda: pinnx.lra(main="fit")
                                               | pinnx.pcgrad(seed=0) | optax.adam(1e-2),
                                               marks=pytest.mark.slow)])
def test_accumulated_micro_batches_equal_one_large_batch(make):
    """k = 3 micro-batches of 8 points, accumulated, give the update of one batch of 24."""
    losses, (x, y) = _problem(24)
    params = {"w": jnp.array([0.3, -0.2, 0.5]), "b": jnp.array(0.1)}
    big = make()
    values, rows = pinnx.task_grads(losses, params, (x, y))
    want, _ = big.update(rows, big.init(params, tasks=2), params, losses=values)
    acc = pinnx.accumulate(make(), every=3)
    state = acc.init(params, tasks=2)
    for i in range(3):
        part = (x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8])
        values, rows = pinnx.task_grads(losses, params, part)
        got, state = acc.update(rows, state, params, losses=values)
        if i < 2:
            assert all(float(jnp.max(jnp.abs(v))) == 0 for v in jax.tree.leaves(got))
    _close(got, want, rtol=1e-5)
    assert int(state.mini_step) == 0


def test_accumulate_refuses_a_plain_optimizer():
    with pytest.raises(ValueError, match="optax.MultiSteps"):
        pinnx.accumulate(optax.adam(1e-3), every=2)
    with pytest.raises(ValueError, match="positive int"):
        pinnx.accumulate(pinnx.sum(), every=0)


def test_optax_chain_and_vmap_over_problems_keep_working():
    """optax.chain(pinnx.config(), optax.adam) is `config | adam`; a vmapped update over a
    batch of three problems equals three separate updates."""
    ours = pinnx.config() | optax.adam(1e-2)
    theirs = optax.chain(pinnx.config(), optax.adam(1e-2))
    _close(ours.update(GRADS, ours.init(PARAMS), PARAMS)[0],
           theirs.update(GRADS, theirs.init(PARAMS), PARAMS)[0])
    batch = jax.tree.map(lambda g: jnp.stack([g, 2 * g, -g]), GRADS)
    states = jax.vmap(lambda _: ours.init(PARAMS))(jnp.arange(3))
    out, _ = jax.vmap(lambda g, s: ours.update(g, s, PARAMS))(batch, states)
    for i in range(3):
        one = jax.tree.map(lambda g, i=i: g[i], batch)
        _close(jax.tree.map(lambda x, i=i: x[i], out),
               ours.update(one, ours.init(PARAMS), PARAMS)[0])
