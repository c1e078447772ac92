"""pinnx.atl: the ATL task helper and its loss dictionary."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pinnx.atl import ATLLosses, TaskOutput, atl_losses, auxiliary_tasks, distance_penalty
from pinnx.combine._gate import cosine_gate
from pinnx.combine._linear import sum as sum_rows
from pinnx.nn._hard_sharing import HardSharing
from pinnx.nn._mlp import MLP
from pinnx.nn._soft_sharing import SoftSharing
from pinnx.problems.helmholtz import helmholtz
from pinnx.tasks import task_grads
from pinnx.train import fit

KEY = jax.random.key(0)


def _helmholtz(a2):
    return helmholtz(n_pde=16, n_bc=16, a2=a2, n_test=11)


@pytest.fixture(scope="module")
def tasks():
    return auxiliary_tasks(_helmholtz, 1.0, [2.0, 3.0], weights={"bc": 10.0})


def test_names_outputs_and_weights(tasks):
    assert tasks.names == ("main", "aux0", "aux1") and tasks.num_tasks == 3
    net = HardSharing(2, "scalar", 3, width=8, depth=2, key=KEY, dtype=jnp.float64)
    batch = jax.tree.map(lambda a: a.astype(jnp.float64), tasks.sample(KEY))

    @jax.jit
    def evaluate(net, batch):
        singles = [p.losses(TaskOutput(net, k), batch) for k, p in enumerate(tasks.problems)]
        return tasks.losses(net, batch), tasks.losses.terms(net, batch), singles

    losses, terms, singles = evaluate(net, batch)
    assert set(losses) == {"main", "aux0", "aux1"}
    assert set(terms) == {f"{n}/{t}" for n in tasks.names for t in ("bc", "pde")}
    for name, single in zip(tasks.names, singles, strict=True):
        # task k's loss is its own problem's loss on output k, with the term weights
        np.testing.assert_allclose(losses[name], single["pde"] + 10.0 * single["bc"],
                                   rtol=1e-12)
        np.testing.assert_allclose(terms[f"{name}/bc"], single["bc"], rtol=1e-12)


def test_each_task_differentiates_only_through_its_output(tasks):
    net = HardSharing(2, "scalar", 3, width=8, depth=2, key=KEY, dtype=jnp.float64)
    batch = jax.tree.map(lambda a: a.astype(jnp.float64), tasks.sample(KEY))
    _, grads = jax.jit(lambda n, b: task_grads(tasks.losses, n, b))(net, batch)
    # rows: aux0, aux1, main
    for row, head in ((0, 1), (1, 2), (2, 0)):
        for k in range(3):
            g = np.concatenate([np.ravel(x[row]) for x in jax.tree.leaves(grads.heads[k])])
            assert np.any(g != 0) == (k == head)


def test_single_task_baseline_and_scalar_networks():
    main = _helmholtz(1.0)
    losses = atl_losses(main.losses, [])
    mlp = MLP(2, "scalar", 8, 2, key=KEY)
    batch = main.sample(KEY)
    np.testing.assert_allclose(losses(mlp, batch)["main"],
                               sum(main.losses(mlp, batch).values()), rtol=1e-6)
    vec = MLP(2, 1, 8, 2, key=KEY)  # out_size 1: one task output of shape (1,)
    np.testing.assert_allclose(losses(vec, batch)["main"], losses(mlp, batch)["main"],
                               rtol=1e-6)


def test_per_task_batches(tasks):
    net = HardSharing(2, "scalar", 3, width=8, depth=2, key=KEY)
    b0, b1 = tasks.sample(KEY), tasks.sample(jax.random.key(1))
    mixed = tasks.losses(net, {"main": b0, "aux0": b1, "aux1": b1})
    np.testing.assert_allclose(mixed["main"], tasks.losses(net, b0)["main"], rtol=1e-6)
    np.testing.assert_allclose(mixed["aux0"], tasks.losses(net, b1)["aux0"], rtol=1e-6)


def test_bad_input(tasks):
    main = _helmholtz(1.0)
    net2 = HardSharing(2, "scalar", 2, width=8, depth=2, key=KEY)
    with pytest.raises(ValueError, match="2 task outputs but there are 3 tasks"):
        tasks.losses(net2, tasks.sample(KEY))
    with pytest.raises(ValueError, match="unknown terms"):
        atl_losses(main.losses, [], weights={"ic": 1.0})
    with pytest.raises(ValueError, match="finite number"):
        atl_losses(main.losses, [], weights={"bc": float("nan")})
    other = main.losses.terms | {"ic": main.losses.terms["bc"]}
    with pytest.raises(ValueError, match="same PDE"):
        atl_losses(main.losses, [type(main.losses)(other)])
    with pytest.raises(ValueError, match="distinct"):
        atl_losses(main.losses, [main.losses], main_name="aux0")
    with pytest.raises((ValueError, TypeError)):  # beartype may refuse it first
        atl_losses(lambda m, b: {}, [])
    with pytest.raises(ValueError, match="no output 2"):
        TaskOutput(net2, 2)(jnp.zeros(2))
    with pytest.raises(ValueError, match="index"):
        TaskOutput(net2, -1)
    assert isinstance(tasks.losses, ATLLosses)


@pytest.mark.standard_promotion
def test_recipe_trains_with_the_gate():
    """The ATL-PINN recipe in pinnx: gate on the shared trunk, sum, Adam, `fit`."""
    two = auxiliary_tasks(_helmholtz, 1.0, [2.0])
    net = HardSharing(2, "scalar", 2, width=8, depth=2, key=KEY)
    opt = cosine_gate(main="main", where=net.shared_mask) | sum_rows() | optax.adam(1e-2)
    trained, _, history = fit(two.losses, net, opt, two.sample(KEY), steps=20, log_every=20,
                              progress=False)
    assert history.nonfinite is None and history.tasks == ("aux0", "main")
    assert history.losses["main"][-1] < history.losses["main"][0]
    # the heads moved: every task's tower learned
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                         eqx.filter(trained.heads, eqx.is_array),
                         eqx.filter(net.heads, eqx.is_array))
    assert all(jax.tree.leaves(moved))
    assert 0 < two.relative_l2(trained) < 10


@pytest.mark.slow  # trains two networks
@pytest.mark.standard_promotion
def test_distance_penalty_is_its_own_task(tasks):
    net = SoftSharing(2, "scalar", 3, width=8, depth=2, key=KEY, coupling="distance")
    net = eqx.tree_at(lambda n: n.columns[1][0].weight, net, replace_fn=lambda w: w + 0.1)
    losses = distance_penalty(tasks.losses, 0.5)
    batch = tasks.sample(KEY)
    values = losses(net, batch)
    assert set(values) == {"main", "aux0", "aux1", "distance"}
    np.testing.assert_allclose(values["distance"], 0.5 * net.distance(), rtol=1e-6)
    for name, value in tasks.losses(net, batch).items():
        np.testing.assert_allclose(values[name], value, rtol=1e-6)
    # its own gradient row: only the columns, and exactly 0.5 * grad distance
    _, grads = task_grads(losses, net, batch)
    names = sorted(values)  # task_grads' row order
    row = jax.tree.map(lambda g: g[names.index("distance")], grads)
    expected = jax.grad(lambda n: 0.5 * n.distance())(net)
    for a, b in zip(jax.tree.leaves(eqx.filter(row, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(expected, eqx.is_array)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # trains in fit with the total loss; the penalty holds the columns together
    model, _, hist = fit(losses, net, sum_rows() | optax.adam(1e-2), tasks.sample, steps=5,
                         resample_every=1, log_every=5, progress=False)
    assert hist.nonfinite is None and np.isfinite(float(model.distance()))
    with pytest.raises(ValueError, match="weight"):
        distance_penalty(tasks.losses, -1.0)
    with pytest.raises(ValueError, match="distance\\(\\) method"):
        distance_penalty(tasks.losses, 1.0)(
            HardSharing(2, "scalar", 3, width=8, depth=2, key=KEY), batch)
