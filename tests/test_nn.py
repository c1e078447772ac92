"""pinnx.nn.MLP: shapes, dtypes, init statistics, Fourier features, jit/vmap/grad."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnx.nn import MLP


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
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
