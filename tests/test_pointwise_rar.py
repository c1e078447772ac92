"""RAR, RAR-D and RAD: shapes, reproducible keys, the density, rounds of pinnx.fit, and RAD
inside fit through a ModelSampler."""

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

import pinnx
import pinnx.combine as pc
from pinnx import residuals
from pinnx.nn import MLP
from pinnx.pointwise import (
    freeze_tasks,
    rad,
    rad_sampler,
    rar,
    rar_d,
    rar_density,
    residual_magnitude,
)
from pinnx.train import fit


class Line:
    """u(x) = x: the residual u(x) - 0 is x itself, zero at x = 0."""

    def __call__(self, x):
        return x[0]


LOSSES = residuals.losses(pde=residuals.dirichlet(0.0), bc=residuals.dirichlet(0.0))
BATCH = {"pde": jnp.linspace(-0.1, 0.1, 5)[:, None], "bc": jnp.array([[-1.0], [1.0]])}
CANDIDATES = jnp.linspace(-1, 1, 41)[:, None]


def test_rar_adds_largest_residuals():
    out = rar(LOSSES, Line(), BATCH, CANDIDATES, task="pde", m=4)
    assert out["pde"].shape == (9, 1)
    np.testing.assert_array_equal(out["pde"][:5], BATCH["pde"])
    added = sorted(np.asarray(out["pde"][5:, 0]).tolist())
    np.testing.assert_allclose(added, [-1.0, -0.95, 0.95, 1.0])
    np.testing.assert_array_equal(out["bc"], BATCH["bc"])


def test_rar_d_and_rad_shapes_keys_and_support():
    key = jax.random.key(7)
    a = rar_d(LOSSES, Line(), BATCH, CANDIDATES, key, task="pde", m=10)
    b = rar_d(LOSSES, Line(), BATCH, CANDIDATES, key, task="pde", m=10)
    c = rar_d(LOSSES, Line(), BATCH, CANDIDATES, jax.random.key(8), task="pde", m=10)
    assert a["pde"].shape == (15, 1)
    np.testing.assert_array_equal(a["pde"], b["pde"])  # same key, same points
    assert not np.array_equal(a["pde"], c["pde"])
    added = np.asarray(a["pde"][5:, 0])
    assert len(np.unique(added)) == 10  # without replacement
    assert np.all(added != 0.0)  # zero residual, zero probability when c = 0
    r1 = rad(LOSSES, Line(), BATCH, CANDIDATES, key, task="pde")
    r2 = rad(LOSSES, Line(), BATCH, CANDIDATES, key, task="pde")
    assert r1["pde"].shape == BATCH["pde"].shape
    np.testing.assert_array_equal(r1["pde"], r2["pde"])
    assert rad(LOSSES, Line(), BATCH, CANDIDATES, key, task="pde", n=20)["pde"].shape == (20, 1)


def test_rar_errors():
    with pytest.raises(ValueError, match="candidates must be"):
        rar(LOSSES, Line(), BATCH, jnp.ones((4, 2)), task="pde", m=1)
    with pytest.raises(ValueError, match="m must lie"):
        rar(LOSSES, Line(), BATCH, CANDIDATES, task="pde", m=100)
    with pytest.raises(ValueError, match="unknown task"):
        rar(LOSSES, Line(), BATCH, CANDIDATES, task="ic", m=1)
    with pytest.raises(ValueError, match="non-finite"):
        rar_d(LOSSES, Line(), BATCH, CANDIDATES.at[0, 0].set(jnp.nan), jax.random.key(0),
              task="pde", m=1)
    with pytest.raises(ValueError, match="k >= 0"):
        rar_density(jnp.ones(3), k=-1.0, c=0.0)


@examples(20)
@given(hnp.arrays(np.float64, st.integers(1, 20),
                  elements=st.one_of(st.floats(0, 1e6), st.just(0.0))),
       st.sampled_from([0.0, 1.0, 2.0]), st.sampled_from([0.0, 1.0]))
def test_density_is_a_distribution(e, k, c):
    p = np.asarray(rar_density(jnp.asarray(e), k, c))
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0)
    if k > 0 and c == 0 and e.max() > 0:
        assert np.all(p[e == 0] == 0)  # nothing drawn where the residual vanishes


def test_residual_magnitude():
    e = residual_magnitude(LOSSES, Line(), CANDIDATES, task="pde")
    np.testing.assert_allclose(e, jnp.abs(CANDIDATES[:, 0]))


