"""The nonlinear Klein-Gordon equation with a manufactured solution (LRA benchmark).

u_tt - u_xx + u^3 = f on (x, t) in [0, 1]^2, with exact solution
u(x, t) = x cos(5 pi t) + (x t)^3 and f computed from it (Wang, Teng, Perdikaris, SISC 2021,
section 2.4: alpha = -1, beta = 0, gamma = 1, k = 3). Initial conditions u(x, 0) = x,
u_t(x, 0) = 0; Dirichlet boundary values from the exact solution at x = 0 and x = 1.
Tasks: "bc", "ic" (value and velocity, one 2-component residual per point) and "pde".
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import operators, residuals
from ..geometry import Interval, SpaceTime
from ._problem import Grid, Problem
from ._recipe import Recipe

__all__ = ["RECIPE", "klein_gordon", "klein_gordon_solution"]

RECIPE = Recipe(combiner="pcgrad | adam", steps=40000, width=50, depth=3, n_pde=128,
                lr=1e-3, resample_every=1, schedule="step_decay")
"""The set-up of `pinnx run klein_gordon`: PCGrad then Adam; network, steps, schedule and
points as in the learning-rate-annealing paper (Wang, Teng, Perdikaris 2021): a 3 x 50 tanh
MLP, 40,000 steps from 1e-3 decayed x0.9 every 1,000 steps, 128 residual points drawn afresh
every step."""


def klein_gordon_solution(x):
    """The exact solution x cos(5 pi t) + (x t)^3 at points of shape (..., 2) = (x, t)."""
    s, t = x[..., 0], x[..., 1]
    return s * jnp.cos(5 * jnp.pi * t) + (s * t) ** 3


def _source(x):
    s, t = x[..., 0], x[..., 1]
    u = klein_gordon_solution(x)
    u_tt = -25 * jnp.pi**2 * s * jnp.cos(5 * jnp.pi * t) + 6 * s**3 * t
    u_xx = 6 * s * t**3
    return u_tt - u_xx + u**3


def klein_gordon(
    n_pde: int = RECIPE.n_pde,
    n_ic: int = 128,
    n_bc: int = 128,
    method: str = "uniform",
    n_test: int = 101,
) -> Problem:
    """The Klein-Gordon benchmark as a `Problem`.

    Args:
        n_pde: residual points per batch (the LRA paper: batches of 128).
        n_ic: initial points per batch (value and velocity residual at each).
        n_bc: boundary points per batch, split between x = 0 and x = 1.
        method: sampling method of `pinnx.geometry` for every set.
        n_test: test grid points per axis (uniform, boundary included).

    Returns:
        A `Problem` with tasks ("bc", "ic", "pde"), inputs (x, t) and a scalar output; its
        reference is the exact solution on the n_test x n_test grid; its recipe is
        `RECIPE` (`klein_gordon.recipe`) with `n_pde` points.

    Examples:
        >>> import jax, pinnx
        >>> problem = pinnx.problems.klein_gordon(n_pde=16, n_ic=8, n_bc=8, n_test=11)
        >>> model = pinnx.nn.MLP(2, "scalar", width=8, depth=2, key=jax.random.key(0))
        >>> losses = problem.losses(model, problem.sample(jax.random.key(1)))
        >>> sorted(losses)
        ['bc', 'ic', 'pde']

    References:
        Wang, Teng, Perdikaris. "Understanding and mitigating gradient flow pathologies in
        physics-informed neural networks". SIAM J. Sci. Comput. 43(5), 2021.
        https://arxiv.org/abs/2001.04536
    """
    domain = SpaceTime(Interval(0.0, 1.0), 0.0, 1.0)

    def residual(u, x):
        _, _, u_xx = operators.derivatives(u, x, 0, 2)
        u_tt = operators.time_derivative(u, x, order=2)
        return u_tt - u_xx + u(x) ** 3 - _source(x)

    def initial(u, x):
        return jnp.stack([u(x) - x[0], operators.time_derivative(u, x)])

    loss = residuals.losses(
        pde=residuals.pde(residual),
        ic=residuals.Term(initial),
        bc=residuals.dirichlet(klein_gordon_solution),
    )

    def sample(key):
        kp, ki, kb = jax.random.split(key, 3)
        return {
            "pde": domain.sample_interior(kp, n_pde, method),
            "ic": domain.sample_initial(ki, n_ic, method),
            "bc": domain.sample_boundary(kb, n_bc, method=method),
        }

    x = np.linspace(0.0, 1.0, n_test)
    t = np.linspace(0.0, 1.0, n_test)
    xx, tt = np.meshgrid(x, t, indexing="xy")
    reference = xx * np.cos(5 * np.pi * tt) + (xx * tt) ** 3
    grid = Grid((x, t), ("x", "t"))
    return Problem(
        name="klein_gordon",
        losses=loss,
        sample=sample,
        in_size=2,
        out_size="scalar",
        test_points=grid.points,
        reference=grid.flatten(reference),
        recipe=dataclasses.replace(RECIPE, n_pde=n_pde),
        grid=grid,
        description="Klein-Gordon: u_tt - u_xx + u^3 = f, u = x cos(5 pi t) + (x t)^3",
    )


klein_gordon.recipe = RECIPE  # the default set-up, readable without building the problem
