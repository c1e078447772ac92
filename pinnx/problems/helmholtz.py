"""2D Helmholtz equation with a manufactured solution, the benchmark of learning-rate annealing.

u_xx + u_yy + k^2 u = q(x, y) on [-1, 1]^2, u = 0 on the boundary, with
u(x, y) = sin(a1 pi x) sin(a2 pi y) and q = (k^2 - (a1 pi)^2 - (a2 pi)^2) u
(Wang, Teng, Perdikaris, SISC 2021, section 2.3: (a1, a2) = (1, 4), k = 1). The high
wavenumber along y makes the residual's gradient dwarf the boundary's: the textbook case of
magnitude conflict. Tasks: "bc" (the four edges) and "pde".
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import operators, residuals
from ..geometry import Box
from ._problem import Grid, Problem
from ._recipe import Recipe

__all__ = ["RECIPE", "helmholtz", "helmholtz_solution"]

RECIPE = Recipe(combiner="pcgrad | adam", steps=40000, width=50, depth=3, n_pde=128,
                lr=1e-3, resample_every=1, schedule="step_decay")
"""The set-up of `pinnx run helmholtz`: PCGrad then Adam; network, steps, schedule and
points as in the learning-rate-annealing paper (Wang, Teng, Perdikaris 2021): a 3 x 50 tanh
MLP, 40,000 steps from 1e-3 decayed x0.9 every 1,000 steps, 128 residual points drawn afresh
every step."""


def helmholtz_solution(x, a1: float = 1.0, a2: float = 4.0):
    """The exact solution sin(a1 pi x) sin(a2 pi y) at points x of shape (..., 2)."""
    return jnp.sin(a1 * jnp.pi * x[..., 0]) * jnp.sin(a2 * jnp.pi * x[..., 1])


def helmholtz(
    n_pde: int = RECIPE.n_pde,
    n_bc: int = 512,
    method: str = "uniform",
    a1: float = 1.0,
    a2: float = 4.0,
    k: float = 1.0,
    n_test: int = 101,
) -> Problem:
    """The Helmholtz benchmark as a `Problem`.

    Args:
        n_pde: residual points per batch (the LRA paper: 128, resampled every step).
        n_bc: boundary points per batch, split equally over the four edges (the LRA paper:
            128 per edge, i.e. 512).
        method: sampling method of `pinnx.geometry` for both sets.
        a1, a2: wavenumbers of the exact solution along x and y.
        k: the Helmholtz coefficient.
        n_test: test grid points per axis (uniform, boundary included).

    Returns:
        A `Problem` with tasks ("bc", "pde"), inputs (x, y) and a scalar output; its
        reference is the exact solution on the n_test x n_test grid; its recipe is
        `RECIPE` (`helmholtz.recipe`) with `n_pde` points.

    References:
        Wang, Teng, Perdikaris. "Understanding and mitigating gradient flow pathologies in
        physics-informed neural networks". SIAM J. Sci. Comput. 43(5), 2021.
        https://arxiv.org/abs/2001.04536
    """
    domain = Box((-1.0, -1.0), (1.0, 1.0), names=("x", "y"))
    coef = k**2 - (a1 * jnp.pi) ** 2 - (a2 * jnp.pi) ** 2

    def residual(u, x):
        return operators.laplacian(u, x) + k**2 * u(x) - coef * helmholtz_solution(x, a1, a2)

    loss = residuals.losses(pde=residuals.pde(residual), bc=residuals.dirichlet(0.0))

    def sample(key):
        kp, kb = jax.random.split(key)
        return {
            "pde": domain.sample_interior(kp, n_pde, method),
            "bc": domain.sample_boundary(kb, n_bc, method=method),
        }

    x = np.linspace(-1.0, 1.0, n_test)
    y = np.linspace(-1.0, 1.0, n_test)
    xx, yy = np.meshgrid(x, y, indexing="xy")
    reference = np.sin(a1 * np.pi * xx) * np.sin(a2 * np.pi * yy)
    grid = Grid((x, y), ("x", "y"))
    return Problem(
        name="helmholtz",
        losses=loss,
        sample=sample,
        in_size=2,
        out_size="scalar",
        test_points=grid.points,
        reference=grid.flatten(reference),
        recipe=dataclasses.replace(RECIPE, n_pde=n_pde),
        grid=grid,
        description=f"Helmholtz: u_xx + u_yy + {k:g}^2 u = q, u = sin({a1:g} pi x) "
        f"sin({a2:g} pi y)",
    )


helmholtz.recipe = RECIPE  # the default set-up, readable without building the problem
