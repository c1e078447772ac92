"""Tests for pinnx.operators against closed forms (float64 unless a test says otherwise).

Main closed form: f(z) = sin(a.z) exp(b.z) = Im exp(c.z) with c = b + i a, so any mixed
partial over dims (i_1..i_n) is Im(prod_k c_{i_k} exp(c.z)); the companion cos(a.z) exp(b.z)
is the real part, which gives a vector field with closed-form derivatives of every order.
"""

import inspect
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from pinnx import operators as ops

D = 3
TOL = dict(rtol=1e-10, atol=1e-10)

coords = hnp.arrays(np.float64, D, elements=st.floats(-1.0, 1.0))
coeffs = hnp.arrays(np.float64, D, elements=st.floats(-1.5, 1.5))
# Orders 0..4, pure and mixed, negative indices. Fixed (not drawn) so each test compiles once
# and hypothesis varies the points and coefficients.
DIMS_CASES = [
    (), (0,), (-1,), (0, 0), (0, 1), (2, -3), (1, 1, 1), (0, 1, 2), (2, 0, 2),
    (0, 0, 0, 0), (0, 1, 1, 2), (-1, -1, 0, 1),
]  # fmt: skip


def sin_exp(a, b):
    return lambda z: jnp.sin(a @ z) * jnp.exp(b @ z)


def cos_exp(a, b):
    return lambda z: jnp.cos(a @ z) * jnp.exp(b @ z)


def sin_cos_exp(a, b):
    """Vector field (sin(a.z) exp(b.z), cos(a.z) exp(b.z))."""
    return lambda z: jnp.stack([sin_exp(a, b)(z), cos_exp(a, b)(z)])


def sin_exp_partial(a, b, z, dims):
    """Closed form of d^n/dz_dims [sin(a.z) exp(b.z)] (imag) and of cos(a.z) exp(b.z) (real)."""
    c = np.asarray(b) + 1j * np.asarray(a)
    val = np.prod([c[i] for i in dims]) * np.exp(c @ np.asarray(z))
    return val.imag, val.real


# --------------------------------------------------------------------------- partial


@jax.jit
def _all_partials(z, a, b):
    return [
        (ops.partial(sin_exp(a, b), z, dims), ops.partial(sin_cos_exp(a, b), z, dims))
        for dims in DIMS_CASES
    ]


@given(z=coords, a=coeffs, b=coeffs)
def test_partial_closed_form_scalar_and_vector(z, a, b):
    for dims, (scalar, vector) in zip(DIMS_CASES, _all_partials(z, a, b), strict=True):
        assert scalar.shape == () and scalar.dtype == jnp.float64
        assert vector.shape == (2,) and vector.dtype == jnp.float64
        expected = sin_exp_partial(a, b, z, dims)
        np.testing.assert_allclose(scalar, expected[0], **TOL)
        np.testing.assert_allclose(vector, expected, **TOL)


POWERS = (4, 2, 3)


@jax.jit
def _monomial_partials(z):
    f = lambda p: p[0] ** POWERS[0] * p[1] ** POWERS[1] * p[2] ** POWERS[2]  # noqa: E731
    return [ops.partial(f, z, dims) for dims in DIMS_CASES]


@given(z=coords)
def test_partial_monomial(z):
    """d^n (prod_j z_j^p_j): falling factorial p_j!/(p_j-c_j)! z_j^(p_j-c_j), c_j = count of j."""
    for dims, got in zip(DIMS_CASES, _monomial_partials(z), strict=True):
        expected = 1.0
        for j, p in enumerate(POWERS):
            c = sum(1 for i in dims if i % D == j)
            expected *= math.perm(p, c) * z[j] ** (p - c) if c <= p else 0.0
        np.testing.assert_allclose(got, expected, **TOL)


