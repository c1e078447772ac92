"""2D Helmholtz equation with a manufactured solution, the benchmark of learning-rate annealing.

u_xx + u_yy + k^2 u = q(x, y) on [-1, 1]^2, u = 0 on the boundary, with
u(x, y) = sin(a1 pi x) sin(a2 pi y) and q = (k^2 - (a1 pi)^2 - (a2 pi)^2) u
(Wang, Teng, Perdikaris, SISC 2021, section 2.3: (a1, a2) = (1, 4), k = 1). The high
wavenumber along y makes the residual's gradient dwarf the boundary's: the textbook case of
magnitude conflict. Tasks: "bc" (the four edges) and "pde".
"""

import jax
import jax.numpy as jnp
import numpy as np

from .. import operators, residuals
from ..geometry import Box
from ._problem import Problem

__all__ = ["helmholtz", "helmholtz_solution"]


def helmholtz_solution(x, a1: float = 1.0, a2: float = 4.0):
    """The exact solution sin(a1 pi x) sin(a2 pi y) at points x of shape (..., 2)."""
    return jnp.sin(a1 * jnp.pi * x[..., 0]) * jnp.sin(a2 * jnp.pi * x[..., 1])


def helmholtz(
    n_pde: int = 128,
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
        reference is the exact solution on the test grid.

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
    return Problem(
        name="helmholtz",
        losses=loss,
        sample=sample,
        in_size=2,
        out_size="scalar",
        axes=(x, y),
        axis_names=("x", "y"),
        reference=reference,
        description=f"Helmholtz: u_xx + u_yy + {k:g}^2 u = q, u = sin({a1:g} pi x) "
        f"sin({a2:g} pi y)",
    )
