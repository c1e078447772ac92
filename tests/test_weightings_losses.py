"""Loss-based weightings (gradnorm, relobralo, softadapt, dwa, uncertainty): their formulas
against float64 references over several steps, their limits and fixed points, and bad
losses (zero, negative, NaN, infinite), which must leave the weights unchanged and be
counted in the state."""

import decimal
import math
from decimal import Decimal

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

from pinnx.combine._dwa import dwa
from pinnx.combine._grad_norm_weights import grad_norm_weights
from pinnx.combine._gradnorm import gradnorm, gradnorm_objective
from pinnx.combine._loss_weighting import scale_rows, scaled_softmax
from pinnx.combine._lra import lra
from pinnx.combine._relobralo import relobralo
from pinnx.combine._softadapt import softadapt
from pinnx.combine._uncertainty import uncertainty

LAYOUT = LAYOUTS[2:]


def _rtol(dtype):
    return 1e-4 if dtype == jnp.float32 else 1e-10


@st.composite
def loss_paths(draw, k, factor=2.0):
    """(STEPS, K) positive losses: log-uniform starts, each step within [1/f, f] of the last
    (ratios and slopes stay moderate, so float32 softmaxes are well resolved)."""
    start = draw(hnp.arrays(np.float64, (k,), elements=st.floats(-2, 1)))
    steps = draw(hnp.arrays(np.float64, (STEPS - 1, k),
                            elements=st.floats(-math.log10(factor), math.log10(factor))))
    logs = np.concatenate([start[None], start[None] + np.cumsum(steps, axis=0)])
    return 10.0**logs


def _case(data, case):
    grads, layout, dtype = case
    k = jax.tree.leaves(grads)[0].shape[0]
    losses = data.draw(loss_paths(k))
    losses = np.asarray(losses.astype(dtype), np.float64)  # what the transform sees
    return grads, params_like(layout, dtype), dtype, k, losses


def _check_rows(rows, weights, grads, dtype):
    flat = flush(flatten(grads), dtype)
    np.testing.assert_allclose(rows, weights[:, :, None] * flat[None], rtol=_rtol(dtype),
                               atol=10 * np.finfo(dtype).tiny)


