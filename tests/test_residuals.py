"""Residual builders against hand-computed residuals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnx import operators as D
from pinnx import residuals as R


class Field:
    """u(x, t) = sin(x) * exp(t) + 0.5 x t, a field with closed-form derivatives."""

    def __call__(self, p):
        x, t = p
        return jnp.sin(x) * jnp.exp(t) + 0.5 * x * t


class VectorField:
    def __call__(self, p):
        x, t = p
        return jnp.stack([x * t, jnp.cos(x)])


U = Field()
rng = np.random.default_rng(0)
PTS = jnp.asarray(rng.uniform(-1, 1, (7, 2)))
X, T = PTS[:, 0], PTS[:, 1]


def test_pde_term_and_losses_dictionary():
    def heat(u, p):
        return D.time_derivative(u, p) - D.partial(u, p, (0, 0))

    losses = R.losses(pde=R.pde(heat), bc=R.dirichlet(lambda p: p[0]), ic=R.initial(1.0))
    batch = {"pde": PTS, "bc": PTS[:3], "ic": PTS[3:]}
    # u_t - u_xx = sin(x) e^t + 0.5 x + sin(x) e^t
    r_pde = 2 * jnp.sin(X) * jnp.exp(T) + 0.5 * X
    u = jnp.sin(X) * jnp.exp(T) + 0.5 * X * T
    raw = losses.residuals(U, batch)
    np.testing.assert_allclose(raw["pde"], r_pde, rtol=1e-12)
    np.testing.assert_allclose(raw["bc"], u[:3] - X[:3], rtol=1e-12)
    np.testing.assert_allclose(raw["ic"], u[3:] - 1.0, rtol=1e-12)
    values = losses(U, batch)
    assert set(values) == {"pde", "bc", "ic"}
    np.testing.assert_allclose(values["pde"], jnp.mean(r_pde**2), rtol=1e-12)
    pointwise = losses.pointwise(U, batch)
    assert pointwise["bc"].shape == (3,)
    np.testing.assert_allclose(jnp.mean(pointwise["ic"]), values["ic"], rtol=1e-12)


def test_neumann_periodic_velocity_and_data():
    n = jnp.array([1.0, 0.0])
    neu = R.neumann(n, value=lambda p: 2.0)(U, PTS)
    np.testing.assert_allclose(neu, jnp.cos(X) * jnp.exp(T) + 0.5 * T - 2.0, rtol=1e-12)
    vel = R.initial_velocity(0.0)(U, PTS)
    np.testing.assert_allclose(vel, jnp.sin(X) * jnp.exp(T) + 0.5 * X, rtol=1e-12)
    per = R.periodic(dim=0, period=2 * jnp.pi, derivatives=1)
    sin_only = lambda p: jnp.sin(p[0]) * jnp.exp(p[1])  # noqa: E731
    np.testing.assert_allclose(per(sin_only, PTS), 0.0, atol=1e-12)
    assert per(U, PTS).shape == (7, 2)  # value and first derivative at each point
    np.testing.assert_allclose(per(U, PTS)[:, 0], -0.5 * 2 * jnp.pi * T, rtol=1e-12)
    values = jnp.arange(7.0)
    dat = R.data()(U, (PTS, values))
    np.testing.assert_allclose(dat, jax.vmap(U)(PTS) - values, rtol=1e-12)


def test_vector_residuals_sum_components():
    losses = R.losses(fit=R.dirichlet(0.0))
    batch = {"fit": PTS}
    assert losses.residuals(VectorField(), batch)["fit"].shape == (7, 2)
    ref = jnp.mean((X * T) ** 2 + jnp.cos(X) ** 2)
    np.testing.assert_allclose(losses(VectorField(), batch)["fit"], ref, rtol=1e-12)


def test_terms_work_under_jit_and_grad():
    from pinnx.nn import MLP

    model = MLP(2, "scalar", 8, 2, key=jax.random.key(0))
    losses = R.losses(pde=R.pde(lambda u, p: D.partial(u, p, (0, 0)) - u(p)))
    batch = {"pde": PTS}
    g = jax.jit(jax.grad(lambda m: losses(m, batch)["pde"]))(model)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g))


@pytest.mark.parametrize(
    "build, batch, message",
    [
        (lambda: R.losses(pde=R.pde(lambda u, p: u(p))), {"bc": PTS}, "no entry 'pde'"),
        (lambda: R.losses(pde=R.pde(lambda u, p: u(p))), {"pde": PTS[0]}, r"\(N, d\) array"),
        (lambda: R.losses(pde=R.pde(lambda u, p: jnp.ones((2, 2)))), {"pde": PTS},
         "scalar or a vector per point"),
    ],
)
def test_bad_input(build, batch, message):
    with pytest.raises(ValueError, match=message):
        build()(U, batch)


def test_losses_arguments():
    with pytest.raises(ValueError, match="at least one term"):
        R.losses()
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's runtime check
        R.losses(pde=lambda m, b: 0.0)
    both = R.losses({"a": R.dirichlet()}, b=R.dirichlet(1.0))
    assert set(both.terms) == {"a", "b"}
    with pytest.raises(ValueError, match="derivatives must be >= 0"):
        R.periodic(0, 1.0, derivatives=-1)
