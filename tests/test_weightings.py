"""Gradient-based loss weightings (lra, grad_norm_weights, ntk_weights) and MultiAdam: their
defining formulas against float64 references over several steps, the NTK traces against a
brute-force Jacobian, errors and composition."""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import LAYOUTS, examples, flatten, flush, params_like, task_grads
from weighting_runs import STEPS, run

import pinnx.combine as pc
import pinnx.residuals as res
from pinnx import operators
from pinnx.combine._grad_norm_weights import grad_norm_weights
from pinnx.combine._lra import lra
from pinnx.combine._multiadam import multiadam
from pinnx.combine._ntk import ntk_traces, ntk_weights
from pinnx.nn import MLP

LAYOUT = LAYOUTS[2:]  # three leaves, one of them scalar: few compilations, real pytrees


def _rtol(dtype):
    return 1e-4 if dtype == jnp.float32 else 1e-10


def _scales(k):
    # powers of two: exact in every dtype, so the reference sees the very rows pinnx sees
    return hnp.arrays(np.float64, (STEPS, k), elements=st.sampled_from([0.5, 1.0, 2.0, 4.0]))


def _ema_reference(estimates, alpha, every, weights=None):
    """lambda <- (1 - alpha) lambda + alpha lambda_hat at due steps where lambda_hat is
    defined (not NaN); returns the weights after every step and the skip count."""
    w = np.ones(estimates.shape[1]) if weights is None else weights.copy()
    out, skipped = [], 0
    for t, est in enumerate(estimates):
        if t % every == 0:
            ok = ~np.isnan(est)
            w = np.where(ok, (1 - alpha) * w + alpha * np.where(ok, est, 0), w)
            skipped += not ok.all()
        out.append(w.copy())
    return np.array(out), skipped


def _defined(est, dtype):
    """NaN where the estimate does not fit the rows' dtype (pinnx then skips it)."""
    return np.where(np.isfinite(est) & (np.abs(est) <= np.finfo(dtype).max), est, np.nan)


def _check_rows(rows, weights, flat_steps, dtype):
    want = weights[:, :, None] * flat_steps
    atol = 10 * np.finfo(dtype).tiny
    np.testing.assert_allclose(rows, want, rtol=_rtol(dtype), atol=atol)


# ---------------------------------------------------------------- LRA


def lra_reference(flat_steps, main, alpha, every, dtype, weighted=False):
    """Sequential LRA: lambda_hat_k = max|g_main| / mean|g_k| (weighted: / mean|lambda_k g_k|,
    the paper's Algorithm 1, each estimate using the weights of the step before)."""
    tiny = np.finfo(dtype).tiny
    w = np.ones(flat_steps.shape[1])
    out, skipped = [], 0
    for t, g in enumerate(flat_steps):
        if t % every == 0:
            peak = np.max(np.abs(g[main]))
            est = np.full(g.shape[0], np.nan)
            for k in range(g.shape[0]):
                m = np.mean(np.abs(g[k])) * (w[k] if weighted else 1.0)
                if k == main:
                    est[k] = 1.0
                elif m >= tiny and peak >= tiny:
                    est[k] = peak / m
            est = _defined(est, dtype)
            ok = ~np.isnan(est)
            w = np.where(ok, (1 - alpha) * w + alpha * np.where(ok, est, 0), w)
            skipped += not ok.all()
        out.append(w.copy())
    return np.array(out), skipped


@examples(15)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_lra_weights_follow_the_formula(case, data):
    """weighted=False: lambda_hat_k = max|g_main| / mean|g_k|, EMA every `every` steps, main
    weight 1."""
    grads, layout, dtype = case
    k = jax.tree.leaves(grads)[0].shape[0]
    # settings vary with K (not drawn) to keep the number of compilations small
    main, alpha, every = k // 2, (0.1, 0.5)[k % 2], (1, 3)[k % 2]
    scales = data.draw(_scales(k))
    kwargs = dict(alpha=alpha, every=every, main=main, weighted=False)
    rows, states = run(lra, kwargs, grads, params_like(layout, dtype), scales)
    # the rows as pinnx sees them: scaled in `dtype` at each step, then flushed (tiny / 2 is
    # subnormal: a row [tiny, 1, ...] at scale 0.5 reaches pinnx as [0, 0.5, ...])
    steps = np.stack([flush(s[:, None] * flush(flatten(grads), dtype), dtype)
                      for s in np.asarray(scales, np.float64)])
    want, skipped = lra_reference(steps, main, alpha, every, dtype)
    np.testing.assert_allclose(states.weights, want, rtol=_rtol(dtype))
    assert np.all(np.asarray(states.weights)[:, main] == 1)
    assert int(states.skipped[-1]) == skipped
    np.testing.assert_array_equal(states.count, np.arange(1, STEPS + 1))
    _check_rows(rows, np.asarray(states.weights, np.float64), steps, dtype)