def _assert_close_or_flushed(got, want, dtype, rtol):
    """got == want to rtol, except that a value that may lie below the dtype's smallest
    normal number (|want| < tiny (1 + rtol)) may also be exactly 0: the hardware flushes
    results below it (XLA on CPU), e.g. a softmax weight of 3e-39 in float32."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    flushed = (np.abs(want) < np.finfo(dtype).tiny * (1 + rtol)) & (got == 0)
    np.testing.assert_allclose(got, np.where(flushed, 0.0, want), rtol=rtol, atol=0)


def _softmax_k(x):
    e = np.exp(x - np.max(x))
    return len(x) * e / e.sum()


# ---------------------------------------------------------------- GradNorm


def gradnorm_reference(norms, losses, alpha, lr, tie):
    """The paper's update with plain gradient descent, targets held, clip at 0, sum K (a step
    that clips every weight to 0 is skipped). Also says whether some G_k came within `tie`
    (relative) of its target, where the sign, hence the step, is ill-conditioned."""
    k = len(norms)
    w, initial, used, after, skipped, ties = np.ones(k), losses[0], [], [], 0, False
    for L in losses:
        used.append(w.copy())
        g = w * norms
        r = (L / initial) / np.mean(L / initial)
        target = np.mean(g) * r**alpha
        ties |= k > 1 and bool(np.any((norms > 0) & (np.abs(g - target) <= tie * g.max())))
        stepped = np.maximum(w - lr * np.sign(g - target) * norms, 0)
        if stepped.sum() > 0:
            w = k * stepped / stepped.sum()
        else:
            skipped += 1
        after.append(w.copy())
    return np.array(used), np.array(after), skipped, ties


_OBJECTIVE = jax.jit(gradnorm_objective)


@pytest.mark.standard_promotion  # optax.sgd inside
@examples(10)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_gradnorm_follows_the_paper(case, data):
    grads, params, dtype, k, losses = _case(data, case)
    alpha, lr = ((1.5, 0.01), (0.5, 0.1))[k % 2]
    flat = flush(flatten(grads), dtype)
    norms = np.linalg.norm(flat, axis=1)
    rows, states = run(gradnorm, dict(alpha=alpha, learning_rate=lr), grads, params,
                       losses=losses)
    used, after, skipped, ties = gradnorm_reference(norms, losses, alpha, lr, 100 * _rtol(dtype))
    assume(not ties)  # e.g. parallel rows with equal losses: G_k = target in exact arithmetic
    np.testing.assert_allclose(states.weights, after, rtol=_rtol(dtype), atol=_rtol(dtype))
    np.testing.assert_allclose(np.sum(states.weights, axis=1), k, rtol=_rtol(dtype))
    assert np.all(np.asarray(states.weights) >= 0)
    np.testing.assert_allclose(states.initial_losses[-1], losses[0], rtol=_rtol(dtype))
    assert int(states.skipped[-1]) == skipped
    # rows: exactly the weights the state held before each step. Not the reference's: a
    # step w_k - lr ||g_k|| that is 0 in exact arithmetic (1.697 - 0.1 * 16.97) leaves
    # rounding noise, 2e-16 in float64 and 0 in float32, within the weights' atol
    held = np.concatenate([np.ones((1, k)), np.asarray(states.weights, np.float64)[:-1]])
    np.testing.assert_allclose(held, used, rtol=_rtol(dtype), atol=_rtol(dtype))
    _check_rows(rows, held, grads, dtype)


@pytest.mark.standard_promotion
def test_gradnorm_one_task_keeps_its_weight():
    """K = 1: r_1 = 1 and G_1 is its own target, so the weight stays 1 and no step is
    skipped. Computed, r_1 = ratio / mean(ratio) came out 1 - 1 ulp under jit, the sign
    step w - lr ||g|| (lr ||g|| = 1.13 here) clipped the only weight to 0 and the step
    was skipped (found by the thorough profile)."""
    grads = {"w": jnp.full((1, 8), 4.0, jnp.float32)}
    losses = np.array([[10.0], [11.54781985], [13.33521432], [15.39926526]])
    _, states = run(gradnorm, dict(alpha=0.5, learning_rate=0.1), grads,
                    {"w": jnp.zeros(8, jnp.float32)}, losses=losses)
    np.testing.assert_array_equal(states.weights, np.ones((STEPS, 1)))
    np.testing.assert_array_equal(states.skipped, np.zeros(STEPS))
    value, grad = _OBJECTIVE(*(jnp.asarray([a], jnp.float32) for a in (1.0, 11.3, 1.3, 1.0)),
                             jnp.float32(1.5))
    assert float(value) == 0 and float(grad[0]) == 0


@pytest.mark.standard_promotion
def test_gradnorm_compares_below_the_smallest_normal_number():
    """Norms 1e20, tiny, 0 in float32, equal losses: after the first step w = (0, 1.5, 1.5),
    so G = (0, 1.5 tiny, 0) and the target mean(G) = tiny / 2 is subnormal. Computed as is,
    it was flushed to 0, G_0 = 0 looked on target and w stayed put; in units of the largest
    G the paper's step (w_0 back to 3) is taken (found by the thorough profile)."""
    tiny = float(np.finfo(np.float32).tiny)
    flat = np.zeros((3, 8))
    flat[0, 0], flat[1, 0] = 1e20, tiny
    grads = {"w": jnp.asarray(flat, jnp.float32)}
    losses = np.ones((STEPS, 3))
    _, states = run(gradnorm, dict(alpha=0.5, learning_rate=0.1), grads,
                    {"w": jnp.zeros(8, jnp.float32)}, losses=losses)
    norms = np.linalg.norm(flush(flat, jnp.float32), axis=1)
    _, after, skipped, ties = gradnorm_reference(norms, losses, 0.5, 0.1, 1e-2)
    assert not ties and after[1, 0] == 3
    np.testing.assert_allclose(states.weights, after, rtol=1e-6)
    assert int(states.skipped[-1]) == skipped


def _held(v, norms, losses, initial, alpha):
    """L_grad written afresh, its target cut from the graph with stop_gradient."""
    g = v * norms
    r = (losses / initial) / jnp.mean(losses / initial)
    return jnp.sum(jnp.abs(g - jax.lax.stop_gradient(jnp.mean(g) * r**alpha)))


