"""Viscous Burgers' equation, the standard PINN benchmark with a shock.

u_t + u u_x = nu u_xx, nu = 0.01/pi, x in [-1, 1], t in [0, 1], u(x, 0) = -sin(pi x),
u(-1, t) = u(1, t) = 0 (Raissi, Perdikaris, Karniadakis 2019). Tasks: "pde" (residual
points), "ic" (t = 0) and "bc" (x = +-1). The reference is the Cole-Hopf solution by
quadrature (cross-checked against a diffrax method-of-lines solve in the test suite).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import operators, residuals
from ..geometry import Interval, SpaceTime
from ._problem import Grid, Problem
from ._recipe import Recipe
from .burgers_reference import cole_hopf, test_grid

__all__ = ["RECIPE", "burgers"]

NU = 0.01 / np.pi

RECIPE = Recipe(combiner="pcgrad | adam", steps=25000, width=32, depth=4, n_pde=2000,
                lr=2e-3, resample_every=200, schedule="warmup_cosine")
"""The set-up of `pinnx run burgers`: PCGrad and Adam, 25,000 steps with a warm-up-cosine
schedule peaking at 2e-3, a 4 x 32 tanh MLP, 2,000 residual points redrawn every 200 steps."""


def burgers(
    n_pde: int = RECIPE.n_pde,
    n_ic: int = 200,
    n_bc: int = 200,
    method: str = "lhs",
    nu: float = NU,
) -> Problem:
    """The Burgers benchmark as a `Problem`.

    Args:
        n_pde: residual points per batch.
        n_ic: initial-condition points per batch.
        n_bc: boundary points per batch (split between x = -1 and x = 1).
        method: sampling method of `pinnx.geometry` for every set.
        nu: viscosity (the reference values assume the default 0.01/pi).

    Returns:
        A `Problem` with tasks ("bc", "ic", "pde"), inputs (x, t), a scalar output, the
        reference on the 256 x 100 (x, t) grid and the recipe `RECIPE` (`burgers.recipe`)
        with `n_pde` points.
    """
    domain = SpaceTime(Interval(-1.0, 1.0), 0.0, 1.0)

    def residual(u, x):
        u0, ux, uxx = operators.derivatives(u, x, 0, 2)
        ut = operators.time_derivative(u, x)
        return ut + u0 * ux - nu * uxx

    loss = residuals.losses(
        pde=residuals.pde(residual),
        ic=residuals.initial(lambda x: -jnp.sin(jnp.pi * x[0])),
        bc=residuals.dirichlet(0.0),
    )

    def sample(key):
        kp, ki, kb = jax.random.split(key, 3)
        return {
            "pde": domain.sample_interior(kp, n_pde, method),
            "ic": domain.sample_initial(ki, n_ic, method),
            "bc": domain.sample_boundary(kb, n_bc, method=method),
        }

    x, t = test_grid()
    with jax.enable_x64(True):
        reference = np.asarray(cole_hopf(jnp.asarray(x, jnp.float64),
                                         jnp.asarray(t, jnp.float64), nu))
    grid = Grid((np.asarray(x), np.asarray(t)), ("x", "t"))
    return Problem(
        name="burgers",
        losses=loss,
        sample=sample,
        in_size=2,
        out_size="scalar",
        test_points=grid.points,
        reference=grid.flatten(reference),
        recipe=dataclasses.replace(RECIPE, n_pde=n_pde),
        grid=grid,
        description="Burgers: u_t + u u_x = (0.01/pi) u_xx, u(x,0) = -sin(pi x)",
    )


burgers.recipe = RECIPE  # the default set-up, readable without building the problem
