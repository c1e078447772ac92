"""Problems: Burgers' losses, sampler, reference, error metric and figure; Helmholtz; the
test-point `Problem` without a grid (1-D steady, 3-D vector output) and `Grid`."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pinnx
from pinnx import operators, residuals
from pinnx.geometry import Interval
from pinnx.problems import PROBLEMS, Grid, Problem, Recipe, burgers, relative_l2


@pytest.fixture(scope="module")
def problem():
    return burgers(n_pde=64, n_ic=16, n_bc=16)


def test_registry_and_shapes(problem):
    assert PROBLEMS["burgers"] is burgers
    batch = problem.sample(jax.random.key(0))
    assert batch["pde"].shape == (64, 2) and batch["ic"].shape == (16, 2)
    assert np.all(np.asarray(batch["ic"][:, 1]) == 0)
    assert np.all(np.abs(np.asarray(batch["bc"][:, 0])) == 1)
    assert problem.reference.shape == (25600,) and problem.test_points.shape == (25600, 2)
    assert problem.grid.shape == (100, 256) and problem.grid.names == ("x", "t")
    # the reference's first row on the grid is the initial condition
    np.testing.assert_allclose(problem.grid.reshape(problem.reference)[0],
                               -np.sin(np.pi * problem.grid.axes[0]), atol=1e-12)


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
        grid = self.problem.grid
        x, t = grid.axes
        i = jnp.argmin(jnp.abs(jnp.asarray(t) - p[1]))
        rows = jnp.asarray(grid.reshape(self.problem.reference))
        return jnp.interp(p[0], jnp.asarray(x), rows[i])


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
    np.testing.assert_allclose(exact, problem.reference, atol=1e-12)
    assert problem.grid.reshape(problem.reference).shape == (101, 101)


# ------------------------------------------------------------------ problems without a grid

RECIPE = Recipe("mean | adam", steps=10, width=8, depth=2, n_pde=16, lr=1e-3,
                resample_every=1, schedule="constant")


def poisson_1d(n_pde=16, n_test=65):
    """-u'' = pi^2 sin(pi x) on [0, 1], u(0) = u(1) = 0: u = sin(pi x). A steady 1-D problem,
    its test points a plain (N, 1) set."""
    domain = Interval(0.0, 1.0)

    def residual(u, x):
        return operators.laplacian(u, x) + jnp.pi**2 * jnp.sin(jnp.pi * x[0])

    def sample(key):
        kp, kb = jax.random.split(key)
        return {"pde": domain.sample_interior(kp, n_pde, "uniform"),
                "bc": domain.sample_boundary(kb, 2, method="uniform")}

    x = np.linspace(0.0, 1.0, n_test)[:, None]
    return Problem(
        name="poisson_1d",
        losses=residuals.losses(pde=residuals.pde(residual), bc=residuals.dirichlet(0.0)),
        sample=sample, in_size=1, out_size="scalar", test_points=x,
        reference=np.sin(np.pi * x[:, 0]), recipe=RECIPE, description="1-D Poisson",
    )


LOSSES = residuals.losses(data=residuals.data())  # for problems that are only evaluated


def no_batch(key):
    return {}


def exact_poisson(p):
    return jnp.sin(jnp.pi * p[0])


HISTORY = SimpleNamespace(steps=3, tasks=("bc", "pde"),
                          losses={"bc": np.array([1.0, 0.5, 0.2]),
                                  "pde": np.array([3.0, 1.0, 0.4])})


def test_problem_without_grid_1d(tmp_path):
    problem = poisson_1d()
    assert problem.grid is None and problem.reference.shape == (65,)
    batch = problem.sample(jax.random.key(0))
    values = problem.losses.residuals(exact_poisson, batch)
    np.testing.assert_allclose(values["pde"], 0, atol=1e-9)
    np.testing.assert_allclose(values["bc"], 0, atol=1e-12)
    assert problem.predict(exact_poisson).shape == (65,)
    assert problem.relative_l2(exact_poisson) < 1e-12
    # u = x (1 - x) * 4: relative L2 against sin(pi x) computed by hand
    def parabola(p):
        return 4 * p[0] * (1 - p[0])

    x = problem.test_points[:, 0]
    by_hand = np.linalg.norm(4 * x * (1 - x) - np.sin(np.pi * x)) / np.linalg.norm(
        np.sin(np.pi * x))
    assert problem.relative_l2(parabola) == pytest.approx(by_hand, rel=1e-12)
    model = pinnx.nn.MLP(1, "scalar", 8, 2, key=jax.random.key(0))
    path = tmp_path / "poisson.png"
    fig = problem.plot(model, HISTORY, path)
    assert path.stat().st_size > 10_000 and len(fig.axes) == 3


def test_problem_without_grid_3d_vector_output(tmp_path):
    """A 3-D point set with a 2-component reference: (N, 3) points, (N, 2) values."""
    points = np.asarray(jax.random.uniform(jax.random.key(1), (40, 3), jnp.float64))

    def field(p):
        return jnp.stack([jnp.sin(p[0]) * p[1], p[2] ** 2 + 1.0])

    reference = np.asarray(jax.vmap(field)(jnp.asarray(points)))
    problem = Problem(name="field_3d", losses=LOSSES, sample=no_batch, in_size=3, out_size=2,
                      test_points=points, reference=reference, recipe=RECIPE)
    assert problem.predict(field).shape == (40, 2)
    assert problem.relative_l2(field) < 1e-14
    shifted = problem.relative_l2(lambda p: field(p) + jnp.array([0.0, 0.1]))
    assert shifted == pytest.approx(0.1 * np.sqrt(40) / np.linalg.norm(reference), rel=1e-9)
    path = tmp_path / "field.png"
    fig = problem.plot(field, None, path)  # histogram of the pointwise error, no losses
    assert path.stat().st_size > 5_000 and len(fig.axes) == 2


def test_problem_checks_shapes():
    points = np.zeros((5, 3))
    common = dict(name="p", losses=LOSSES, sample=no_batch, in_size=3, recipe=RECIPE)
    with pytest.raises(ValueError, match=r"reference of shape \(5,\)"):
        Problem(out_size="scalar", test_points=points, reference=np.zeros((5, 1)), **common)
    with pytest.raises(ValueError, match=r"reference of shape \(5, 2\)"):
        Problem(out_size=2, test_points=points, reference=np.zeros(5), **common)
    with pytest.raises(ValueError, match=r"test_points of shape \(N, 3\)"):
        Problem(out_size="scalar", test_points=np.zeros((5, 2)), reference=np.zeros(5),
                **common)
    grid = Grid((np.linspace(0, 1, 3), np.linspace(0, 1, 2)), ("x", "y"))
    with pytest.raises(ValueError, match="grid.points"):
        Problem(name="p", losses=LOSSES, sample=no_batch, in_size=2, out_size="scalar",
                test_points=grid.points[::-1], reference=np.zeros(6), recipe=RECIPE,
                grid=grid)


def test_grid_reshape_and_flatten():
    x, t = np.linspace(-1, 1, 4), np.linspace(0, 1, 3)
    grid = Grid((x, t), ("x", "t"))
    assert grid.shape == (3, 4) and grid.points.shape == (12, 2)
    # row-major, horizontal axis first: point i * 4 + j is (x[j], t[i])
    np.testing.assert_array_equal(grid.reshape(grid.points[:, 0])[2], x)
    np.testing.assert_array_equal(grid.reshape(grid.points[:, 1])[:, 1], t)
    values = np.arange(24.0).reshape(12, 2)
    assert grid.reshape(values).shape == (3, 4, 2)
    np.testing.assert_array_equal(grid.flatten(grid.reshape(values)), values)
    with pytest.raises(ValueError, match=r"expected values of shape \(12,\)"):
        grid.reshape(np.zeros(11))
    with pytest.raises(ValueError, match=r"expected values of shape \(3, 4\)"):
        grid.flatten(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="two non-empty 1-D axes"):
        Grid((x, np.zeros(0)), ("x", "t"))