_HELD = jax.jit(jax.value_and_grad(_held))


@examples(40)
@given(st.integers(1, 8), st.data())
def test_gradnorm_step_descends_its_objective(k, data):
    """The gradient is that of L_grad with the targets held constant (autodiff check, away
    from kinks, where any subgradient will do), and a step small enough not to cross a
    kink decreases that objective by the predicted amount."""
    pos = st.floats(1e-3, 1e3)
    w = data.draw(hnp.arrays(np.float64, (k,), elements=st.floats(0.05, 3)))
    norms = data.draw(hnp.arrays(np.float64, (k,), elements=pos | st.just(0.0)))
    losses = data.draw(hnp.arrays(np.float64, (k,), elements=pos))
    initial = data.draw(hnp.arrays(np.float64, (k,), elements=pos))
    alpha = jnp.float64(data.draw(st.sampled_from([0.0, 0.5, 1.5, 3.0])))
    args = [jnp.asarray(a) for a in (w, norms, losses, initial)]
    value, grad = _OBJECTIVE(*args, alpha)
    want_value, want_grad = _HELD(*args, alpha)
    g = w * norms
    r = (losses / initial) / np.mean(losses / initial)
    target = np.mean(g) * r ** float(alpha)
    # each term |G_k - target_k| is exact to eps of its parts (K = 1: ours is exactly 0,
    # the held form's r = 1 rounds to 1 - ulp under jit about one time in seven)
    np.testing.assert_allclose(value, want_value, rtol=1e-12,
                               atol=1e-12 * np.sum(g + target))

    def fixed(v):
        return np.sum(np.abs(v * norms - target))

    gap = np.abs(g - target)
    live = (norms > 0) & (gap > 1e-9 * np.max(g, initial=0))
    np.testing.assert_allclose(np.asarray(grad)[live], np.asarray(want_grad)[live], rtol=1e-12)
    assert np.all(np.asarray(grad)[norms == 0] == 0)
    if live.any():  # no kink crossed: the objective drops by exactly eta sum_live n_k^2
        eta = np.min(gap[live] / norms[live] ** 2)
        drop = fixed(w) - fixed(w - eta * np.asarray(grad))
        np.testing.assert_allclose(drop, eta * np.sum(norms[live] ** 2), rtol=1e-6,
                                   atol=1e-12 * fixed(w))
        assert drop > 0


@pytest.mark.standard_promotion
def test_gradnorm_balances_two_tasks_towards_the_training_rates():
    """alpha = 0, constant rows: the weighted norms w_k ||g_k|| are driven to equality
    (w = (0.5, 1.5) for norms 3 and 1), up to the oscillation of the sign steps."""
    grads = {"w": jnp.array([[3.0, 0.0], [0.0, 1.0]])}
    opt = gradnorm(alpha=0.0, learning_rate=0.002)
    losses = {"a": jnp.float32(1.0), "b": jnp.float32(1.0)}

    def step(state, _):
        state = opt.update(grads, state, losses=losses)[1]
        return state, state.weights

    _, path = jax.lax.scan(step, opt.init(None, tasks=2), None, length=800)
    np.testing.assert_allclose(np.mean(path[-200:], axis=0), [0.5, 1.5], rtol=0.02)
    np.testing.assert_allclose(np.sum(path, axis=1), 2, rtol=1e-6)


# ---------------------------------------------------------------- ReLoBRaLo


def relobralo_limits(losses, alpha, tau, rho):
    """The two limiting forms, written directly: rho = 1 (no lookback) is an EMA of the
    balance against the last step; rho = 0 mixes the balances against the start and the last
    step. The first step keeps 1, the second uses the balance against the first."""
    out = [np.ones(losses.shape[1])]
    for t in range(1, len(losses)):
        last = _softmax_k(losses[t] / (tau * losses[t - 1]))
        if t == 1:
            lam = last
        elif rho == 1:
            lam = alpha * out[-1] + (1 - alpha) * last
        else:
            lam = alpha * _softmax_k(losses[t] / (tau * losses[0])) + (1 - alpha) * last
        out.append(lam)
    return np.array(out)