@examples(15)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_lra_weighted_follows_the_papers_algorithm(case, data):
    """Default (weighted): the current weight sits in the denominator of the estimate."""
    grads, layout, dtype = case
    k = jax.tree.leaves(grads)[0].shape[0]
    main, alpha, every = k // 2, (0.1, 0.5)[k % 2], (1, 3)[k % 2]
    scales = data.draw(_scales(k))
    rows, states = run(lra, dict(alpha=alpha, every=every, main=main), grads,
                       params_like(layout, dtype), scales)
    # the rows as pinnx sees them: scaled in `dtype` at each step, then flushed
    steps = np.stack([flush(s[:, None] * flush(flatten(grads), dtype), dtype)
                      for s in np.asarray(scales, np.float64)])
    want, skipped = lra_reference(steps, main, alpha, every, dtype, weighted=True)
    np.testing.assert_allclose(states.weights, want, rtol=10 * _rtol(dtype))
    assert np.all(np.asarray(states.weights)[:, main] == 1)
    assert int(states.skipped[-1]) == skipped


@pytest.mark.parametrize("weighted", [True, False])
def test_lra_updates_only_every_n_steps_and_resolves_main_by_name(weighted):
    grads = {"w": jnp.array([[4.0, -2.0], [1.0, 1.0], [0.5, 0.0]])}  # rows: bc, ic, pde
    losses = {"pde": 1.0, "bc": 1.0, "ic": 1.0}
    opt = lra(alpha=0.5, every=2, main="pde", weighted=weighted)
    state = opt.init(None, tasks=3)
    seen = []
    for _ in range(4):
        out, state = opt.update(grads, state, losses=losses)
        seen.append(np.asarray(state.weights))
    # lambda_hat = 0.5 / (lambda mean|g|): bc 0.5 / 3 = 1/6, ic 0.5 / 1; pde stays 1
    first = [0.5 + 0.5 / 6, 0.75, 1.0]
    if weighted:
        second = [0.5 * first[0] + 0.5 / (6 * first[0]), 0.5 * 0.75 + 0.25 / 0.75, 1.0]
    else:
        second = [0.5 * first[0] + 0.5 / 6, 0.5 * 0.75 + 0.25, 1.0]
    np.testing.assert_allclose(seen, [first, first, second, second], rtol=1e-6)
    np.testing.assert_allclose(out["w"], np.asarray(second)[:, None] * grads["w"], rtol=1e-6)


def test_lra_skips_a_zero_main_gradient():
    grads = {"w": jnp.array([[0.0, 0.0], [1.0, 1.0]])}
    opt = lra(main=0, every=1)
    out, state = opt.update(grads, opt.init(None, tasks=2))
    np.testing.assert_array_equal(state.weights, [1.0, 1.0])
    assert int(state.skipped) == 1
    np.testing.assert_array_equal(out["w"], grads["w"])


# ---------------------------------------------------------------- gradient-norm weights


def grad_norm_reference(flat_steps, alpha, every, dtype):
    ests = []
    for g in flat_steps:
        n = np.linalg.norm(g, axis=1)
        est = np.where(n > 0, n.sum() / np.where(n > 0, n, 1), np.nan)
        ests.append(_defined(est, dtype))
    return _ema_reference(np.array(ests), alpha, every)


@examples(15)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_grad_norm_weights_follow_the_formula(case, data):
    """lambda_hat_k = sum_j ||g_j|| / ||g_k||, EMA every `every` steps."""
    grads, layout, dtype = case
    k = jax.tree.leaves(grads)[0].shape[0]
    alpha, every = (0.1, 1.0)[k % 2], (1, 2)[k % 2]
    scales = data.draw(_scales(k))
    kwargs = dict(alpha=alpha, every=every)
    rows, states = run(grad_norm_weights, kwargs, grads, params_like(layout, dtype), scales)
    # the rows as pinnx sees them: scaled in `dtype` at each step, then flushed
    steps = np.stack([flush(s[:, None] * flush(flatten(grads), dtype), dtype)
                      for s in np.asarray(scales, np.float64)])
    want, skipped = grad_norm_reference(steps, alpha, every, dtype)
    np.testing.assert_allclose(states.weights, want, rtol=_rtol(dtype))
    assert int(states.skipped[-1]) == skipped
    _check_rows(rows, np.asarray(states.weights, np.float64), steps, dtype)
    if alpha == 1.0:  # the weighted rows all have the norm sum_j ||g_j|| at update steps
        for t in range(0, STEPS, every):
            n = np.linalg.norm(steps[t], axis=1)
            if np.all(n > 0) and np.all(n.sum() / n < np.finfo(dtype).max / 2):
                np.testing.assert_allclose(np.linalg.norm(rows[t], axis=1), n.sum(),
                                           rtol=_rtol(dtype))


