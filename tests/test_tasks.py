"""task_grads, gram, task_norms, cosines."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import flatten, flush
from strategies import task_grads as grads_strategy

import pinnx.nn
from pinnx.tasks import cosines, gram, num_tasks, task_grads, task_names, task_norms


def _model():
    return pinnx.nn.MLP(2, "scalar", width=8, depth=2, key=jax.random.key(0))


def _losses(model, batch):
    u = jax.vmap(model)(batch["x"])
    return {"pde": jnp.mean(u**2), "bc": jnp.mean((u - 1) ** 2), "aux": jnp.mean(jnp.sin(u))}


BATCH = {"x": jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (16, 2)))}


def test_rows_are_separate_gradients_in_sorted_key_order():
    model = _model()
    losses, grads = task_grads(_losses, model, BATCH)
    assert tuple(losses) == ("aux", "bc", "pde") == task_names(losses)
    params = eqx.filter(model, eqx.is_inexact_array)
    for k, name in enumerate(losses):
        ref = eqx.filter_grad(lambda m, n=name: _losses(m, BATCH)[n])(model)
        jax.tree.map(lambda g, r, k=k: np.testing.assert_allclose(g[k], r, rtol=1e-10),
                     grads, ref)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert num_tasks(grads) == 3


def test_matches_jacrev_of_stacked_losses_and_survives_jit():
    model = _model()
    losses, grads = eqx.filter_jit(task_grads)(_losses, model, BATCH)
    assert tuple(losses) == ("aux", "bc", "pde")

    def stacked(m):
        d = _losses(m, BATCH)
        return jnp.stack([d[n] for n in sorted(d)])

    jac = eqx.filter_jacrev(stacked)(model)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), grads,
                 eqx.filter(jac, eqx.is_inexact_array))


def test_extra_arguments_and_non_trainable_leaves():
    model = (_model(), "a label", 3)

    def losses(m, batch, scale=1.0):
        return {"a": scale * _losses(m[0], batch)["pde"]}

    values, grads = task_grads(losses, model, BATCH, scale=2.0)
    assert grads[1] is None and grads[2] is None
    assert float(values["a"]) == pytest.approx(2 * float(_losses(model[0], BATCH)["pde"]))


@pytest.mark.parametrize(
    "losses, message",
    [
        (lambda m, b: {"pde": jax.vmap(m)(b["x"])}, r"must be a scalar, got shape \(16,\)"),
        (lambda m, b: [jnp.sum(jax.vmap(m)(b["x"]))], "must return a non-empty dict"),
        (lambda m, b: {}, "non-empty dict"),
        (lambda m, b: {1: jnp.sum(jax.vmap(m)(b["x"]))}, "task names must be strings"),
    ],
)
def test_bad_loss_functions(losses, message):
    with pytest.raises(ValueError, match=message):
        task_grads(losses, _model(), BATCH)


def test_no_trainable_leaves():
    with pytest.raises(ValueError, match="no trainable leaves"):
        task_grads(lambda m, b: {"a": jnp.sum(b["x"])}, ("nothing", 1), BATCH)


@given(grads_strategy(max_k=5))
def test_gram_norms_cosines_against_numpy(case):
    grads, layout, dtype = case
    flat = flatten(grads)
    seen = flush(flat, dtype)  # subnormals and sub-tiny rows count as zero
    norms = np.linalg.norm(seen, axis=1)
    np.testing.assert_allclose(task_norms(grads), norms, rtol=1e-5 if dtype == jnp.float32
                               else 1e-12, atol=10 * np.finfo(dtype).tiny)
    cos = np.asarray(cosines(grads))
    assert np.all(np.isfinite(cos)) and np.all(np.abs(cos) <= 1)
    nz = norms > 0
    flat = seen
    ref = flat[nz] @ flat[nz].T / np.outer(norms[nz], norms[nz])
    np.testing.assert_allclose(cos[np.ix_(nz, nz)], ref, atol=1e-4 if dtype == jnp.float32
                               else 1e-10)
    assert np.all(cos[~nz] == 0)
    if dtype == jnp.float64:
        np.testing.assert_allclose(gram(grads), flat @ flat.T, rtol=1e-10,
                                   atol=1e-12 * np.max(norms, initial=0) ** 2)


@given(st.sampled_from([1e-20, 1e20]))
def test_norms_and_cosines_survive_extreme_float32_scales(scale):
    g = {"w": jnp.asarray([[3.0, 4.0], [-4.0, 3.0], [6.0, 8.0]], jnp.float32) * scale}
    np.testing.assert_allclose(task_norms(g) / scale, [5.0, 5.0, 10.0], rtol=1e-6)
    np.testing.assert_allclose(cosines(g), [[1, 0, 1], [0, 1, 0], [1, 0, 1]], atol=1e-6)