def relobralo_three(alpha, tau):
    """rho = 1, rho = 0 and rho = 0.5 side by side in one chain (their weights do not depend
    on the rows, so each part's state is that of the weighting alone): one compilation."""
    return (relobralo(alpha=alpha, tau=tau, rho=1.0) | relobralo(alpha=alpha, tau=tau, rho=0.0)
            | relobralo(alpha=alpha, tau=tau, rho=0.5, seed=3))


@examples(10)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_relobralo_limits_and_lookback(case, data):
    grads, params, dtype, k, losses = _case(data, case)
    alpha, tau = ((0.9, 1.0), (0.5, 0.1))[k % 2]
    rows, (keep, back, mixed) = run(relobralo_three, dict(alpha=alpha, tau=tau), grads,
                                    params, losses=losses)
    want = [relobralo_limits(losses, alpha, tau, rho) for rho in (1.0, 0.0)]
    np.testing.assert_allclose(keep.weights, want[0], rtol=_rtol(dtype))
    np.testing.assert_allclose(back.weights, want[1], rtol=_rtol(dtype))
    # random lookback: every step is one of the two branches, given the previous weights
    w = np.asarray(mixed.weights, np.float64)
    np.testing.assert_allclose(w.sum(axis=1), k, rtol=_rtol(dtype))
    for t in range(2, STEPS):
        last = _softmax_k(losses[t] / (tau * losses[t - 1]))
        kept = alpha * w[t - 1] + (1 - alpha) * last
        looked = alpha * _softmax_k(losses[t] / (tau * losses[0])) + (1 - alpha) * last
        err = min(np.max(np.abs(w[t] - kept)), np.max(np.abs(w[t] - looked)))
        assert err <= _rtol(dtype) * k, (t, w[t], kept, looked)
    _check_rows(rows, want[0] * want[1] * w, grads, dtype)


def test_relobralo_lookback_frequency():
    """rho is the probability of keeping the history: about 1 - rho of the steps look back."""
    losses = {"a": 1.0, "b": 1.0}
    opt = relobralo(alpha=0.5, tau=1.0, rho=0.75, seed=0)
    update = jax.jit(opt.update)
    state = opt.init(None, tasks=2)
    grads = {"w": jnp.ones((2, 1))}
    lookbacks = 0
    for t in range(400):
        # L(t) / L(0) differs between tasks, L(t) / L(t-1) does not: a lookback is visible
        vals = {"a": losses["a"] * 0.99**t, "b": losses["b"] * 0.98**t}
        before = np.asarray(state.weights)
        _, state = update(grads, state, losses=vals)
        if t >= 2:
            last = _softmax_k(np.array([0.99, 0.98]) / 1.0)
            keep = 0.5 * before + 0.5 * last
            lookbacks += not np.allclose(state.weights, keep, rtol=1e-5)
    assert 0.15 < lookbacks / 398 < 0.35


# ---------------------------------------------------------------- SoftAdapt


def softadapt_reference(losses, beta, normalized, loss_weighted):
    out = [np.ones(losses.shape[1])]
    for t in range(1, len(losses)):
        s = losses[t] - losses[t - 1]
        if normalized:
            total = np.sum(np.abs(s))
            s = s / total if total > 0 else np.zeros_like(s)
        logits = beta * s
        if loss_weighted:
            logits = logits + np.log((losses[t] + losses[t - 1]) / 2)
        out.append(_softmax_k(logits))
    return np.array(out)


VARIANTS = ((False, False), (True, False), (False, True), (True, True))


def softadapt_all(beta):
    """The four variants side by side in one chain (weights independent of the rows)."""
    parts = [softadapt(beta, normalized=n, loss_weighted=w) for n, w in VARIANTS]
    return parts[0] | parts[1] | parts[2] | parts[3]


@examples(12)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_softadapt_softmax_of_slopes(case, data):
    grads, params, dtype, k, losses = _case(data, case)
    beta = (0.5, -3.0)[k % 2]
    rows, states = run(softadapt_all, dict(beta=beta), grads, params, losses=losses)
    product = np.ones((STEPS, k))
    for (normalized, loss_weighted), state in zip(VARIANTS, states, strict=True):
        want = softadapt_reference(losses, beta, normalized, loss_weighted)
        # beta = -3, slopes up to 40: weights down to e^-240, 0 below tiny
        _assert_close_or_flushed(state.weights, want, dtype, _rtol(dtype))
        product = product * want
    _check_rows(rows, product, grads, dtype)


