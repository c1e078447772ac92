"""pinnx.diagnostics statistics, classification and recommendation on synthetic gradient
sequences with known answers: always opposite, alternating, orthogonal, scaled by 1e4."""

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
from pinnx import operators, residuals
from pinnx.diagnostics import Thresholds, classify, imbalance, recommend, runs, summarize, trend
from pinnx.geometry import Interval
from pinnx.nn import MLP
from pinnx.tasks import normalized_gram

T, P = 200, 6
LOSSES = residuals.losses(
    pde=residuals.pde(lambda u, x: operators.derivatives(u, x, 0, 2)[2] + jnp.sin(3 * x[0])),
    bc=residuals.dirichlet(0.0),
)
BATCH = {"pde": Interval(-1.0, 1.0).sample_interior(jax.random.key(1), 16),
         "bc": Interval(-1.0, 1.0).sample_boundary(jax.random.key(2), 4)}
RNG = np.random.default_rng(0)


def profile_of(rows):
    """(T, K, P) synthetic per-task gradients -> (norms (T, K), cos (T, K, K)) via pinnx."""
    grads = {"a": np.asarray(rows[..., :2]), "b": np.asarray(rows[..., 2:])}
    norms, cos = jax.vmap(normalized_gram)(grads)
    return np.asarray(norms), np.asarray(cos)


def base(t=T):
    return RNG.normal(size=(t, P))


def sequence(kind):
    g = base()
    if kind == "opposite":
        h = -2.0 * g
    elif kind == "alternating":
        h = np.where((np.arange(T) % 2 == 0)[:, None], g, -g)
    elif kind == "orthogonal":
        g[:, 3:] = 0
        h = RNG.normal(size=(T, P))
        h[:, :3] = 0
    elif kind == "scaled":
        h = 1e4 * g
    elif kind == "opposite_scaled":
        h = -1e4 * g
    else:
        raise AssertionError(kind)
    return profile_of(np.stack([g, h], axis=1))


def test_always_opposite():
    s = summarize(*sequence("opposite"), ("pde", "bc"))
    p = s.pairs["pde", "bc"]
    assert p.frac_negative == 1 and p.longest_run == T and p.mean_run == T
    np.testing.assert_allclose([p.mean_cos, p.median_cos], -1, atol=1e-12)
    assert abs(p.cos_trend) < 1e-9 and p.frac_near_zero == 0
    # norms differ by 2x only: the first task's ratio is 2
    np.testing.assert_allclose(s.per_task["pde"].median_ratio, 2, rtol=1e-12)
    assert s.per_task["bc"].median_ratio == 1
    c = classify(s)
    assert c.regime == "directional" and c.directional_pairs == (("pde", "bc"),)


def test_alternating_is_transient():
    s = summarize(*sequence("alternating"), ("a", "b"))
    p = s.pairs["a", "b"]
    assert p.frac_negative == 0.5 and p.longest_run == 1 and p.mean_run == 1
    assert classify(s).regime == "benign"
    # recorded every 10 steps: run lengths are in steps, one record never counts as lasting
    s10 = summarize(*sequence("alternating"), ("a", "b"), record_every=10)
    assert s10.pairs["a", "b"].longest_run == 10 and s10.window == 10 * T
    assert classify(s10).regime == "benign"


def test_orthogonal_gradients():
    s = summarize(*sequence("orthogonal"), ("a", "b"))
    p = s.pairs["a", "b"]
    assert p.frac_negative == 0 and p.longest_run == 0 and p.mean_run == 0
    assert p.frac_near_zero == 1 and p.mean_abs_cos < 1e-12
    assert classify(s).regime == "benign"


def test_scaled_by_1e4_is_magnitude():
    s = summarize(*sequence("scaled"), ("a", "b"))
    np.testing.assert_allclose([s.per_task["a"].median_ratio, s.per_task["a"].p90_ratio],
                               1e4, rtol=1e-9)
    assert s.pairs["a", "b"].frac_negative == 0
    assert abs(s.per_task["a"].log10_ratio_trend) < 1e-9
    c = classify(s)
    assert c.regime == "magnitude" and c.imbalanced_tasks == ("a",)
    assert classify(summarize(*sequence("opposite_scaled"), ("a", "b"))).regime == "mixed"


def test_persistent_block_versus_the_same_amount_spread_out():
    """40% conflicting steps: one block of 80 is persistent, 40 runs of 2 are not."""
    g = base()
    block = np.zeros(T, bool)
    block[50:130] = True
    spread = (np.arange(T) % 5) < 2
    for flags, regime in ((block, "directional"), (spread, "benign")):
        h = np.where(flags[:, None], -g, g)
        s = summarize(*profile_of(np.stack([g, h], axis=1)), ("a", "b"))
        assert s.pairs["a", "b"].frac_negative == pytest.approx(0.4)
        assert classify(s).regime == regime
    # a stricter rule can flip the verdict
    h = np.where(block[:, None], -g, g)
    s = summarize(*profile_of(np.stack([g, h], axis=1)), ("a", "b"))
    assert classify(s, Thresholds(conflict_fraction=0.5)).regime == "benign"


