"""The Burgers Problem: losses, sampler, reference, error metric, figure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pinnx
from pinnx.problems import PROBLEMS, burgers, relative_l2


@pytest.fixture(scope="module")
def problem():
    return burgers(n_pde=64, n_ic=16, n_bc=16)


def test_registry_and_shapes(problem):
    assert PROBLEMS["burgers"] is burgers
    batch = problem.sample(jax.random.key(0))
    assert batch["pde"].shape == (64, 2) and batch["ic"].shape == (16, 2)
    assert np.all(np.asarray(batch["ic"][:, 1]) == 0)
    assert np.all(np.abs(np.asarray(batch["bc"][:, 0])) == 1)
    assert problem.reference.shape == (100, 256) and problem.test_points.shape == (25600, 2)
    # the reference's first row is the initial condition
    np.testing.assert_allclose(problem.reference[0], -np.sin(np.pi * problem.axes[0]),
                               atol=1e-12)


def test_sampler_is_jittable_and_reproducible(problem):
    a = jax.jit(problem.sample)(jax.random.key(3))
    b = problem.sample(jax.random.key(3))
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), a, b)


class Exact:
    """A 'model' that interpolates the reference: its relative error is ~0."""

    def __init__(self, problem):
        self.problem = problem
        self.w = jnp.zeros(())

    def __call__(self, p):
        x, t = self.problem.axes
        i = jnp.argmin(jnp.abs(jnp.asarray(t) - p[1]))
        return jnp.interp(p[0], jnp.asarray(x), jnp.asarray(self.problem.reference)[i])


def test_losses_vanish_on_the_reference_and_error_metric(problem):
    exact = Exact(problem)
    assert problem.relative_l2(exact) < 1e-12
    batch = problem.sample(jax.random.key(0))
    values = problem.losses.residuals(exact, batch)
    np.testing.assert_allclose(values["ic"], 0, atol=2e-4)  # linear interpolation error
    np.testing.assert_allclose(values["bc"], 0, atol=1e-12)
    assert relative_l2(2 * problem.reference, problem.reference) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        relative_l2(problem.reference[:3], problem.reference)


def test_pde_residual_on_a_closed_form_field():
    """The residual function, applied to a smooth stand-in: u = -sin(pi x) exp(-nu pi^2 t)
    solves u_t = nu u_xx, so the residual equals the advection term u u_x."""
    problem = burgers(n_pde=32)
    nu = pinnx.problems.burgers_reference.NU

    def heat_mode(p):
        return -jnp.sin(jnp.pi * p[0]) * jnp.exp(-nu * jnp.pi**2 * p[1])

    pts = problem.sample(jax.random.key(0))["pde"]
    r = problem.losses.terms["pde"](heat_mode, pts)
    u = jax.vmap(heat_mode)(pts)
    ux = -jnp.pi * jnp.cos(jnp.pi * pts[:, 0]) * jnp.exp(-nu * jnp.pi**2 * pts[:, 1])
    np.testing.assert_allclose(r, u * ux, rtol=1e-9, atol=1e-12)


def test_plot_writes_a_png(problem, tmp_path):
    model = pinnx.nn.MLP(2, "scalar", 8, 2, key=jax.random.key(0))
    path = tmp_path / "fig.png"
    fig = problem.plot(model, None, path)
    assert path.stat().st_size > 10_000 and fig is not None


def test_helmholtz_residual_vanishes_on_the_exact_solution():
    from pinnx.problems import helmholtz
    from pinnx.problems.helmholtz import helmholtz_solution

    problem = helmholtz(n_pde=64, n_bc=40, a1=1.0, a2=4.0, k=1.0)
    assert PROBLEMS["helmholtz"] is helmholtz
    batch = problem.sample(jax.random.key(0))
    assert batch["pde"].shape == (64, 2) and batch["bc"].shape == (40, 2)
    on_edge = np.isclose(np.abs(np.asarray(batch["bc"])), 1.0).any(axis=1)
    assert on_edge.all()
    values = problem.losses.residuals(helmholtz_solution, batch)
    np.testing.assert_allclose(values["pde"], 0, atol=1e-9)
    np.testing.assert_allclose(values["bc"], 0, atol=1e-12)
    # a field that is not a solution leaves the source: residual of u = 0 is -q
    pts = batch["pde"]
    q = (1 - 17 * np.pi**2) * np.asarray(helmholtz_solution(pts))
    zero = problem.losses.residuals(lambda p: 0.0 * p[0], batch)["pde"]
    np.testing.assert_allclose(zero, -q, rtol=1e-9, atol=1e-9)
    exact = np.asarray(helmholtz_solution(jnp.asarray(problem.test_points)))
    np.testing.assert_allclose(exact.reshape(problem.reference.shape), problem.reference,
                               atol=1e-12)