def test_partial_int_dims_and_empty():
    f = lambda z: z[0] ** 2 * z[1]  # noqa: E731
    x = jnp.array([3.0, 2.0])
    assert ops.partial(f, x, 0) == 12.0
    assert ops.partial(f, x, -1) == 9.0
    assert ops.partial(f, x, ()) == 18.0
    assert ops.partial(f, x, [0, 1]) == 6.0  # any sequence of ints
    assert ops.partial(f, x, (0, 1)) == ops.partial(f, x, (1, 0))


# --------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("order", range(5))
def test_derivatives_closed_form(order):
    a, b, z = np.array([0.7, -1.1, 0.4]), np.array([0.3, 0.2, -0.5]), np.array([0.2, -0.6, 0.9])
    f = sin_exp(jnp.asarray(a), jnp.asarray(b))
    for dim in (0, 2, -2):
        out = ops.derivatives(f, jnp.asarray(z), dim, order)
        assert isinstance(out, tuple) and len(out) == order + 1
        for k, got in enumerate(out):
            assert got.shape == () and got.dtype == jnp.float64
            np.testing.assert_allclose(got, sin_exp_partial(a, b, z, (dim,) * k)[0], **TOL)


@jax.jit
def _derivatives_and_partials(z, a, b):
    f = sin_cos_exp(a, b)
    return {
        dim: (ops.derivatives(f, z, dim, 4), [ops.partial(f, z, (dim,) * k) for k in range(5)])
        for dim in (0, 1, -1)
    }


@given(z=coords, a=coeffs, b=coeffs)
def test_derivatives_equals_partial(z, a, b):
    for dim, (derivs, partials) in _derivatives_and_partials(z, a, b).items():
        for k in range(5):
            np.testing.assert_allclose(derivs[k], partials[k], **TOL)
            np.testing.assert_allclose(derivs[k], sin_exp_partial(a, b, z, (dim,) * k), **TOL)


# --------------------------------------------------------------------------- first order


def test_grad_and_jacobian():
    a, b, z = np.array([0.7, -1.1, 0.4]), np.array([0.3, 0.2, -0.5]), np.array([0.2, -0.6, 0.9])
    a_, b_, z_ = jnp.asarray(a), jnp.asarray(b), jnp.asarray(z)
    expected = np.array([sin_exp_partial(a, b, z, (j,)) for j in range(D)])  # (d, 2)
    g = ops.grad(sin_exp(a_, b_), z_)
    assert g.shape == (D,)
    np.testing.assert_allclose(g, expected[:, 0], **TOL)
    np.testing.assert_allclose(ops.jacobian(sin_exp(a_, b_), z_), expected[:, 0], **TOL)
    f = lambda p: jnp.stack([sin_exp(a_, b_)(p), cos_exp(a_, b_)(p)])  # noqa: E731
    jac = ops.jacobian(f, z_)
    assert jac.shape == (2, D)
    np.testing.assert_allclose(jac, expected.T, **TOL)
    np.testing.assert_allclose(ops.grad(f, z_), expected.T, **TOL)


# --------------------------------------------------------------------------- vector calculus


def field3(z):
    """F(x, y, t) = (x^2 y, y^3 + sin x, x y t)."""
    x, y, t = z[0], z[1], z[2]
    return jnp.stack([x**2 * y, y**3 + jnp.sin(x), x * y * t])


@jax.jit
def _vector_calculus(z):
    vel = lambda p: field3(p)[:2]  # noqa: E731  (2-component velocity of (x, y, t))
    return dict(
        div=ops.divergence(field3, z),
        lap=ops.laplacian(field3, z),
        div_xy=ops.divergence(vel, z, dims=(0, 1)),
        div_neg=ops.divergence(vel, z, dims=(0, -2)),
        div_swapped=ops.divergence(vel, z, dims=(1, 0)),
        lap_x=ops.laplacian(vel, z, dims=(0,)),
    )


