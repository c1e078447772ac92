"""pinnx.nn variants: ModifiedMLP, LDA, and random weight factorisation (FactorizedLinear).

Shapes and dtypes, forwards against hand-written numpy formulas, the softmax invariant of
LDA's gates (hypothesis), RWF's equality with the plain network at initialisation, and
jit / vmap / grad / second input derivatives.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import examples

from pinnx import operators
from pinnx.nn._lda import LDA
from pinnx.nn._mlp import MLP
from pinnx.nn._modified_mlp import ModifiedMLP
from pinnx.nn._rwf import FactorizedLinear, rwf_params

NETS = {
    "modified_mlp": lambda d, out, **kw: ModifiedMLP(d, out, 8, 3, **kw),
    "modified_mlp_rwf": lambda d, out, **kw: ModifiedMLP(d, out, 8, 3, rwf=True, **kw),
    "lda": lambda d, out, **kw: LDA(d, out, 8, 2, **kw),
}


def _np(layer):
    """(W, b) of a linear layer as float64 numpy arrays (b = 0 when it has none)."""
    w = np.asarray(layer.weight, np.float64)
    b = np.zeros(w.shape[0]) if getattr(layer, "bias", None) is None else np.asarray(
        layer.bias, np.float64)
    return w, b


def _params(model):
    return sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))


# ---------------------------------------------------------------- common behaviour


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)])
def test_shapes_and_dtypes(name, dtype):
    key = jax.random.key(0)
    m = NETS[name](3, "scalar", key=key, dtype=dtype)
    y = m(jnp.ones(3, dtype))
    assert y.shape == () and y.dtype == dtype
    v = NETS[name](3, 2, key=key, dtype=dtype)
    out = jax.vmap(v)(jnp.ones((5, 3), dtype))
    assert out.shape == (5, 2) and out.dtype == dtype
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(eqx.filter(m, eqx.is_array)))


@pytest.mark.parametrize("name", sorted(NETS))
def test_jit_vmap_grad(name):
    m = NETS[name](2, "scalar", key=jax.random.key(1))
    x = jax.random.uniform(jax.random.key(2), (6, 2), minval=-1, maxval=1)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(m))
    eager = jax.vmap(m)(x)
    np.testing.assert_allclose(eqx.filter_jit(jax.vmap(m))(x), eager, rtol=1e-12)
    np.testing.assert_allclose(eager, [m(xi) for xi in x], rtol=1e-12)

    def loss(mm):
        return jnp.mean(jax.vmap(mm)(x) ** 2)

    g = eqx.filter_jit(eqx.filter_grad(loss))(m)
    assert jax.tree.structure(g) == jax.tree.structure(eqx.filter(m, eqx.is_inexact_array))
    leaves = jax.tree.leaves(g)
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    # every parameter array gets a gradient somewhere (nothing is disconnected)
    assert all(np.any(np.asarray(leaf) != 0) for leaf in leaves)
    # directional check of the gradient with a central difference along a random direction
    p, static = eqx.partition(m, eqx.is_inexact_array)
    direction = jax.tree.map(lambda a: jax.random.normal(jax.random.key(3), a.shape, a.dtype),
                             p)
    eps = 1e-6
    fd = (loss(eqx.combine(jax.tree.map(lambda a, b: a + eps * b, p, direction), static))
          - loss(eqx.combine(jax.tree.map(lambda a, b: a - eps * b, p, direction), static))
          ) / (2 * eps)
    dot = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(direction),
                                                strict=True))
    np.testing.assert_allclose(dot, fd, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(NETS))
def test_laplacian_matches_hessian_trace(name):
    """PINN residuals take second input derivatives in forward mode: check them."""
    m = NETS[name](2, "scalar", key=jax.random.key(4))
    x = jnp.array([0.3, -0.7])
    np.testing.assert_allclose(operators.laplacian(m, x), jnp.trace(jax.hessian(m)(x)),
                               rtol=1e-10)


@pytest.mark.parametrize("cls", [ModifiedMLP, LDA])
def test_bad_arguments(cls):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="depth"):
        cls(2, "scalar", 8, 0, key=key)
    with pytest.raises(ValueError, match="out_size"):
        cls(2, "vector", 8, 2, key=key)
    with pytest.raises((ValueError, TypeError), match=r"one point of shape \(2,\)|in_size"):
        cls(2, 1, 8, 2, key=key)(jnp.ones((4, 2)))


# ---------------------------------------------------------------- modified MLP


def _modified_mlp_reference(m, x):
    """U, V encoders; H1 = tanh(W1 x + b1); Z = tanh(W H + b); H <- (1 - Z) U + Z V."""
    x = np.asarray(x, np.float64)
    wu, bu = _np(m.encoder_u)
    wv, bv = _np(m.encoder_v)
    u, v = np.tanh(wu @ x + bu), np.tanh(wv @ x + bv)
    w1, b1 = _np(m.layers[0])
    h = np.tanh(w1 @ x + b1)
    for layer in m.layers[1:-1]:
        w, b = _np(layer)
        z = np.tanh(w @ h + b)
        h = (1 - z) * u + z * v
    w, b = _np(m.layers[-1])
    return w @ h + b


@pytest.mark.parametrize("rwf", [False, True])
def test_modified_mlp_forward_matches_formula(rwf):
    m = ModifiedMLP(3, 2, 7, 4, key=jax.random.key(5), rwf=rwf)
    assert len(m.layers) == 5  # input layer, 3 gated layers, output layer
    xs = jax.random.normal(jax.random.key(6), (4, 3))
    for x, u in zip(xs, jax.vmap(m)(xs), strict=True):
        np.testing.assert_allclose(u, _modified_mlp_reference(m, x), rtol=1e-12, atol=1e-14)


def test_modified_mlp_parameter_count():
    d, w, depth = 2, 10, 3
    m = ModifiedMLP(d, "scalar", w, depth, key=jax.random.key(0))
    plain = MLP(d, "scalar", w, depth, key=jax.random.key(0))
    assert _params(m) == _params(plain) + 2 * (d + 1) * w


def test_modified_mlp_gates_between_encoders():
    """A gate Z = 0 passes U on, a gate Z = 1 passes V on (whatever the layer's input)."""
    m = ModifiedMLP(2, "scalar", 6, 3, key=jax.random.key(7))
    x = jnp.array([0.2, -0.4])
    wo, bo = _np(m.layers[-1])
    for bias, enc in ((0.0, m.encoder_u), (50.0, m.encoder_v)):  # tanh(50) = 1 in float64
        forced = eqx.tree_at(lambda mm: (mm.layers[-2].weight, mm.layers[-2].bias), m,
                             (jnp.zeros((6, 6)), jnp.full(6, bias)))
        w, b = _np(enc)
        np.testing.assert_allclose(forced(x), (wo @ np.tanh(w @ np.asarray(x) + b) + bo)[0],
                                   rtol=1e-12)


# ---------------------------------------------------------------- LDA


def _lda_reference(m, x):
    x = np.asarray(x, np.float64)
    h = x
    for layer in m.layers:
        w, b = _np(layer.dense)
        e1w, e1b = _np(layer.encode1)
        e2w, e2b = _np(layer.encode2)
        g1, _ = _np(layer.gate_in)
        g2, _ = _np(layer.gate_out)
        a = np.tanh(w @ h + b)
        e1, e2 = np.tanh(e1w @ x + e1b), np.tanh(e2w @ x + e2b)
        s = g2 @ np.tanh(g1 @ np.concatenate([a, e1, e2]))
        s1, s2 = s[: a.size], s[a.size :]
        w1 = np.exp(s1) / (np.exp(s1) + np.exp(s2))
        w2 = np.exp(s2) / (np.exp(s1) + np.exp(s2))
        h = a + w1 * e1 + w2 * e2
    w, b = _np(m.output)
    return w @ h + b


def test_lda_forward_matches_formula():
    m = LDA(3, 2, 6, 3, key=jax.random.key(8), attention_width=5)
    # move every parameter off its initial value so zero biases do not hide a bug
    p, static = eqx.partition(m, eqx.is_inexact_array)
    rng = np.random.default_rng(9)
    p = jax.tree.map(lambda a: a + 0.3 * rng.standard_normal(a.shape), p)
    m = eqx.combine(p, static)
    xs = jax.random.normal(jax.random.key(10), (4, 3))
    for x, u in zip(xs, jax.vmap(m)(xs), strict=True):
        np.testing.assert_allclose(u, _lda_reference(m, x), rtol=1e-12, atol=1e-14)


def test_lda_shapes_and_parameter_count():
    d, w, depth, att = 2, 10, 3, 4
    m = LDA(d, "scalar", w, depth, key=jax.random.key(0), attention_width=att)
    layer = m.layers[1]
    assert layer.dense.weight.shape == (w, w)
    assert layer.encode1.weight.shape == (w, d) and layer.encode2.weight.shape == (w, d)
    assert layer.gate_in.weight.shape == (att, 3 * w) and layer.gate_in.bias is None
    assert layer.gate_out.weight.shape == (2 * w, att) and layer.gate_out.bias is None
    per_layer = 2 * w * (d + 1) + 5 * w * att
    expected = (w * (d + 1) + per_layer) + (depth - 1) * (w * (w + 1) + per_layer) + w + 1
    assert _params(m) == expected
    assert m.attention_weights(jnp.zeros(d)).shape == (depth, 2, w)


@eqx.filter_jit
def _lda_probe(m, x):
    """Gate weights at x, u(x), and u(x) recomputed from those weights."""
    w = m.attention_weights(x)
    h = x
    for layer, lw in zip(m.layers, w, strict=True):
        a = jnp.tanh(layer.dense(h))
        h = a + lw[0] * jnp.tanh(layer.encode1(x)) + lw[1] * jnp.tanh(layer.encode2(x))
    return w, m(x), m.output(h)[0]


@given(
    seed=st.integers(0, 2**31 - 1),
    d=st.integers(1, 2),
    width=st.sampled_from([1, 5]),
    depth=st.integers(1, 2),
    scale=st.sampled_from([0.0, 1.0, 100.0]),
)
@examples(25)
def test_lda_attention_is_a_softmax_per_feature(seed, d, width, depth, scale):
    key, kx = jax.random.split(jax.random.key(seed))
    m = LDA(d, "scalar", width, depth, key=key)
    x = scale * jax.random.normal(kx, (d,))
    w, u, u_from_weights = _lda_probe(m, x)
    w = np.asarray(w)
    assert w.shape == (depth, 2, width)
    assert np.all((w > 0) & (w < 1))
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    # the weights are the ones the forward uses
    np.testing.assert_allclose(u, u_from_weights, rtol=1e-12, atol=1e-14)


def test_lda_bad_attention_width():
    with pytest.raises(ValueError, match="attention_width"):
        LDA(2, "scalar", 8, 2, key=jax.random.key(0), attention_width=0)


# ---------------------------------------------------------------- random weight factorisation


@pytest.mark.parametrize("cls", [MLP, ModifiedMLP])
@pytest.mark.parametrize("rwf", [True, (0.5, 0.3)])
def test_rwf_equals_plain_network_at_init(cls, rwf):
    key = jax.random.key(11)
    plain = cls(2, 3, 16, 3, key=key)
    fact = cls(2, 3, 16, 3, key=key, rwf=rwf)
    assert all(isinstance(layer, FactorizedLinear) for layer in fact.layers)
    x = jax.random.uniform(jax.random.key(12), (50, 2), minval=-1, maxval=1)
    np.testing.assert_allclose(jax.vmap(fact)(x), jax.vmap(plain)(x), rtol=1e-13, atol=1e-15)
    # but the parameters differ: V = W / exp(s) with s ~ N(mu, sigma)
    mu, sigma = rwf_params(rwf)
    s = np.concatenate([np.asarray(layer.s) for layer in fact.layers])
    assert abs(s.mean() - mu) < 4 * sigma / np.sqrt(s.size) + 1e-12
    assert 0.7 * sigma < s.std() < 1.3 * sigma
    np.testing.assert_allclose(np.exp(fact.layers[0].s)[:, None] * fact.layers[0].v,
                               plain.layers[0].weight, rtol=1e-13)


def test_factorized_linear_gradient_chain_rule():
    """dL/ds_i = sum_j dL/dW_ij W_ij and dL/dV = diag(exp(s)) dL/dW."""
    w = jax.random.normal(jax.random.key(13), (4, 3))
    b = jnp.zeros(4)
    lin = FactorizedLinear.from_weight(w, b, key=jax.random.key(14))
    x = jnp.array([0.5, -1.0, 2.0])

    def loss_w(w):
        return jnp.sum(jnp.sin(w @ x + b))

    gw = jax.grad(loss_w)(lin.weight)
    g = jax.grad(lambda m: jnp.sum(jnp.sin(m(x))))(lin)
    np.testing.assert_allclose(g.s, jnp.sum(gw * lin.weight, axis=1), rtol=1e-12)
    np.testing.assert_allclose(g.v, jnp.exp(lin.s)[:, None] * gw, rtol=1e-12)


def test_rwf_bad_arguments():
    key = jax.random.key(0)
    for bad in [(1.0, -0.1), (float("nan"), 0.1), (1.0,), "yes"]:
        # the type checker of the test run may refuse the last two before MLP does
        with pytest.raises((ValueError, TypeError), match="rwf"):
            MLP(2, 1, 8, 2, key=key, rwf=bad)
    with pytest.raises((ValueError, TypeError), match="weight"):
        FactorizedLinear.from_weight(jnp.ones((2, 3)), jnp.zeros(3), key=key)
