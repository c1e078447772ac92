"""pinnx.fit: equivalence with hand-written loops, history, resampling, NaN guard, errors;
its step (pinnx.make_step) driven by hand; the extra-arguments hook."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pinnx
import pinnx.combine as pc
from pinnx import residuals as res
from pinnx.nn import MLP
from pinnx.tasks import cosines, default_extra_args, ntk_traces, task_grads, task_norms
from pinnx.train import StepCarry, TrainStep, fit, make_step

pytestmark = pytest.mark.standard_promotion


def losses(model, batch):
    u = jax.vmap(model)(batch["x"])
    return {"fit": jnp.mean((u - jnp.sin(3 * batch["x"][:, 0])) ** 2),
            "zero": jnp.mean(jax.vmap(model)(batch["b"]) ** 2)}


def sample(key):
    k1, k2 = jax.random.split(key)
    return {"x": jax.random.uniform(k1, (32, 1), minval=-1, maxval=1),
            "b": jax.random.uniform(k2, (4, 1), minval=-1, maxval=1)}


def model0():
    return MLP(1, "scalar", width=8, depth=2, key=jax.random.key(0))


BATCH = sample(jax.random.key(5))


def _leaves_close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw),
                 eqx.filter(a, eqx.is_inexact_array), eqx.filter(b, eqx.is_inexact_array))


def test_plain_optax_matches_hand_written_loop():
    tx = optax.adam(1e-2)
    model, _, hist = fit(losses, model0(), tx, BATCH, steps=30, log_every=10, progress=False)
    ref = model0()
    params, static = eqx.partition(ref, eqx.is_inexact_array)
    state = tx.init(params)
    for _ in range(30):
        g = jax.grad(lambda p: sum(losses(eqx.combine(p, static), BATCH).values()))(params)
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
    _leaves_close(model, eqx.combine(params, static), rtol=1e-5, atol=1e-7)
    assert hist.steps == 30 and hist.tasks == ("fit", "zero")


def test_sum_chain_equals_plain_optimizer():
    m1, _, h1 = fit(losses, model0(), optax.adam(1e-2), BATCH, steps=25, progress=False)
    m2, _, h2 = fit(losses, model0(), pc.sum() | optax.adam(1e-2), BATCH, steps=25,
                    progress=False)
    _leaves_close(m1, m2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(h1.total_loss, h2.total_loss, rtol=1e-5)


def test_history_records_losses_norms_and_cosines():
    model, _, hist = fit(losses, model0(), pc.pcgrad() | optax.adam(1e-2), BATCH, steps=40,
                         log_every=10, progress=False)
    assert hist.losses["fit"].shape == (40,)
    np.testing.assert_array_equal(hist.log_steps, [0, 10, 20, 30, 40])
    vals, grads = task_grads(losses, model, BATCH)
    np.testing.assert_allclose([hist.grad_norms[t][-1] for t in hist.tasks], task_norms(grads),
                               rtol=1e-4)
    np.testing.assert_allclose(hist.cosines[("fit", "zero")][-1], cosines(grads)[0, 1],
                               rtol=1e-4, atol=1e-6)
    # the first recorded loss is the initial model's
    np.testing.assert_allclose(hist.losses["fit"][0], losses(model0(), BATCH)["fit"], rtol=1e-5)


def test_resampling_every_n_steps_inside_the_loop():
    def batch_mean(model, batch):
        return {"a": jnp.mean(batch["x"]) + 0 * jnp.sum(model(jnp.zeros(1)))}

    _, _, hist = fit(batch_mean, model0(), optax.sgd(0.0), sample, steps=12,
                     resample_every=4, log_every=6, key=jax.random.key(3), progress=False)
    seen = hist.losses["a"]
    for start in (0, 4, 8):
        assert np.all(seen[start:start + 4] == seen[start])
    assert len(set(seen[[0, 4, 8]])) == 3
    _, _, again = fit(batch_mean, model0(), optax.sgd(0.0), sample, steps=12,
                      resample_every=4, log_every=6, key=jax.random.key(3), progress=False)
    np.testing.assert_array_equal(again.losses["a"], seen)


def test_evaluation_callback_and_no_recompilation_per_chunk():
    traced = []

    def counted(model, batch):
        traced.append(1)
        return losses(model, batch)

    calls = []
    fit(counted, model0(), optax.adam(1e-3), BATCH, steps=20, log_every=5,
        eval_fn=lambda m: calls.append(1) or {"n": 1.0}, eval_every=10, progress=False)
    short = len(traced)
    traced.clear()
    _, _, hist = fit(counted, model0(), optax.adam(1e-3), BATCH, steps=60, log_every=5,
                     eval_fn=lambda m: {"n": 2.0}, eval_every=10, progress=False)
    assert len(traced) == short  # 12 chunks, same number of traces as 4 chunks
    assert [s for s, _ in hist.evals] == [0, 10, 20, 30, 40, 50, 60]


def test_uneven_last_chunk_and_zero_steps():
    _, _, hist = fit(losses, model0(), optax.adam(1e-3), BATCH, steps=23, log_every=10,
                     progress=False)
    assert hist.steps == 23 and list(hist.log_steps) == [0, 10, 20, 23]
    model, _, hist = fit(losses, model0(), optax.adam(1e-3), BATCH, steps=0, progress=False)
    assert hist.steps == 0
    _leaves_close(model, model0())


def test_resume_from_optimizer_state():
    tx = optax.adam(1e-2)
    m_a, s_a, _ = fit(losses, model0(), tx, BATCH, steps=10, progress=False)
    m_a, _, _ = fit(losses, m_a, tx, BATCH, steps=10, opt_state=s_a, progress=False)
    m_b, _, _ = fit(losses, model0(), tx, BATCH, steps=20, progress=False)
    _leaves_close(m_a, m_b, rtol=1e-5, atol=1e-7)


def _blows_up(model, batch):
    # gradient descent pushes the bias w down ~0.1 a step; the loss is NaN once w < -0.5
    w = model.layers[-1].bias[0]
    return {"ok": jnp.mean(batch["x"] ** 2) + 0 * w, "boom": w + 1e-3 * jnp.log(w + 0.5)}


@pytest.mark.parametrize("per_task", [False, True])
def test_nonfinite_loss_stops_and_returns_last_finite_state(per_task):
    tx = pc.sum() | optax.sgd(0.1) if per_task else optax.sgd(0.1)
    m = eqx.tree_at(lambda mm: mm.layers[-1].bias, model0(), jnp.array([0.05]))
    with pytest.warns(RuntimeWarning, match="non-finite loss of task 'boom'"):
        model, state, hist = fit(_blows_up, m, tx, BATCH, steps=200, log_every=50,
                                 progress=False)
    assert hist.nonfinite is not None and hist.nonfinite.task == "boom"
    stop = hist.nonfinite.step
    assert 0 < stop < 20 and hist.steps == stop
    w = float(model.layers[-1].bias[0])
    assert w > -0.5  # the returned state's losses are finite
    assert np.all(np.isfinite(hist.losses["boom"]))
    np.testing.assert_allclose(hist.losses["boom"][-1], _blows_up(model, BATCH)["boom"],
                               rtol=1e-6)
    # and it is the state after stop - 1 updates: redo them by hand
    ref, _, _ = fit(_blows_up, m, tx, BATCH, steps=stop - 1, progress=False)
    _leaves_close(model, ref, rtol=1e-6)


def _bad_gradient(model, batch):
    w = model.layers[-1].bias[0]
    return {"ok": jnp.mean(batch["x"] ** 2) + 0 * w, "sqrt": jnp.sqrt(jnp.abs(w)) - w}


@pytest.mark.parametrize("per_task", [False, True])
def test_nonfinite_gradient_names_the_task(per_task):
    # d sqrt|w| / dw is infinite at w = 0: the loss is finite, its gradient is not
    tx = pc.sum() | optax.sgd(0.1) if per_task else optax.sgd(0.1)
    m = eqx.tree_at(lambda mm: mm.layers[-1].bias, model0(), jnp.array([0.0]))
    with pytest.warns(RuntimeWarning, match="non-finite gradient of task 'sqrt' at step 0"):
        model, _, hist = fit(_bad_gradient, m, tx, BATCH, steps=10, progress=False)
    assert hist.nonfinite.step == 0 and hist.steps == 0
    _leaves_close(model, m)


def test_nonfinite_batch_and_other_bad_input():
    bad = dict(BATCH, x=BATCH["x"].at[3, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"\['x'\] has 1 non-finite"):
        fit(losses, model0(), optax.adam(1e-3), bad, steps=1, progress=False)
    with pytest.raises(ValueError, match="has no aggregator"):
        fit(losses, model0(), pc.cosine_gate(main=0), BATCH, steps=1, progress=False)
    with pytest.raises(ValueError, match="no trainable leaves"):
        fit(lambda m, b: {"a": jnp.sum(b["x"])}, ("x",), optax.adam(1e-3), BATCH, steps=1,
            progress=False)
    with pytest.raises(ValueError, match="must be a scalar"):
        fit(lambda m, b: {"a": jax.vmap(m)(b["x"])}, model0(), optax.adam(1e-3), BATCH,
            steps=1, progress=False)
    with pytest.raises(ValueError, match="eval_fn must return a dict"):
        fit(losses, model0(), optax.adam(1e-3), BATCH, steps=1, eval_fn=lambda m: 1.0,
            progress=False)
    with pytest.raises(ValueError, match="callable data"):
        fit(losses, model0(), optax.adam(1e-3), BATCH, steps=1, resample_every=5,
            progress=False)


def test_lbfgs_runs_on_the_summed_loss():
    model, _, hist = fit(losses, model0(), optax.lbfgs(), BATCH, steps=30, progress=False)
    assert hist.total_loss[-1] < 0.5 * hist.total_loss[0]
    assert hist.nonfinite is None


# ------------------------------------------------------------ make_step, extra_args


def _equal(a, b):
    def data(x):
        return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    jax.tree.map(lambda x, y: np.testing.assert_array_equal(data(x), data(y)), a, b)


@pytest.mark.parametrize("per_task", [False, True])
def test_make_step_driven_by_hand_reproduces_fit(per_task):
    opt = pc.pcgrad() | optax.adam(1e-2) if per_task else optax.adam(1e-2)
    kw = dict(key=jax.random.key(4), resample_every=3,
              record_every=2 if per_task else None)
    model, state, hist = fit(losses, model0(), opt, sample, steps=7, log_every=7,
                             progress=False, **kw)
    step, carry = make_step(losses, model0(), opt, sample, **kw)
    assert isinstance(step, TrainStep) and isinstance(carry, StepCarry)
    assert step.tasks == hist.tasks and step.per_task == per_task
    run = jax.jit(step)
    outs = []
    for i in range(7):
        carry, out = run(carry, i)
        outs.append(out)
    lvec = np.array([o[0] if per_task else o for o in outs])
    np.testing.assert_array_equal(lvec, np.stack([hist.losses[t] for t in hist.tasks], 1))
    if per_task:  # recorded at even steps, NaN at odd ones
        norms = np.array([o[1] for o in outs])
        np.testing.assert_array_equal(norms[::2, 0], hist.step_grad_norms["fit"])
        assert np.all(np.isnan(norms[1::2]))
    _equal(eqx.filter(step.model(carry), eqx.is_array), eqx.filter(model, eqx.is_array))
    _equal(carry.opt_state, state)
    assert np.all(np.asarray(carry.stop) == -1)


def _probe():
    """Keeps its last `probe=` extra argument as its state; updates pass through."""

    def init(params):
        del params
        return jnp.zeros((), jnp.float32)

    def update(updates, state, params=None, *, probe, **extra_args):
        del params, extra_args
        return updates, jnp.asarray(probe, state.dtype)

    return optax.GradientTransformationExtraArgs(init, update)


@pytest.mark.parametrize("per_task", [False, True])
def test_extra_args_reach_the_update(per_task):
    # the hook sees the step's model (before its update) and batch: its value at the last
    # step is that step's recorded loss
    opt = (pc.sum() | _probe() | optax.sgd(0.1) if per_task
           else optax.chain(_probe(), optax.sgd(0.1)))
    hook = lambda model, batch: {"probe": losses(model, batch)["fit"]}  # noqa: E731
    _, state, hist = fit(losses, model0(), opt, sample, steps=5, resample_every=2,
                         extra_args=hook, progress=False)
    np.testing.assert_allclose(state[1 if per_task else 0], hist.losses["fit"][-1], rtol=1e-6)


def test_extra_args_errors():
    opt = pc.sum() | optax.sgd(0.1)
    with pytest.raises(ValueError, match=r"extra_args returned \['losses'\]"):
        fit(losses, model0(), opt, BATCH, steps=1, extra_args=lambda m, b: {"losses": 1},
            progress=False)
    with pytest.raises(ValueError, match=r"extra_args returned \['value'\]"):
        fit(losses, model0(), optax.sgd(0.1), BATCH, steps=1,
            extra_args=lambda m, b: {"value": 1}, progress=False)
    with pytest.raises(ValueError, match="must return a dict of keyword arguments, got list"):
        fit(losses, model0(), opt, BATCH, steps=1, extra_args=lambda m, b: [], progress=False)


def test_default_extra_args_feed_ntk_weights():
    model = MLP(1, "scalar", width=4, depth=1, key=jax.random.key(2), dtype=jnp.float32)
    ntk_losses = res.losses(bc=res.dirichlet(0.5), data=res.data())
    rng = np.random.default_rng(3)
    batch = {"bc": jnp.asarray(rng.uniform(-1, 1, (3, 1)), jnp.float32),
             "data": (jnp.asarray(rng.uniform(-1, 1, (5, 1)), jnp.float32),
                      jnp.asarray(rng.normal(size=5), jnp.float32))}
    assert default_extra_args(losses)(model0(), BATCH) == {}
    default = default_extra_args(ntk_losses)
    lazy = default(model, batch)["ntk_traces"]
    _equal(lazy(), ntk_traces(ntk_losses, model, batch))
    opt = pinnx.ntk_weights(alpha=0.5, every=1) | pc.sum() | optax.sgd(1e-2)
    _, implicit, _ = fit(ntk_losses, model, opt, batch, steps=2, progress=False)
    _, explicit, _ = fit(ntk_losses, model, opt, batch, steps=2, progress=False,
                         extra_args=lambda m, b: {**default(m, b), "unused": 1.0})
    np.testing.assert_array_equal(implicit[0].weights, explicit[0].weights)
    assert not np.allclose(implicit[0].weights, 1.0)
    with pytest.raises(ValueError, match="needs the per-task NTK traces"):
        fit(ntk_losses, model, opt, batch, steps=1, extra_args=lambda m, b: {},
            progress=False)


def test_layers_and_public_names():
    assert pinnx.ModelSampler is pinnx.sampling.ModelSampler
    assert pinnx.ntk_traces is ntk_traces is pinnx.combine.ntk_traces
    assert pinnx.make_step is make_step
    assert pinnx.TrainStep is TrainStep and pinnx.StepCarry is StepCarry