@given(z=coords)
def test_divergence_and_laplacian_of_vector_field(z):
    x, y, _ = z
    out = _vector_calculus(z)
    assert out["div"].shape == () and out["lap"].shape == (3,)
    np.testing.assert_allclose(out["div"], 2 * x * y + 3 * y**2 + x * y, **TOL)
    np.testing.assert_allclose(out["lap"], [2 * y, 6 * y - np.sin(x), 0.0], **TOL)
    np.testing.assert_allclose(out["div_xy"], 2 * x * y + 3 * y**2, **TOL)
    np.testing.assert_allclose(out["div_neg"], 2 * x * y + 3 * y**2, **TOL)
    # Component i along dims[i]: d(x^2 y)/dy + d(y^3 + sin x)/dx.
    np.testing.assert_allclose(out["div_swapped"], x**2 + np.cos(x), **TOL)
    np.testing.assert_allclose(out["lap_x"], [2 * y, -np.sin(x)], **TOL)


@jax.jit
def _scalar_second_order(z, a, b):
    f = sin_exp(a, b)
    return ops.laplacian(f, z), ops.laplacian(f, z, dims=(0, -1)), ops.hessian(f, z)


@given(z=coords, a=coeffs, b=coeffs)
def test_laplacian_and_hessian_scalar_closed_form(z, a, b):
    lap, lap_sub, hess = _scalar_second_order(z, a, b)
    # Delta Im exp(c.z) = Im (c.c) exp(c.z)
    c = b + 1j * a
    assert lap.shape == () and hess.shape == (D, D)
    np.testing.assert_allclose(lap, ((c @ c) * np.exp(c @ z)).imag, **TOL)
    sub = sum(sin_exp_partial(a, b, z, (i, i))[0] for i in (0, 2))
    np.testing.assert_allclose(lap_sub, sub, **TOL)
    expected = [[sin_exp_partial(a, b, z, (i, j))[0] for j in range(D)] for i in range(D)]
    np.testing.assert_allclose(hess, expected, **TOL)


@pytest.mark.parametrize("order", range(5))
def test_time_derivative(order):
    # u(x, t) = sin(2x) exp(-3t): d^k/dt^k = (-3)^k u; time is the last coordinate.
    u = lambda z: jnp.sin(2 * z[0]) * jnp.exp(-3 * z[1])  # noqa: E731
    x = jnp.array([0.4, 0.7])
    expected = (-3.0) ** order * np.sin(0.8) * np.exp(-2.1)
    np.testing.assert_allclose(ops.time_derivative(u, x, order), expected, **TOL)
    # Time first, explicitly.
    v = lambda z: u(z[::-1])  # noqa: E731
    np.testing.assert_allclose(ops.time_derivative(v, x[::-1], order, time_dim=0), expected, **TOL)
    assert ops.time_derivative(u, x) == ops.partial(u, x, -1)


# --------------------------------------------------------------------------- dtype


ALL_OPS = {
    "partial": lambda f, x: ops.partial(f, x, (0, 1, 1)),
    "derivatives": lambda f, x: ops.derivatives(f, x, -1, 3)[-1],
    "grad": ops.grad,
    "jacobian": ops.jacobian,
    "laplacian": ops.laplacian,
    "time_derivative": lambda f, x: ops.time_derivative(f, x, 2),
    "hessian": ops.hessian,
}


ALL_OPS["divergence"] = ops.divergence
# Output shapes for field3 (m = 3, d = 3) and for its scalar first component.
SHAPES = {
    "partial": ((3,), ()),
    "derivatives": ((3,), ()),
    "grad": ((3, D), (D,)),
    "jacobian": ((3, D), (D,)),
    "laplacian": ((3,), ()),
    "time_derivative": ((3,), ()),
    "hessian": ((3, D, D), (D, D)),
    "divergence": ((), None),
}