# ---------------------------------------------------------------- NTK weights and traces


@examples(15)
@given(st.integers(1, 8), st.data())
def test_ntk_weights_follow_the_formula(k, data):
    """lambda_hat_k = sum_j tr_j / tr_k from the traces passed in, EMA every `every` steps."""
    dtype = data.draw(st.sampled_from([jnp.float32, jnp.float64]))
    finite = st.floats(1e-30, 1e30) | st.just(0.0)
    traces = data.draw(hnp.arrays(np.float64, (STEPS, k), elements=finite))
    traces = np.asarray(traces.astype(dtype), np.float64)
    traces[traces < np.finfo(dtype).tiny] = 0.0
    alpha, every = ((0.1, 1), (0.5, 2))[k % 2]
    grads = {"w": jnp.ones((k, 3), dtype)}
    rows, states = run(ntk_weights, dict(alpha=alpha, every=every), grads,
                       params_like({"w": (3,)}, dtype), extras=traces, extra="ntk_traces")
    ests = [_defined(np.where(t > 0, t.sum() / np.where(t > 0, t, 1), np.nan), dtype)
            for t in traces]
    want, skipped = _ema_reference(np.array(ests), alpha, every)
    np.testing.assert_allclose(states.weights, want, rtol=_rtol(dtype))
    assert int(states.skipped[-1]) == skipped
    assert np.all(np.isfinite(rows))


def _ntk_problem(seed):
    model = MLP(2, "scalar", width=5, depth=2, key=jax.random.key(seed), dtype=jnp.float64)

    def heat(u, x):
        u0, ux, uxx = operators.derivatives(u, x, 0, 2)
        return operators.time_derivative(u, x) - 0.1 * uxx + u0 * ux

    losses = res.losses(pde=res.pde(heat), bc=res.dirichlet(0.5), data=res.data(),
                        vec=res.Term(lambda m, x: jnp.stack([m(x), m(x) ** 2, x[0]])))
    rng = np.random.default_rng(seed)
    pts = lambda n: jnp.asarray(rng.uniform(-1, 1, (n, 2)))  # noqa: E731
    batch = {"pde": pts(7), "bc": pts(3), "data": (pts(4), jnp.asarray(rng.normal(size=4))),
             "vec": pts(2)}
    return model, losses, batch


def test_ntk_traces_equal_the_squared_jacobian_norm():
    """tr(K_kk) = ||J_k||_F^2 with J_k the Jacobian of task k's stacked residuals."""
    model, losses, batch = _ntk_problem(0)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    traces = eqx.filter_jit(ntk_traces)(losses, model, batch)
    assert tuple(traces) == ("bc", "data", "pde", "vec")

    @jax.jit
    def brute_force(params, batch):  # the full Jacobian of each task's residual vector
        out = {}
        for name, term in losses.terms.items():
            jac = jax.jacrev(lambda p, term=term, name=name: jnp.ravel(
                term(eqx.combine(p, static), batch[name])))(params)
            out[name] = sum(jnp.sum(j**2) for j in jax.tree.leaves(jac))
        return out

    for name, brute in brute_force(params, batch).items():
        np.testing.assert_allclose(traces[name], brute, rtol=1e-10)
    # mean=True and batch_size are checked against torch in test_weightings_reference.py


def test_ntk_weights_call_the_traces_only_at_update_steps():
    calls = []

    def traces():
        calls.append(1)  # traced once per trace of the update, not per step
        return {"a": jnp.float32(1.0), "b": jnp.float32(3.0)}

    opt = ntk_weights(alpha=1.0, every=3)
    update = jax.jit(lambda g, s: opt.update(g, s, ntk_traces=traces))
    state = opt.init(None, tasks=2)
    weights = []
    for _ in range(4):
        _, state = update({"w": jnp.ones((2, 2), jnp.float32)}, state)
        weights.append(np.asarray(state.weights))
    np.testing.assert_allclose(weights, [[4.0, 4 / 3]] * 4)
    assert len(calls) == 1


