"""pinnx.nn.MLP: shapes, dtypes, init statistics, Fourier features, jit/vmap/grad."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnx.nn import MLP


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)])
def test_shapes_and_dtypes(dtype):
    m = MLP(3, "scalar", 16, 3, key=jax.random.key(0), dtype=dtype)
    assert m(jnp.ones(3, dtype)).shape == () and m(jnp.ones(3, dtype)).dtype == dtype
    v = MLP(3, 2, 16, 3, key=jax.random.key(0), dtype=dtype)
    assert jax.vmap(v)(jnp.ones((5, 3), dtype)).shape == (5, 2)
    assert len(m.layers) == 4
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(m))


def test_glorot_normal_init_and_zero_biases():
    m = MLP(2, "scalar", 256, 2, key=jax.random.key(1))
    w = np.asarray(m.layers[1].weight)
    np.testing.assert_allclose(w.std(), np.sqrt(2 / (256 + 256)), rtol=0.05)
    assert all(np.all(np.asarray(layer.bias) == 0) for layer in m.layers)


def test_fourier_features_are_fixed():
    m = MLP(2, "scalar", 8, 2, key=jax.random.key(0), fourier_features=5, fourier_scale=2.0)
    assert m.fourier.shape == (5, 2) and m.layers[0].weight.shape == (8, 10)
    g = jax.grad(lambda mm: mm(jnp.array([0.3, 0.1])))(m)
    assert np.all(np.asarray(g.fourier) == 0)
    assert np.any(np.asarray(g.layers[0].weight) != 0)


def test_only_array_leaves_and_jit_grad():
    m = MLP(2, 1, 8, 2, key=jax.random.key(0))
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(m))
    assert eqx.tree_equal(eqx.filter(m, eqx.is_inexact_array), m)
    g = jax.jit(jax.grad(lambda mm, x: jnp.sum(jax.vmap(mm)(x) ** 2)))(m, jnp.ones((4, 2)))
    assert jax.tree.structure(g) == jax.tree.structure(m)


def test_bad_arguments():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="depth >= 1"):
        MLP(2, "scalar", 8, 0, key=key)
    with pytest.raises(ValueError, match="out_size"):
        MLP(2, "vector", 8, 2, key=key)
    with pytest.raises(ValueError, match="fourier_features"):
        MLP(2, 1, 8, 2, key=key, fourier_features=0)
    with pytest.raises((ValueError, TypeError), match=r"one point of shape \(2,\)|in_size"):
        MLP(2, 1, 8, 2, key=key)(jnp.ones((4, 2)))


@pytest.mark.parametrize("fourier_features", [None, 4])
def test_rwf_option_same_function_at_init(fourier_features):
    """rwf=True factorises every layer W = diag(exp(s)) V; the function is unchanged at init."""
    key = jax.random.key(3)
    kw = dict(key=key, fourier_features=fourier_features)
    plain = MLP(2, "scalar", 32, 3, **kw)
    fact = MLP(2, "scalar", 32, 3, rwf=True, **kw)
    assert [layer.weight.shape for layer in fact.layers] == [
        layer.weight.shape for layer in plain.layers]
    assert all(layer.s.shape == layer.bias.shape for layer in fact.layers)
    x = jax.random.uniform(jax.random.key(4), (64, 2), minval=-1, maxval=1)
    np.testing.assert_allclose(jax.vmap(fact)(x), jax.vmap(plain)(x), rtol=1e-13, atol=1e-15)
    g = jax.grad(lambda mm: mm(jnp.array([0.3, 0.1])))(fact)
    assert all(np.any(np.asarray(layer.s) != 0) for layer in g.layers)
    assert _params(fact) == _params(plain) + sum(layer.s.size for layer in fact.layers)


def _params(model):
    return sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
