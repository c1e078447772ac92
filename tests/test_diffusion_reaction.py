"""The diffusion-reaction benchmark: initial conditions, reference solution, problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnx.problems.diffusion_reaction import (
    MAIN_BUMPS,
    Bumps,
    diffusion_reaction,
    reference,
    sample_bumps,
)

X = np.linspace(0.0, 1.0, 33)
T = np.linspace(0.0, 1.0, 11)


@pytest.fixture(scope="module")
def main_ref():
    return reference(MAIN_BUMPS, X, T)


def test_bumps_are_smooth_periodic_and_in_range():
    x = jnp.linspace(0.0, 1.0, 201, dtype=jnp.float64)
    for ic in [MAIN_BUMPS, *sample_bumps(jax.random.key(0), 5)]:
        u = np.asarray(ic(x))
        np.testing.assert_allclose(u[0], u[-1], rtol=1e-12)  # periodic
        assert 0 < u.min() and u.max() < 1.3
    a = sample_bumps(jax.random.key(3), 50, bumps=3)
    amps = np.array([b.amplitudes for b in a])
    assert amps.shape == (50, 3) and amps.min() >= 0.2 and amps.max() <= 0.6
    assert a == sample_bumps(jax.random.key(3), 50, bumps=3)  # deterministic in the key
    with pytest.raises(ValueError, match="n >= 1"):
        sample_bumps(jax.random.key(0), 0)


def test_constant_initial_condition_gives_the_logistic_solution():
    """u0 = c: no diffusion, u(t) = c e^{rho t} / (1 - c + c e^{rho t}) exactly."""
    c, rho = 0.3, 1.0
    u = reference(lambda x: jnp.full_like(x, c), X, T, rho=rho)
    exact = c * np.exp(rho * T) / (1 - c + c * np.exp(rho * T))
    np.testing.assert_allclose(u, np.broadcast_to(exact[:, None], u.shape), rtol=1e-9)


def test_reference_converges_in_grid_and_tolerance(main_ref):
    """Halving the grid and loosening the tolerance move the reference by far less than any
    PINN error (measured, relative to max |u|: grid 64 vs 128 points 2.2e-16, i.e. spectrally
    converged; rtol 1e-7 vs the default 1e-10: 1.7e-8; 1e-11 vs 1e-10: 2.5e-11)."""
    coarse = reference(MAIN_BUMPS, X, T, n_grid=64)
    loose = reference(MAIN_BUMPS, X, T, rtol=1e-7, atol=1e-9)
    scale = np.abs(main_ref).max()
    grid_err = np.abs(coarse - main_ref).max() / scale
    tol_err = np.abs(loose - main_ref).max() / scale
    assert grid_err < 1e-12
    assert 1e-12 < tol_err < 1e-6  # a looser tolerance does move it, a little
    np.testing.assert_allclose(main_ref[0], np.asarray(MAIN_BUMPS(jnp.asarray(X))),
                               rtol=1e-12, atol=1e-14)
    # periodic, bounded, and growing towards the stable state u = 1
    np.testing.assert_allclose(main_ref[:, 0], main_ref[:, -1], rtol=1e-10)
    assert np.all(np.diff(main_ref.mean(axis=1)) > 0) and main_ref.max() < 1


def test_reference_satisfies_the_pde(main_ref):
    """Finite differences of a fine reference match u_t = nu u_xx + rho u (1 - u)."""
    x = np.linspace(0.0, 1.0, 129)
    # as many times as T, so the compiled solve is reused
    t = np.concatenate([[0.5 - 1e-3, 0.5, 0.5 + 1e-3], np.linspace(0.6, 1.0, T.size - 3)])
    u = reference(MAIN_BUMPS, x, t)[:3]
    dx = x[1] - x[0]
    u_t = (u[2] - u[0]) / 2e-3
    u_xx = (np.roll(u[1, :-1], -1) - 2 * u[1, :-1] + np.roll(u[1, :-1], 1)) / dx**2
    rhs = 0.5 * u_xx + u[1, :-1] * (1 - u[1, :-1])
    np.testing.assert_allclose(u_t[:-1], rhs, atol=1e-5)


def test_problem_tasks_and_exact_losses():
    problem = diffusion_reaction(n_pde=64, n_ic=16, n_bc=16, n_x=17, n_t=T.size)
    assert problem.reference.shape == (T.size * 17,) and problem.in_size == 2
    assert problem.grid.shape == (T.size, 17)
    # its own recipe (not Burgers'), with the points it was built with
    assert problem.recipe.n_pde == 64 and problem.recipe.resample_every == 1
    assert problem.recipe.combiner == diffusion_reaction.recipe.combiner
    assert diffusion_reaction.recipe.n_pde == 500
    batch = problem.sample(jax.random.key(0))
    assert set(batch) == {"pde", "ic", "bc"}
    assert np.all(np.asarray(batch["bc"][:, 0]) == 0)
    assert np.all(np.asarray(batch["ic"][:, 1]) == 0)
    # the logistic solution of a constant IC zeroes every loss
    c = 0.3
    flat = diffusion_reaction(lambda x: jnp.full_like(x, c), n_pde=64, n_ic=16, n_bc=16,
                              n_x=9, n_t=T.size)
    batch = jax.tree.map(lambda a: a.astype(jnp.float64), flat.sample(jax.random.key(1)))

    def logistic(p):
        e = jnp.exp(p[1])
        return c * e / (1 - c + c * e) + 0 * p[0]

    losses, wrong = jax.jit(lambda b: (flat.losses(logistic, b),
                                       flat.losses(lambda p: p[0] * p[1], b)))(batch)
    assert all(float(v) < 1e-20 for v in losses.values()), losses
    assert flat.relative_l2(logistic) < 1e-9
    assert float(wrong["pde"]) > 1e-3  # and a wrong field does not zero them


def test_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        reference(MAIN_BUMPS, X, T, n_grid=63)
    with pytest.raises(ValueError, match="non-decreasing"):
        reference(MAIN_BUMPS, X, T[::-1])
    with pytest.raises(ValueError, match="finite"):
        reference(MAIN_BUMPS, np.array([np.nan]), T)
    with pytest.raises(ValueError, match="rtol"):
        reference(MAIN_BUMPS, X, T, rtol=0.0)
    with pytest.raises(ValueError, match="amplitude"):
        sample_bumps(jax.random.key(0), 2, amplitude=(0.5, 0.1))
    assert isinstance(Bumps((0.1,), (0.5,)), tuple)
