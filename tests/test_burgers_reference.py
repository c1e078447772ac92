"""Tests of the Burgers reference solutions: two independent methods and a published value.

`cole_hopf` (exact, quadrature) and `method_of_lines` (Fourier spectral + diffrax) must agree
to 1e-4 everywhere on the test grid, shock included; both are also checked against the
initial and boundary conditions, odd symmetry, the PDE itself (finite differences) and the
maximum slope published by Basdevant et al. (1986). The two `method_of_lines` solves are
module fixtures (each costs a compilation of a few seconds).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st

from pinnx.problems.burgers_reference import (
    BASDEVANT_MAX_SLOPE,
    BASDEVANT_T_MAX_SLOPE,
    NU,
    cole_hopf,
    method_of_lines,
    test_grid,
)

H = 1e-6  # half-width of the central difference for u_x at x = 0

# A small grid for the second solve: x = 0 +- H for the slope, the boundaries, and times in
# no particular order (Basdevant's time, t = 0, and very small times).
X_SMALL = np.array([-1.0, -H, 0.0, H, 0.5, 1.0])
T_SMALL = np.array([BASDEVANT_T_MAX_SLOPE, 0.0, 1e-12, 1e-6, 1e-3])


@pytest.fixture(scope="module")
def grid():
    x, t = test_grid()
    return jnp.asarray(x), jnp.asarray(t)


@pytest.fixture(scope="module")
def exact(grid):
    return np.asarray(cole_hopf(*grid))


@pytest.fixture(scope="module")
def mol(grid):
    return np.asarray(method_of_lines(*grid))


@pytest.fixture(scope="module")
def mol_small_jit():
    """`method_of_lines` under an outer `jax.jit`, on unsorted times."""
    return np.asarray(jax.jit(method_of_lines)(jnp.asarray(X_SMALL), jnp.asarray(T_SMALL)))


def test_test_grid():
    x, t = test_grid()
    assert x.shape == (256,) and t.shape == (100,)
    assert x.dtype == np.float64 and t.dtype == np.float64
    np.testing.assert_array_equal(x, np.linspace(-1, 1, 256))
    np.testing.assert_array_equal(t, np.linspace(0, 1, 100))


@pytest.mark.slow  # the reference on the full test grid
def test_shapes_and_dtypes(grid, exact, mol, mol_small_jit):
    assert exact.shape == mol.shape == (100, 256)  # t-major
    assert exact.dtype == mol.dtype == np.float64
    assert mol_small_jit.shape == (T_SMALL.size, X_SMALL.size)
    u = cole_hopf(jnp.linspace(-1.0, 1.0, 7), jnp.linspace(0.0, 1.0, 3))
    assert u.shape == (3, 7) and u.dtype == jnp.float64


@pytest.mark.slow  # the reference on the full test grid
def test_methods_agree_on_test_grid(grid, exact, mol):
    diff = np.abs(exact - mol)
    i, j = np.unravel_index(diff.argmax(), diff.shape)
    x, t = grid
    # The requirement is 1e-4; measured ~8e-12 (at the shock, x ~ 0).
    assert diff.max() < 1e-4, (diff.max(), float(t[i]), float(x[j]))
    assert diff.max() < 1e-9, (diff.max(), float(t[i]), float(x[j]))


@pytest.mark.slow  # the reference on the full test grid
def test_solution_has_the_shock(grid, exact):
    # The benchmark's difficulty is real: from t ~ 0.4 on, u jumps across the one grid cell
    # (width 2/255) around x = 0, by up to ~1.06 (at t ~ 0.5), still by 0.62 at t = 1.
    x, t = grid
    jump = exact[:, 127] - exact[:, 128]
    late = np.asarray(t) > 0.4
    assert jump[late].min() > 0.6
    assert jump.max() > 1.0


@pytest.mark.slow  # the reference on the full test grid
def test_initial_condition(grid, exact, mol):
    x = np.asarray(grid[0])
    np.testing.assert_array_equal(exact[0], np.asarray(-jnp.sin(jnp.pi * grid[0])))
    np.testing.assert_allclose(mol[0], -np.sin(np.pi * x), rtol=0, atol=1e-14)


@pytest.mark.slow  # the reference on the full test grid
def test_boundary_values(exact, mol, mol_small_jit):
    assert np.abs(exact[:, [0, -1]]).max() < 1e-13
    assert np.abs(mol[:, [0, -1]]).max() < 1e-13
    assert np.abs(mol_small_jit[:, [0, -1]]).max() < 1e-13


@pytest.mark.slow  # the reference on the full test grid
def test_odd_symmetry(exact, mol):
    # test_grid's x is symmetric (x[255 - j] = -x[j] up to one ulp); neither method imposes
    # oddness (the spectral solve evolves the even Fourier part too, which stays ~1e-14).
    assert np.abs(exact + exact[:, ::-1]).max() < 1e-12
    assert np.abs(mol + mol[:, ::-1]).max() < 1e-12


@given(
    x=st.floats(-1.0, 1.0, allow_nan=False),
    t=st.floats(0.0, 1.0, allow_nan=False),
)
def test_cole_hopf_odd_and_bounded(x, t):
    u = np.asarray(cole_hopf(jnp.array([x, -x]), jnp.array([t])))
    assert np.all(np.isfinite(u))
    assert abs(u[0, 0] + u[0, 1]) < 1e-13
    assert np.abs(u).max() <= 1.0 + 1e-13  # maximum principle: |u| <= max |u(., 0)| = 1


def test_no_nan_at_small_times(mol_small_jit):
    x = jnp.asarray(X_SMALL)
    t_small = jnp.array([0.0, 1e-300, 1e-200, 1e-100, 1e-30, 1e-12, 1e-8, 1e-6, 1e-4])
    u = np.asarray(cole_hopf(x, t_small))
    assert np.all(np.isfinite(u))
    np.testing.assert_allclose(
        u[:6], np.broadcast_to(-np.sin(np.pi * X_SMALL), (6, 6)), rtol=0, atol=1e-10
    )
    assert np.all(np.isfinite(mol_small_jit))
    exact_small = np.asarray(cole_hopf(x, jnp.asarray(T_SMALL)))
    np.testing.assert_allclose(mol_small_jit, exact_small, rtol=0, atol=1e-9)


def test_pde_residual_by_finite_differences():
    """u_t + u u_x - nu u_xx ~ 0 away from the shock (|x| >= 0.1), 4th-order differences."""
    h = k = 1e-3
    x = np.linspace(-1.0, 1.0, 2001)  # spacing h
    worst = worst_wrong_nu = 0.0
    for t0 in (0.05, 0.3, 0.5, 0.9):
        u = np.asarray(cole_hopf(jnp.asarray(x), jnp.asarray(t0 + k * np.arange(-2, 3))))
        c = u[2]
        ux = (-c[4:] + 8 * c[3:-1] - 8 * c[1:-3] + c[:-4]) / (12 * h)
        uxx = (-c[4:] + 16 * c[3:-1] - 30 * c[2:-2] + 16 * c[1:-3] - c[:-4]) / (12 * h * h)
        ut = (-u[4, 2:-2] + 8 * u[3, 2:-2] - 8 * u[1, 2:-2] + u[0, 2:-2]) / (12 * k)
        away = np.abs(x[2:-2]) >= 0.1
        residual = (ut + c[2:-2] * ux - NU * uxx)[away]
        worst = max(worst, np.abs(residual).max())
        worst_wrong_nu = max(worst_wrong_nu, np.abs(residual - 0.05 * NU * uxx[away]).max())
    assert worst < 1e-6  # measured 3e-8 (at t = 0.3, where the shock is forming)
    assert worst_wrong_nu > 1e-4  # the check can tell a 5% error in nu


def _exact_slope_at_zero(t):
    """u_x(0, t) of `cole_hopf`, differentiated exactly (forward mode through the sums)."""
    x0 = jnp.zeros(1)
    tangent = jnp.ones(1)
    _, ux = jax.jvp(
        lambda x: cole_hopf(x, jnp.atleast_1d(jnp.asarray(t, jnp.float64))), (x0,), (tangent,)
    )
    return float(ux[0, 0])


def test_published_maximum_slope():
    """Basdevant et al. (1986): max_t |u_x(0, t)| = 152.00516 at t = 1.6037/pi."""
    res = scipy.optimize.minimize_scalar(
        _exact_slope_at_zero, bracket=(0.45, 0.51, 0.56), tol=1e-10
    )
    assert abs(-res.fun - BASDEVANT_MAX_SLOPE) < 1e-5  # measured 152.0051616
    assert abs(res.x - BASDEVANT_T_MAX_SLOPE) < 1e-4  # measured t* = 1.603688/pi
    # the shock at t = 1/pi is not yet at its steepest:
    assert abs(_exact_slope_at_zero(1 / np.pi)) < 40


def test_method_of_lines_published_slope(mol_small_jit):
    ux = (mol_small_jit[0, 3] - mol_small_jit[0, 1]) / (2 * H)
    assert abs(-ux - BASDEVANT_MAX_SLOPE) < 1e-4  # measured 152.0051604


def test_jit():
    x, t = jnp.linspace(-1.0, 1.0, 9), jnp.array([0.0, 0.25, 0.5])
    eager = cole_hopf(x, t)
    jitted = jax.jit(cole_hopf, static_argnames="n_quad")(x, t)
    np.testing.assert_allclose(jitted, eager, rtol=0, atol=1e-15)
    # method_of_lines under jit: see the `mol_small_jit` fixture (checked against cole_hopf
    # in test_no_nan_at_small_times and test_method_of_lines_published_slope).


@pytest.mark.slow  # the reference on the full test grid
def test_float32_cole_hopf(grid, exact):
    u = cole_hopf(grid[0].astype(jnp.float32), grid[1].astype(jnp.float32))
    assert u.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(u)))
    assert np.abs(np.asarray(u, np.float64) - exact).max() < 1e-4  # measured ~1e-6


@pytest.mark.slow
def test_float32_method_of_lines(grid, exact):
    u = method_of_lines(grid[0].astype(jnp.float32), grid[1].astype(jnp.float32))
    assert u.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(u)))
    assert np.abs(np.asarray(u, np.float64) - exact).max() < 1e-3  # measured ~1e-5
