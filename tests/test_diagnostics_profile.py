"""pinnx.diagnostics.profile: recorded cosines equal pinnx.task_grads', no extra compilation,
the fit recording option, check mode, the figure, the Klein-Gordon problem."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pinnx.combine as pc
from pinnx import operators, residuals
from pinnx.diagnostics import (
    ConflictReport,
    Thresholds,
    overhead,
    per_sample_interaction,
    profile,
    recommend,
)
from pinnx.geometry import Interval
from pinnx.nn import MLP, PerLossAdapters
from pinnx.problems import PROBLEMS
from pinnx.problems.klein_gordon import klein_gordon, klein_gordon_solution
from pinnx.tasks import cosines, task_grads, task_norms
from pinnx.train import fit

pytestmark = pytest.mark.standard_promotion

DOMAIN = Interval(-1.0, 1.0)
LOSSES = residuals.losses(
    pde=residuals.pde(lambda u, x: operators.derivatives(u, x, 0, 2)[2] + jnp.sin(3 * x[0])),
    bc=residuals.dirichlet(0.0),
)


def sample(key):
    k1, k2 = jax.random.split(key)
    return {"pde": DOMAIN.sample_interior(k1, 16), "bc": DOMAIN.sample_boundary(k2, 4)}


BATCH = sample(jax.random.key(1))


def model0():
    return MLP(1, "scalar", width=8, depth=2, key=jax.random.key(0))


def test_recorded_cosines_equal_task_grads():
    steps, lr = 6, 1e-2
    report = profile(LOSSES, model0(), BATCH, steps=steps, learning_rate=lr, checkpoints=0)
    assert isinstance(report, ConflictReport) and report.tasks == ("bc", "pde")
    np.testing.assert_array_equal(report.record_steps, np.arange(steps))
    # replay the same Adam steps by hand, measuring with task_grads directly
    params, static = eqx.partition(model0(), eqx.is_inexact_array)
    opt = pc.sum() | optax.adam(lr)
    state = opt.init(params, tasks=report.tasks)

    @jax.jit
    def step(params, state):
        loss, grads = task_grads(LOSSES, eqx.combine(params, static), BATCH)
        updates, state = opt.update(grads, state, params, losses=loss)
        return eqx.apply_updates(params, updates), state, loss, grads

    for s in range(steps):
        params, state, loss, grads = step(params, state)
        np.testing.assert_allclose(report.cos[s], cosines(grads), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(report.norms[s], task_norms(grads), rtol=1e-6)
        np.testing.assert_allclose(report.losses[s], [loss["bc"], loss["pde"]], rtol=1e-6)


def test_recording_adds_no_trace_and_no_compilation_per_step():
    traced = []

    def counted(model, batch):
        traced.append(1)
        return LOSSES(model, batch)

    def run(steps, record):
        traced.clear()
        _, _, h = fit(counted, model0(), pc.sum() | optax.adam(1e-3), BATCH, steps=steps,
                      log_every=4, progress=False, record_every=record)
        return len(traced), h

    plain, h = run(8, None)
    assert h.record_steps.shape == (0,) and h.step_cosines == {}
    # recording traces the loss no more often (no extra pass), 6 chunks compile like 2
    count, h = run(24, 3)
    assert count == plain
    np.testing.assert_array_equal(h.record_steps, np.arange(0, 24, 3))
    assert h.step_cosines["bc", "pde"].shape == (8,) and h.step_grad_norms["pde"].shape == (8,)
    # the log at step 12 (extra task_grads call) equals the record of step 12
    np.testing.assert_array_equal(h.log_steps, [0, 4, 8, 12, 16, 20, 24])
    np.testing.assert_allclose(h.step_cosines["bc", "pde"][4], h.cosines["bc", "pde"][3],
                               rtol=1e-6)
    np.testing.assert_allclose(h.step_grad_norms["pde"][4], h.grad_norms["pde"][3], rtol=1e-6)


def test_fit_recording_errors():
    with pytest.raises(ValueError, match="plain optax optimizer"):
        fit(LOSSES, model0(), optax.adam(1e-3), BATCH, steps=3, record_every=1)
    with pytest.raises(ValueError, match="record_every must be a positive int"):
        fit(LOSSES, model0(), pc.sum() | optax.adam(1e-3), BATCH, steps=3, record_every=0)


@pytest.mark.slow  # end to end
def test_profile_report_check_and_plot(tmp_path):
    # a threshold just above 1 forces the magnitude regime, so check mode trains both
    report = profile(LOSSES, model0(), sample, steps=12, record_every=2, resample_every=3,
                     learning_rate=1e-2, checkpoints=3, interaction_points=4, name="toy",
                     thresholds=Thresholds(imbalance=1.0 + 1e-9))
    assert report.regime in ("magnitude", "mixed") and report.recommendation.needs_check
    assert report.norms.shape == (6, 2) and report.cos.shape == (6, 2, 2)
    assert [s for s, _ in report.interaction] == [0, 6, 12]
    assert all(0 <= v <= 1 for _, d in report.interaction for v in d.values())
    text = str(report)
    assert "regime:" in text and "bc/pde" in text and "recommendation" in text
    assert report.to_dict()["regime"] == report.regime
    fig = report.plot(tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 10_000 and len(fig.axes) == 4
    # check mode: the recipe against plain Adam, from the same start
    result = report.check(steps=6)
    assert result.metric.startswith("summed loss")
    assert np.isfinite(result.baseline) and np.isfinite(result.recommended)
    assert result.baseline != result.recommended  # two different trainings
    assert result.ahead == ("recommended" if result.recommended < result.baseline
                            else "baseline")
    assert "ahead" in str(result)
    with pytest.raises(ValueError, match="steps >= 2"):
        profile(LOSSES, model0(), BATCH, steps=1)


@pytest.mark.slow  # trains two recipes
def test_check_trains_the_adapter_recipe(tmp_path):
    report = profile(LOSSES, model0(), sample, steps=4, resample_every=2, checkpoints=0)
    directional = dataclasses.replace(
        report, recommendation=recommend("directional", report.tasks,
                                         {t: 1.0 for t in report.tasks}))
    seen = []

    def error_fn(m):  # the adapter model is evaluated through model(x): the pde forward
        seen.append(m)
        return float(jnp.mean(jax.vmap(m)(BATCH["pde"]) ** 2))

    result = directional.check(steps=5, error_fn=error_fn)
    assert result.trained.startswith("per-loss adapters (rank 4)")
    assert np.isfinite(result.recommended) and result.recommended != result.baseline
    assert isinstance(seen[0], MLP) and isinstance(seen[1], PerLossAdapters)
    assert seen[1].main == "pde"
    assert result.recommended == error_fn(seen[1]) != error_fn(seen[1].for_task("bc"))
    # a model the adapters cannot wrap: the reweighting alone, and the result says so
    rwf = dataclasses.replace(directional, setup={
        **directional.setup,
        "model": MLP(1, "scalar", width=8, depth=2, key=jax.random.key(0), rwf=True)})
    result = rwf.check(steps=3)
    assert result.trained.startswith("LRA + Adam only") and "recommended run" in str(result)


def test_overhead_times_three_configurations():
    cost = overhead(LOSSES, model0(), sample, steps=3, rounds=2)
    assert set(cost) == {"adam", "sum_adam", "profile", "overhead"}
    assert all(np.isfinite(v) for v in cost.values())
    assert all(cost[k] > 0 for k in ("adam", "sum_adam", "profile"))
    assert cost["overhead"] == pytest.approx(cost["profile"] / cost["adam"] - 1)


def test_per_sample_interaction_counts_pairs():
    out = per_sample_interaction(LOSSES, model0(), BATCH, points=4)
    assert set(out) == {("bc", "pde")} and 0 <= out["bc", "pde"] <= 1

    class Split(eqx.Module):  # pde sees only w1, bc only w2: fully modular
        w1: jax.Array
        w2: jax.Array

        def __call__(self, x):
            return jnp.where(x[0] ** 2 < 0.999, self.w1 * x[0] ** 2, self.w2 * x[0])

    split = Split(jnp.array(0.5), jnp.array(0.5))
    assert per_sample_interaction(LOSSES, split, BATCH, points=4)["bc", "pde"] == 0
    with pytest.raises(ValueError, match="need a pinnx.residuals.Losses"):
        per_sample_interaction(lambda m, b: {}, model0(), BATCH)


class Exact(eqx.Module):
    w: jax.Array

    def __call__(self, x):
        return klein_gordon_solution(x) + 0 * self.w


def test_klein_gordon_exact_solution_has_zero_losses():
    problem = klein_gordon(n_pde=32, n_ic=8, n_bc=8)
    assert PROBLEMS["klein_gordon"] is klein_gordon
    batch = problem.sample(jax.random.key(0))
    assert np.all(np.asarray(batch["ic"][:, 1]) == 0)
    assert set(np.unique(np.asarray(batch["bc"][:, 0]))) == {0.0, 1.0}
    exact = Exact(jnp.zeros((), jnp.float64))
    batch64 = jax.tree.map(lambda a: a.astype(jnp.float64), batch)
    losses = eqx.filter_jit(problem.losses)(exact, batch64)
    assert set(losses) == {"bc", "ic", "pde"}
    assert max(float(v) for v in losses.values()) < 1e-20
    assert problem.relative_l2(exact) < 1e-12
    mlp = MLP(2, "scalar", width=4, depth=1, key=jax.random.key(0))
    wrong = eqx.filter_jit(problem.losses)(mlp, batch)
    assert float(wrong["pde"]) > 1.0