@pytest.mark.parametrize("dtype, gap", [(jnp.float32, 88.5), (jnp.float64, 709.0)])
def test_scaled_softmax_keeps_every_normal_weight(dtype, gap):
    """K = 8, seven logits `gap` below the eighth: their weights 8 e^-gap / (1 + 7 e^-gap)
    are normal numbers (2.5 tiny), but e^-gap alone is not. K exp(z) / sum exp(z) flushed
    them to 0 (a softadapt weight, found by the thorough profile); equal logits still give
    weights exactly 1."""
    logits = np.full(8, -gap)
    logits[3] = 0.0
    got = np.asarray(scaled_softmax(jnp.asarray(logits, dtype)), np.float64)
    want = _softmax_k(logits)
    assert np.exp(-gap) < np.finfo(dtype).tiny <= np.min(want)
    np.testing.assert_allclose(got, want, rtol=_rtol(dtype))
    np.testing.assert_array_equal(scaled_softmax(jnp.full(7, 0.3, dtype)), np.ones(7))


def test_softadapt_temperature_extremes():
    """beta -> +inf puts all weight (K) on the slowest-improving loss; beta = 0 is uniform."""
    grads = {"w": jnp.ones((3, 2))}
    seq = [{"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 0.5, "b": 0.9, "c": 0.7}]
    for beta, want in ((0.0, [1, 1, 1]), (1e4, [0, 3, 0]), (-1e4, [3, 0, 0])):
        opt = softadapt(beta)
        state = opt.init(None, tasks=3)
        for vals in seq:
            _, state = opt.update(grads, state, losses=vals)
        np.testing.assert_allclose(state.weights, want, atol=1e-6)


# ---------------------------------------------------------------- DWA


def dwa_reference(losses, temperature):
    out = []
    for t in range(len(losses)):
        if t < 2:
            out.append(np.ones(losses.shape[1]))
        else:
            out.append(_softmax_k(losses[t - 1] / losses[t - 2] / temperature))
    return np.array(out)


@examples(12)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_dwa_softmax_of_loss_ratios(case, data):
    grads, params, dtype, k, losses = _case(data, case)
    temperature = (2.0, 0.1)[k % 2]
    rows, states = run(dwa, dict(temperature=temperature), grads, params, losses=losses)
    want = dwa_reference(losses, temperature)
    np.testing.assert_allclose(states.weights, want, rtol=_rtol(dtype))
    _check_rows(rows, want, grads, dtype)


# ---------------------------------------------------------------- uncertainty


def uncertainty_reference(losses, lr, init, b1=0.9, b2=0.999, eps=1e-8):
    """s_k descends sum_k exp(-s_k) L_k + s_k with Adam; weights exp(-s) before each step.

    In exact arithmetic (50 digits, from the float inputs and constants as given): near the
    fixed point the gradient 1 - exp(-s) L cancels, and Adam's step g / (|g| + eps)
    amplifies an error in it by up to lr / eps = 1e7. A float64 reference written this way
    was off by up to 7e-10 for losses 1, 1 - a few ulp, then 1 +- 5e-9 (the implementation,
    then also 1 - exp(-s) L, by up to 4e-10)."""
    with decimal.localcontext(prec=50):
        lr, b1, b2, eps = (Decimal(x) for x in (lr, b1, b2, eps))
        s = [Decimal(init)] * losses.shape[1]
        m, v, used, after = [Decimal(0)] * len(s), [Decimal(0)] * len(s), [], []
        for t, row in enumerate(losses, start=1):
            used.append([float((-x).exp()) for x in s])
            g = [1 - (-x).exp() * Decimal(float(L)) for x, L in zip(s, row, strict=True)]
            m = [b1 * a + (1 - b1) * b for a, b in zip(m, g, strict=True)]
            v = [b2 * a + (1 - b2) * b * b for a, b in zip(v, g, strict=True)]
            s = [x - lr * (a / (1 - b1**t)) / ((b / (1 - b2**t)).sqrt() + eps)
                 for x, a, b in zip(s, m, v, strict=True)]
            after.append([float(x) for x in s])
    return np.array(used), np.array(after)


@pytest.mark.standard_promotion  # optax.adam inside
@examples(12)
@given(task_grads(max_k=8, layouts=LAYOUT), st.data())
def test_uncertainty_descends_its_objective(case, data):
    grads, params, dtype, k, losses = _case(data, case)
    lr, init = ((0.1, 0.0), (0.01, 1.0))[k % 2]
    rows, states = run(uncertainty, dict(learning_rate=lr, init=init), grads, params,
                       losses=losses)
    used, after = uncertainty_reference(losses, lr, init)
    np.testing.assert_allclose(states.log_vars, after, rtol=_rtol(dtype), atol=_rtol(dtype))
    np.testing.assert_allclose(states.weights, np.exp(-after), rtol=10 * _rtol(dtype))
    _check_rows(rows, used, grads, dtype)


@pytest.mark.standard_promotion  # optax.adam inside
def test_uncertainty_is_exact_near_its_fixed_point():
    """Losses within 1e-9 of 1 with s near 0 = log 1: the gradient 1 - exp(-s) L is about
    1e-9 and Adam's step g / (|g| + 1e-8) amplifies its error 1e7 times. Formed as
    1 - exp(-s) L it lost 1e-10 of s here, up to 4e-10 on such paths (a float64 reference,
    likewise 7e-10); as -expm1(log L - s), s is exact to rounding (a few eps * lr)."""
    ulp = 2.0**-53
    path = np.array([1.0, 1 - 5 * ulp, 1 + 3e-9, 1 - 2e-9])
    losses = np.stack([path, path[::-1]], axis=1)
    grads = {"w": jnp.ones((2, 3))}
    _, states = run(uncertainty, dict(learning_rate=0.1, init=0.0), grads,
                    {"w": jnp.zeros(3)}, losses=losses)
    _, after = uncertainty_reference(losses, 0.1, 0.0)
    assert np.max(np.abs(after)) > 1e-3  # the steps are not at rounding level
    np.testing.assert_allclose(states.log_vars, after, rtol=0, atol=1e-14)


@jax.jit
def _settle(state, losses):
    """400 gradient-descent steps of uncertainty() on fixed losses (K = len(losses))."""
    k = losses.shape[0]
    opt = uncertainty(optimizer=optax.sgd(0.5))
    grads, params = {"w": jnp.ones((k, 2))}, {"w": jnp.zeros(2)}
    vals = {f"t{i}": losses[i] for i in range(k)}
    step = lambda s, _: (opt.update(grads, s, params, losses=vals)[1], None)  # noqa: E731
    return jax.lax.scan(step, state, None, length=400)[0]


@pytest.mark.standard_promotion
@examples(20)
@given(hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-2, 2)))
def test_uncertainty_fixed_point_is_log_loss(log10_losses):
    """With gradient descent on s and fixed losses, s converges to log L_k (and from there
    does not move); the weights to 1 / L_k."""
    losses = 10.0**log10_losses
    state = uncertainty(optimizer=optax.sgd(0.5)).init({"w": jnp.zeros(2)}, tasks=len(losses))
    state = _settle(state, jnp.asarray(losses))
    np.testing.assert_allclose(state.log_vars, np.log(losses), atol=1e-9)
    np.testing.assert_allclose(state.weights, 1 / losses, rtol=1e-8)
    again = _settle(state, jnp.asarray(losses))
    np.testing.assert_allclose(again.log_vars, state.log_vars, atol=1e-12)
    assert int(again.skipped) == 0