def _all_ops(x):
    """Every operator on the vector field field3 and (except divergence) a scalar field."""
    scalar = lambda z: field3(z)[0]  # noqa: E731
    return {
        name: (op(field3, x), None if name == "divergence" else op(scalar, x))
        for name, op in ALL_OPS.items()
    }


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_preserved(dtype):
    x = jnp.array([0.3, -0.2, 0.5], dtype=dtype)
    got = jax.jit(_all_ops)(x)
    ref = jax.jit(_all_ops)(x.astype(jnp.float64))
    for name, (vec, sca) in got.items():
        assert vec.dtype == dtype and vec.shape == SHAPES[name][0], name
        assert sca is None or (sca.dtype == dtype and sca.shape == SHAPES[name][1]), name
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == jnp.float32 else TOL
        np.testing.assert_allclose(vec, ref[name][0], err_msg=name, **tol)


def test_dtype_preserved_eager():
    x = jnp.array([0.3, -0.2, 0.5], dtype=jnp.float32)
    assert ops.partial(field3, x, (0, 1)).dtype == jnp.float32
    assert ops.derivatives(field3, x, 0, 2)[2].dtype == jnp.float32
    assert ops.laplacian(field3, x).dtype == jnp.float32


# --------------------------------------------------------------------------- transformations


def test_jit_and_vmap_over_points():
    points = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (5, D)))
    batched = jax.jit(jax.vmap(_all_ops))(points)
    single = jax.jit(_all_ops)
    for n, p in enumerate(points):
        for name, (vec, sca) in single(p).items():
            np.testing.assert_allclose(batched[name][0][n], vec, err_msg=name, **TOL)
            if sca is not None:
                np.testing.assert_allclose(batched[name][1][n], sca, err_msg=name, **TOL)


def _mlp(w, z, out=1):
    """Tiny tanh MLP with flat parameter vector w; scalar output if out == 1."""
    d, h = z.shape[0], 8
    i = 0
    w1 = w[i : i + d * h].reshape(d, h)
    i += d * h
    b1 = w[i : i + h]
    i += h
    w2 = w[i : i + h * out].reshape(h, out)
    i += h * out
    y = jnp.tanh(z @ w1 + b1) @ w2 + w[i : i + out]
    return y[0] if out == 1 else y


def _n_params(d, out):
    return d * 8 + 8 + 8 * out + out


def test_grad_through_partial_analytic():
    """L(w) = sum_p (d^2/dx^2 sin(w.p))^2 = sum_p w0^4 sin^2(w.p)."""
    X = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (7, 2)))
    w = jnp.array([0.9, -0.4])

    def loss(w):
        u_xx = jax.vmap(lambda p: ops.partial(lambda z: jnp.sin(w @ z), p, (0, 0)))(X)
        return jnp.sum(u_xx**2)

    s, c = jnp.sin(X @ w), jnp.cos(X @ w)
    e0 = jnp.array([1.0, 0.0])  # d(w0)/dw
    expected = 4 * w[0] ** 3 * jnp.sum(s**2) * e0 + 2 * w[0] ** 4 * ((s * c) @ X)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(w), expected, **TOL)


def _residual_losses():
    """PINN-style losses that use every operator, as functions of flat MLP parameters."""
    nu = 0.01 / np.pi
    X = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (6, 2)))

    def burgers(w):
        def r(p):
            f = lambda z: _mlp(w, z)  # noqa: E731
            u, u_x, u_xx = ops.derivatives(f, p, 0, 2)
            return ops.time_derivative(f, p) + u * u_x - nu * u_xx

        return jnp.mean(jax.vmap(r)(X) ** 2)

    def vector(w):
        def r(p):
            f = lambda z: _mlp(w, z, out=2)  # noqa: E731
            return (
                ops.divergence(f, p) ** 2
                + jnp.sum(ops.laplacian(f, p) ** 2)
                + jnp.sum(ops.partial(f, p, (0, 1, 1)) ** 2)
                + jnp.sum(ops.hessian(lambda z: f(z)[0], p) ** 2)
                + jnp.sum(ops.jacobian(f, p) ** 2)
            )

        return jnp.mean(jax.vmap(r)(X))

    return {"burgers": (burgers, _n_params(2, 1)), "vector": (vector, _n_params(2, 2))}