@pytest.mark.standard_promotion
def test_rounds_of_fit_with_rar_d():
    # regression of sin(3x) written as a point task, so RAR-D can grow its points
    fit_losses = residuals.losses(
        pde=residuals.pde(lambda u, x: u(x) - jnp.sin(3 * x[0])),
        bc=residuals.dirichlet(float(np.sin(3.0))))

    def sample(key):
        return {"pde": jax.random.uniform(key, (8, 1), minval=-1, maxval=1),
                "bc": jnp.array([[1.0]])}

    model = MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
    opt = pc.sum() | optax.adam(1e-2)
    batch, state, sizes = sample(jax.random.key(1)), None, []
    for r in range(2):
        data = freeze_tasks(sample, {"pde": batch["pde"]})
        model, state, hist = fit(fit_losses, model, opt, data, steps=6, resample_every=3,
                                 opt_state=state, progress=False, key=jax.random.key(r))
        key = jax.random.key(100 + r)
        cands = jax.random.uniform(key, (64, 1), minval=-1, maxval=1)
        batch = rar_d(fit_losses, model, batch, cands, key, task="pde", m=4)
        sizes.append(batch["pde"].shape[0])
        assert hist.nonfinite is None
    assert sizes == [12, 16]


@pytest.mark.standard_promotion
def test_fit_gives_a_model_sampler_the_model_being_trained():
    seen = []

    def draw(key, model):  # records the model's first weight at every draw
        jax.debug.callback(lambda w: seen.append(np.asarray(w)), model.layers[0].weight)
        return {"pde": jax.random.uniform(key, (8, 1), minval=-1, maxval=1),
                "bc": jnp.array([[1.0]])}

    fit_losses = residuals.losses(pde=residuals.pde(lambda u, x: u(x) - jnp.sin(3 * x[0])),
                                  bc=residuals.dirichlet(0.0))
    model = MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
    opt = pc.sum() | optax.adam(1e-2)
    fit(fit_losses, model, opt, pinnx.ModelSampler(draw), steps=6, resample_every=3,
        log_every=6, progress=False)
    assert len(seen) == 2  # step 0 (initial model) and step 3
    np.testing.assert_array_equal(seen[0], model.layers[0].weight)
    # the model at the step-3 draw is the model after 3 updates (same first batch, no
    # resample before step 3)
    after3, _, _ = fit(fit_losses, model, opt, pinnx.ModelSampler(draw), steps=3,
                       resample_every=3, log_every=3, progress=False)
    np.testing.assert_array_equal(seen[1], after3.layers[0].weight)
    with pytest.raises((ValueError, TypeError)):  # TypeError: the test suite's typechecker
        pinnx.ModelSampler(3)


class Slope(eqx.Module):
    """u(x) = a x, a trainable scalar: the residual is largest at the ends."""

    a: jax.Array

    def __call__(self, x):
        return self.a * x[0]


@pytest.mark.standard_promotion
def test_rad_sampler_draws_by_residual_inside_fit():
    def sample(key):
        return {"pde": jax.random.uniform(key, (5, 1), minval=-1, maxval=1),
                "bc": BATCH["bc"]}

    # k = 1, c = 0: p ∝ |x| on the candidates, so x = 0 is never drawn
    data = rad_sampler(sample, LOSSES, CANDIDATES, task="pde", c=0.0)
    key = jax.random.key(3)
    batch = jax.jit(data)(key, Slope(jnp.array(1.0)))
    k_batch, _, k_pick = jax.random.split(key, 3)
    expected = rad(LOSSES, Line(), sample(k_batch), CANDIDATES, k_pick, task="pde", c=0.0)
    np.testing.assert_array_equal(batch["pde"], expected["pde"])
    assert batch["pde"].shape == (5, 1) and not np.any(batch["pde"] == 0.0)
    # inside fit, candidates as a function, resampling every 2 steps: one compilation,
    # finite, and the model moves towards u = 0
    fresh = rad_sampler(sample, LOSSES, lambda k: jax.random.uniform(k, (64, 1), minval=-1,
                                                                     maxval=1), task="pde")
    model, _, hist = fit(LOSSES, Slope(jnp.array(1.0)), pc.sum() | optax.sgd(0.1), fresh,
                         steps=6, resample_every=2, log_every=6, progress=False)
    assert hist.nonfinite is None and 0 <= float(model.a) < 1
    with pytest.raises(ValueError, match="unknown task"):
        rad_sampler(sample, LOSSES, CANDIDATES, task="ic")
    with pytest.raises(ValueError, match="k >= 0"):
        rad_sampler(sample, LOSSES, CANDIDATES, task="pde", k=-1.0)