# ---------------------------------------------------------------- float limits


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_weighted_rows_saturate_instead_of_overflowing(dtype):
    """A weight that fits the dtype can still overflow a row: grad_norm_weights learns
    lambda_0 = sum_j ||g_j|| / ||g_0|| ~ 1e38 (1e308 in float64) from rows of very
    different norms, then (every=2: no update) applies it to a row of order 1. The row is
    scaled to the largest multiple of itself that fits (same direction, largest entry
    within 4 eps of max) instead of overflowing to inf (found by the thorough profile in
    a chain of all the weightings); the other row is lambda_1 g_1 as always."""
    fi = np.finfo(dtype)
    small, big = (1e-18, 1e20) if dtype == jnp.float32 else (1e-154, 1e154)
    first = np.array([[small, 0.0, 0.0], [big, 0.0, 0.0]])
    then = np.array([[6.0, -1.0, 0.5], [1.0, 2.0, 3.0]])
    opt = grad_norm_weights(alpha=1.0, every=2)
    state = opt.init({"w": jnp.zeros(3, dtype)}, tasks=2)
    _, state = opt.update({"w": jnp.asarray(first, dtype)}, state)
    out, state = opt.update({"w": jnp.asarray(then, dtype)}, state)
    w = np.asarray(state.weights, np.float64)
    out = np.asarray(out["w"], np.float64)
    assert fi.max / 6 < w[0] <= fi.max  # lambda_0 g_0 does not fit
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0] / then[0], np.max(out[0]) / 6, rtol=2 * fi.eps)
    assert fi.max * (1 - 5 * fi.eps) <= np.max(np.abs(out[0])) < fi.max
    np.testing.assert_allclose(out[1], w[1] * then[1], rtol=fi.eps)
    # within the range the rows are the plain products, and non-finite rows stay so
    rows = jnp.asarray([[3.0, -1.0], [np.inf, 1.0]], dtype)
    got = np.asarray(scale_rows(jnp.asarray([2.0, 0.5], dtype), {"w": rows})["w"])
    np.testing.assert_array_equal(got, [[6.0, -2.0], [np.inf, 0.5]])