@pytest.mark.standard_promotion
def test_fit_passes_ntk_traces():
    """pinnx.fit hands ntk_weights the traces of the current model and batch."""
    from pinnx.train import fit

    model = MLP(1, "scalar", width=4, depth=1, key=jax.random.key(2), dtype=jnp.float32)
    losses = res.losses(bc=res.dirichlet(0.5), data=res.data())
    rng = np.random.default_rng(3)
    batch = {"bc": jnp.asarray(rng.uniform(-1, 1, (3, 1)), jnp.float32),
             "data": (jnp.asarray(rng.uniform(-1, 1, (5, 1)), jnp.float32),
                      jnp.asarray(rng.normal(size=5), jnp.float32))}
    opt = ntk_weights(alpha=0.5, every=1) | pc.sum() | optax.sgd(0.0)
    _, state, _ = fit(losses, model, opt, batch, steps=2, progress=False)
    tr = eqx.filter_jit(ntk_traces)(losses, model, batch)
    tr = np.array(list(tr.values()), np.float64)
    first = 0.5 + 0.5 * tr.sum() / tr
    np.testing.assert_allclose(state[0].weights, 0.5 * first + 0.5 * tr.sum() / tr, rtol=1e-4)


# ---------------------------------------------------------------- MultiAdam


def adam_reference(rows_steps, b1, b2, eps):
    """Adam's bias-corrected direction per row, then the mean over rows."""
    m = np.zeros_like(rows_steps[0])
    v = np.zeros_like(rows_steps[0])
    out = []
    for t, g in enumerate(rows_steps, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        out.append(u.mean(axis=0))
    return np.array(out)


@pytest.mark.standard_promotion
@examples(12)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_multiadam_is_the_mean_of_per_task_adam(case, data):
    grads, layout, dtype = case
    k = jax.tree.leaves(grads)[0].shape[0]
    flat = flush(flatten(grads), dtype)
    # Adam squares the gradient: beyond sqrt(max) it overflows in any implementation
    assume(np.max(np.abs(flat), initial=0) < np.sqrt(np.finfo(dtype).max) / 8)
    b1, b2, eps = ((0.99, 0.99, 1e-8), (0.9, 0.999, 1e-6))[k % 2]
    scales = data.draw(_scales(k))
    rows, _ = run(multiadam, dict(b1=b1, b2=b2, eps=eps), grads, params_like(layout, dtype),
                  scales)
    steps = scales[:, :, None] * flat[None]
    want = adam_reference(steps, b1, b2, eps)
    atol = 1e-5 if dtype == jnp.float32 else 1e-10
    np.testing.assert_allclose(rows, want, rtol=_rtol(dtype), atol=atol)


# ---------------------------------------------------------------- errors and composition


def test_weighting_errors():
    grads = {"w": jnp.ones((2, 3))}
    with pytest.raises(ValueError, match="number of tasks"):
        lra(main=0).init(None)
    with pytest.raises(ValueError, match="initialised for 3 tasks but got 2"):
        grad_norm_weights().update(grads, grad_norm_weights().init(None, tasks=3))
    with pytest.raises(ValueError, match="needs the loss dictionary"):
        lra(main="pde").update(grads, lra().init(None, tasks=2))
    with pytest.raises(ValueError, match="needs the per-task NTK traces"):
        ntk_weights().update(grads, ntk_weights().init(None, tasks=2))
    with pytest.raises(ValueError, match="ntk_traces= has 3 tasks"):
        ntk_weights().update(grads, ntk_weights().init(None, tasks=2),
                             ntk_traces={"a": 1.0, "b": 1.0, "c": 1.0})
    with pytest.raises(ValueError, match="alpha"):
        lra(alpha=0.0)
    with pytest.raises(ValueError, match="every"):
        grad_norm_weights(every=0)
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's runtime check
        ntk_traces(lambda m, b: {}, None, {})


def test_weightings_compose_inside_optax_chain_with_tasks_given():
    params = {"w": jnp.zeros(3)}
    opt = optax.chain(lra(main=1, every=1, tasks=2), pc.sum())
    state = opt.init(params)
    grads = {"w": jnp.array([[1.0, 0.0, 1.0], [2.0, 2.0, 2.0]])}
    out, state = opt.update(grads, state, params)
    w = 0.9 + 0.1 * 2.0 / (2 / 3)
    np.testing.assert_allclose(out["w"], w * grads["w"][0] + grads["w"][1], rtol=1e-6)
    # the count given to the factory also serves a pinnx chain initialised without it
    ours = lra(main=1, every=1, tasks=2) | pc.sum()
    out2, _ = ours.update(grads, ours.init(params), params)
    np.testing.assert_allclose(out2["w"], out["w"], rtol=1e-6)
    assert "lra" in repr(lra(main=1))
