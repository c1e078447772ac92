"""Per-point gradient norms (against a brute-force loop) and the weight formula."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jaxtyping import TypeCheckError
from strategies import examples

from pinnx import operators, residuals
from pinnx.nn import MLP
from pinnx.pointwise import (
    grad_norm_point_update,
    grad_norm_point_weights,
    point_grad_norms,
    point_weighted_losses,
    with_point_weights,
)


def _pde(u, x):
    u0, ux, uxx = operators.derivatives(u, x, 0, 2)
    return uxx + u0 * ux - jnp.sin(x[0])


LOSSES = residuals.losses(pde=residuals.pde(_pde), data=residuals.data(),
                          vec=residuals.periodic(0, 2.0, derivatives=1))
NET = MLP(1, "scalar", width=6, depth=2, key=jax.random.key(0))
X = jnp.linspace(-1, 1, 4)[:, None]
BATCH = {"pde": X, "data": (X, jnp.cos(X[:, 0])), "vec": X[:2]}


def _brute(task):
    """One jitted reverse-mode Jacobian per point, in a Python loop."""
    params, static = eqx.partition(NET, eqx.is_inexact_array)
    term, entry = LOSSES.terms[task], BATCH[task]
    n = entry[0].shape[0] if isinstance(entry, tuple) else entry.shape[0]

    @jax.jit
    def jac(point):
        return jax.jacrev(lambda p: jnp.ravel(term(eqx.combine(p, static), point)))(params)

    out = []
    for i in range(n):
        j = jac(jax.tree.map(lambda a, i=i: a[i:i + 1], entry))
        out.append(np.sqrt(sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(j))))
    return np.array(out)


def test_norms_match_brute_force_loop():
    norms = jax.jit(lambda: point_grad_norms(LOSSES, NET, BATCH))()
    assert tuple(norms) == ("data", "pde", "vec")
    for task, g in norms.items():
        np.testing.assert_allclose(g, _brute(task), rtol=1e-10)
    chunked = point_grad_norms(LOSSES, NET, BATCH, tasks=("pde",), batch_size=3)
    np.testing.assert_allclose(chunked["pde"], norms["pde"], rtol=1e-12)
    with pytest.raises(ValueError, match="unknown task"):
        point_grad_norms(LOSSES, NET, BATCH, tasks=("bc",))


NORMS = hnp.arrays(np.float64, st.integers(1, 12),
                   elements=st.one_of(st.floats(0, 1e3), st.just(0.0), st.floats(1e-30, 1e-20)))


@examples(25)
@given(NORMS, st.sampled_from([None, "max", "mean"]), st.sampled_from([1e-6, 1e-2, 1.0]))
def test_weight_formula_properties(g, normalize, floor):
    w = np.asarray(grad_norm_point_weights(jnp.asarray(g), floor=floor, normalize=normalize))
    assert np.all(np.isfinite(w)) and np.all(w > 0)
    raw = np.asarray(grad_norm_point_weights(jnp.asarray(g), floor=floor))
    assert raw.max() <= 1 / floor * (1 + 1e-12)
    if g.max() > 0:
        assert raw.min() == pytest.approx(1.0)
        assert raw[np.argmax(g)] == pytest.approx(1.0)
        # the formula itself where g_i is above the floor
        above = g >= floor * g.max()
        np.testing.assert_allclose(raw[above], g.max() / g[above], rtol=1e-12)
        # larger norm, no larger weight
        order = np.argsort(g)
        assert np.all(np.diff(raw[order]) <= 1e-9 * raw.max())
    else:
        np.testing.assert_array_equal(raw, np.ones_like(raw))
    if normalize == "max":
        assert w.max() == pytest.approx(1.0)
    elif normalize == "mean":
        assert w.mean() == pytest.approx(1.0)


@examples(30)
@given(hnp.arrays(np.float64, st.integers(1, 10), elements=st.floats(1e-3, 1e3)),
       st.floats(1e-10, 1e10))
def test_weights_scale_invariant(g, s):
    np.testing.assert_allclose(grad_norm_point_weights(jnp.asarray(g) * s),
                               grad_norm_point_weights(jnp.asarray(g)), rtol=1e-9)


def test_weight_errors():
    with pytest.raises(ValueError, match="floor"):
        grad_norm_point_weights(jnp.ones(3), floor=0.0)
    with pytest.raises(ValueError, match="normalize"):
        grad_norm_point_weights(jnp.ones(3), normalize="sum")
    with pytest.raises((ValueError, TypeCheckError)):  # beartype in the tests, else ours
        grad_norm_point_weights(jnp.ones((2, 2)))
    with pytest.raises(Exception, match="finite and non-negative"):
        grad_norm_point_weights(jnp.array([1.0, jnp.nan]))


def test_update_moving_average_and_weighted_losses():
    w1 = grad_norm_point_update(LOSSES, NET, BATCH, tasks=("pde",))
    g = point_grad_norms(LOSSES, NET, BATCH, tasks=("pde",))["pde"]
    np.testing.assert_allclose(w1["pde"], grad_norm_point_weights(g), rtol=1e-12)
    prev = {"pde": jnp.full((4,), 2.0)}
    w2 = grad_norm_point_update(LOSSES, NET, BATCH, prev, tasks=("pde",), alpha=0.25)
    np.testing.assert_allclose(w2["pde"], 0.75 * 2.0 + 0.25 * w1["pde"], rtol=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        grad_norm_point_update(LOSSES, NET, BATCH, tasks=("pde",), alpha=0.0)

    weighted = point_weighted_losses(LOSSES)
    batch = with_point_weights(BATCH, w1)
    values = weighted(NET, batch)
    plain = LOSSES.pointwise(NET, BATCH)
    np.testing.assert_allclose(values["pde"], jnp.mean(w1["pde"] * plain["pde"]), rtol=1e-12)
    np.testing.assert_allclose(values["data"], jnp.mean(plain["data"]), rtol=1e-12)
    # the weights are data: no gradient flows into them
    dw = jax.grad(lambda w: weighted(NET, with_point_weights(BATCH, {"pde": w}))["pde"])(
        w1["pde"])
    np.testing.assert_array_equal(dw, jnp.zeros(4))
    with pytest.raises(ValueError, match="4 points but"):
        with_point_weights(BATCH, {"pde": jnp.ones(3)})
    with pytest.raises(ValueError, match="does not hold"):
        with_point_weights(BATCH, {"bc": jnp.ones(3)})