# ---------------------------------------------------------------- bad losses


WEIGHTINGS = (  # name, factory, kwargs, the state field an unusable loss must leave alone
    ("gradnorm", gradnorm, dict(learning_rate=0.05), "weights"),
    ("relobralo", relobralo, dict(alpha=0.5, tau=1.0, rho=0.5), "weights"),
    ("softadapt", softadapt, dict(beta=1.0, loss_weighted=True), "weights"),
    ("dwa", dwa, dict(), "last_losses"),
    ("uncertainty", uncertainty, dict(learning_rate=0.1), "log_vars"),
    ("lra", lra, dict(main=0, every=1), "weights"),
    ("grad_norm_weights", grad_norm_weights, dict(every=1), "weights"),
)
NEEDS_POSITIVE = {"gradnorm", "relobralo", "dwa", "uncertainty"}
BAD = [0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-30, 1e30]


def all_weightings():
    """Every weighting in one chain: one compilation per (K, dtype) for all of them."""
    chain = None
    for _, factory, kwargs, _ in WEIGHTINGS:
        tx = factory(**kwargs)
        chain = tx if chain is None else chain | tx
    return chain


@pytest.mark.standard_promotion
@examples(10)
@given(task_grads(max_k=4, layouts=LAYOUT), st.data())
def test_bad_losses_skip_the_update_and_outputs_stay_finite(case, data):
    """Zero, negative, NaN and infinite losses (and 1e+-30, valid but extreme): finite
    rows, finite weights; where a loss is unusable a weighting's state is unchanged and its
    `skipped` counts the step. Degenerate rows (zero, 1e+-20, K = 1) come from task_grads,
    K <= 4 here: this chain of all seven weightings is the slowest to compile."""
    grads, layout, dtype = case
    k = jax.tree.leaves(grads)[0].shape[0]
    losses = data.draw(hnp.arrays(np.float64, (STEPS, k),
                                  elements=st.sampled_from(BAD) | st.floats(1e-3, 1e3)))
    params = params_like(layout, dtype)
    rows, states = run(all_weightings, {}, grads, params, losses=losses)
    assert np.all(np.isfinite(rows))
    inits = all_weightings().init(params, tasks=k)
    for (name, _, _, field), init, state in zip(WEIGHTINGS, inits, states, strict=True):
        values = np.asarray(getattr(state, field))
        before = [np.asarray(getattr(init, field))] + list(values[:-1])
        skipped = [0] + list(np.asarray(state.skipped)[:-1])
        for t in range(STEPS):
            assert np.all(np.isfinite(np.asarray(state.weights[t]))), (name, t)
            seen = np.asarray(losses[t].astype(dtype), np.float64)
            if name in NEEDS_POSITIVE:
                bad = not np.all(np.isfinite(seen) & (seen > 0))
            elif name == "softadapt":
                bad = not np.all(np.isfinite(seen))
            else:  # the gradient-based weightings do not read the losses
                bad = False
            if bad:
                np.testing.assert_array_equal(values[t], before[t], err_msg=name)
                assert int(state.skipped[t]) == skipped[t] + 1, name