@pytest.mark.parametrize("which", ["burgers", "vector"])
def test_grad_through_operators_matches_finite_differences(which):
    loss, n = _residual_losses()[which]
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.normal(size=n) * 0.7)
    v = jnp.asarray(rng.normal(size=n))
    value_and_grad, h = jax.jit(jax.value_and_grad(loss)), 1e-5  # one compile for both
    g = value_and_grad(w)[1]
    fd = (value_and_grad(w + h * v)[0] - value_and_grad(w - h * v)[0]) / (2 * h)
    np.testing.assert_allclose(g @ v, fd, rtol=1e-6)


# --------------------------------------------------------------------------- errors


def _body(fn):
    """The function body, past jaxtyping's runtime check when the test suite installs it.

    Under ``--jaxtyping-packages`` a non-1-D x is rejected by the annotation (a TypeError)
    before the body runs; users without that hook get the body's ValueError.
    """
    return inspect.unwrap(fn)


@pytest.mark.parametrize("name", list(ALL_OPS))
@pytest.mark.parametrize("shape", [(), (2, 3)])
def test_non_1d_point_raises(name, shape):
    x = jnp.zeros(shape)
    fn = {
        "partial": lambda f, x: _body(ops.partial)(f, x, 0),
        "derivatives": lambda f, x: _body(ops.derivatives)(f, x, 0, 2),
        "time_derivative": lambda f, x: _body(ops.time_derivative)(f, x),
    }.get(name, lambda f, x: _body(getattr(ops, name))(f, x))
    with pytest.raises(ValueError, match=r"shape \(d,\), got shape"):
        fn(jnp.sum, x)
    with pytest.raises((ValueError, TypeError)):  # the public, possibly type-checked, entry
        getattr(ops, name)(jnp.sum, x)


def test_dims_out_of_range_raise():
    f, x = jnp.sum, jnp.zeros(3)
    for call in (
        lambda: ops.partial(f, x, 3),
        lambda: ops.partial(f, x, (0, -4)),
        lambda: ops.derivatives(f, x, 5, 2),
        lambda: ops.time_derivative(f, x, 1, time_dim=3),
        lambda: ops.laplacian(f, x, dims=(0, 3)),
        lambda: ops.divergence(lambda z: z[:2], x, dims=(0, 7)),
    ):
        with pytest.raises(ValueError, match=r"out of range .* d=3 .*\[-3, 2\]"):
            call()


def test_other_value_errors():
    x = jnp.zeros(3)
    with pytest.raises(ValueError, match="m=2 components but dims=\\(0, 1, 2\\) has 3"):
        ops.divergence(lambda z: z[:2], x, dims=(0, 1, 2))
    with pytest.raises(ValueError, match="m=4 components but x has only d=3"):
        ops.divergence(lambda z: jnp.concatenate([z, z[:1]]), x)
    with pytest.raises(ValueError, match=r"vector field .* got shape \(\)"):
        ops.divergence(jnp.sum, x)
    with pytest.raises(ValueError, match=r"m >= 1, got shape \(0,\)"):
        ops.divergence(lambda z: z[:0], x)
    with pytest.raises(ValueError, match="distinct"):
        ops.divergence(lambda z: z[:2], x, dims=(0, -3))
    with pytest.raises(ValueError, match="distinct"):
        ops.laplacian(jnp.sum, x, dims=(1, 1))
    with pytest.raises(ValueError, match="at least one"):
        ops.laplacian(jnp.sum, x, dims=())
    with pytest.raises(ValueError, match="non-negative"):
        ops.derivatives(jnp.sum, x, 0, -1)
    with pytest.raises(ValueError, match="non-negative"):
        ops.time_derivative(jnp.sum, x, -2)