def test_cosine_trend_and_ratio_trend():
    t = np.arange(T)
    target = np.linspace(1, -1, T)
    g = np.zeros((T, P))
    g[:, 0] = 1
    h = np.zeros((T, P))
    h[:, 0], h[:, 1] = target, np.sqrt(1 - target**2)
    h *= 10.0 ** np.linspace(0, 2, T)[:, None]  # norm ratio grows 100x over the window
    s = summarize(*profile_of(np.stack([g, h], axis=1)), ("a", "b"))
    assert s.pairs["a", "b"].cos_trend == pytest.approx(-2, abs=1e-9)
    assert s.per_task["a"].log10_ratio_trend == pytest.approx(2, abs=1e-9)
    assert trend(t, 3 * t) == pytest.approx(3 * (T - 1))
    assert trend(np.array([0.0]), np.array([1.0])) == 0


@given(st.lists(st.booleans(), max_size=40))
@examples(60)
def test_runs_partition_the_true_entries(flags):
    r = runs(np.array(flags, bool))
    assert r.sum() == sum(flags) and np.all(r >= 1)
    rising = sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))
    assert len(r) == rising


def test_imbalance_and_bad_input():
    ratio = imbalance(np.array([[1.0, 4.0], [0.0, 2.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(ratio, [[4, 1], [np.inf, 1], [1, 1]])
    norms, cos = sequence("opposite")
    with pytest.raises(ValueError, match=r"norms must be \(steps, 3\)"):
        summarize(norms, cos, ("a", "b", "c"))
    with pytest.raises(ValueError, match="cos must be"):
        summarize(norms, cos[:-1], ("a", "b"))
    with pytest.raises(ValueError, match="at least 2 tasks"):
        summarize(norms[:, :1], cos[:, :1, :1], ("a",))
    with pytest.raises(ValueError, match="no finite records"):
        summarize(np.full_like(norms, np.nan), cos, ("a", "b"))
    # non-finite records (a stopped run) are dropped
    bad = norms.copy()
    bad[5] = np.nan
    assert summarize(bad, cos, ("a", "b")).records == T - 1
    with pytest.raises(ValueError, match="imbalance must be > 1"):
        Thresholds(imbalance=1.0)
    with pytest.raises(ValueError, match="conflict_fraction"):
        Thresholds(conflict_fraction=0.0)


@pytest.mark.standard_promotion  # optax.adam's bias correction mixes float and int32
@pytest.mark.parametrize("regime", [pytest.param("directional", marks=pytest.mark.slow),
                                    "magnitude", pytest.param("mixed", marks=pytest.mark.slow),
                                    "benign"])
def test_recommendation_code_builds_the_optimizer(regime):
    rec = recommend(regime, ("bc", "pde"), {"bc": 1.0, "pde": 50.0}, learning_rate=2e-3)
    model = MLP(1, "scalar", width=8, depth=2, key=jax.random.key(0))
    namespace = {"pinnx": pinnx, "optax": optax, "jax": jax, "model": model,
                 "losses": LOSSES}
    exec(rec.code, namespace)  # the pasted code runs as it is
    opt = namespace["opt"]
    assert rec.adapters == (regime in ("directional", "mixed"))
    assert ("adapters" in rec.code) == rec.adapters
    if regime == "benign":
        assert not rec.needs_check and not isinstance(opt, pinnx.Combiner)
    else:
        assert rec.needs_check and repr(opt) == repr(rec.optimizer())
        assert "lra() | sum()" in repr(opt)  # main='pde' is lra's default
    # prepare() builds what the pasted code builds: same model (leaf for leaf), same losses
    losses, wrapped = rec.prepare(LOSSES, model)
    assert bool(eqx.tree_equal(wrapped, namespace["model"]))
    assert type(losses) is type(namespace["losses"])
    if rec.adapters:
        assert isinstance(wrapped, pinnx.nn.PerLossAdapters) and wrapped.main == "pde"
        # the recipe trains: one chain step through route, adapters get their own row
        state = opt.init(eqx.filter(wrapped, eqx.is_inexact_array), tasks=("bc", "pde"))
        values, grads = pinnx.task_grads(losses, wrapped, BATCH)
        params = eqx.filter(wrapped, eqx.is_inexact_array)
        updates, _ = opt.update(grads, state, params, losses=values)
        assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
    else:
        assert wrapped is model and losses is LOSSES


def test_adapter_recipe_without_pde_task_names_its_main():
    rec = recommend("directional", ("a", "b"), {"a": 0.5, "b": 2.0})
    assert rec.main == "b" and 'main="b"' in rec.code
    _, wrapped = rec.prepare(LOSSES, MLP(1, "scalar", width=8, depth=2, key=jax.random.key(0)))
    assert wrapped.main == "b"
    assert not rec.can_prepare(MLP(1, "scalar", width=8, depth=2, key=jax.random.key(0),
                                   rwf=(1.0, 0.1)))


def test_recommendation_main_task_without_pde():
    rec = recommend("magnitude", ("a", "b"), {"a": 3.0, "b": 0.1})
    assert rec.main == "a"
    with pytest.raises(ValueError, match="unknown regime"):
        recommend("chaotic", ("a", "b"), {"a": 1.0, "b": 1.0})
