"""1D diffusion-reaction with periodic bumps as initial conditions, the ATL-PINN benchmark.

u_t = nu u_xx + rho u (1 - u), nu = 0.5, rho = 1, x in [0, 1] periodic, t in [0, 1]
(Yan et al. 2023, after PDEBench). Tasks of one ATL problem share the PDE and differ in the
initial condition. Ours is a family of smooth periodic bumps,

    u0(x) = sum_j a_j exp(-sin^2(pi (x - c_j)) / (2 s^2)),

with amplitudes a_j, centres c_j and one width s (`Bumps`); `sample_bumps` draws members
with a_j ~ U(0.2, 0.6) and c_j ~ U(0, 1), two bumps of width 0.15. (The paper draws its
initial conditions from PDEBench's data set, which we do not ship.) Loss terms: "pde"
(interior points), "ic" (t = 0), "bc" (periodicity of u and u_x at x = 0 and x = 1).

The reference is a Fourier pseudo-spectral method of lines (u_xx exact for the grid's
trigonometric interpolant) integrated with diffrax's L-stable implicit `Kvaerno5` under
adaptive PID step control, one solve per output interval so that every output is a step end
point; the result is evaluated on the test grid by trigonometric interpolation.
`tests/test_diffusion_reaction.py` checks grid and tolerance convergence and the exact
logistic solution of a constant initial condition. Measured for `MAIN_BUMPS` (relative to
max |u|): the default 128-point grid agrees with 64 points to 2.2e-16 (the solution is
spectrally resolved: diffusion damps mode m at rate 0.5 (2 pi m)^2), and the default
rtol 1e-10 agrees with rtol 1e-11 to 2.5e-11.
"""

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import operators, residuals
from ..geometry import Interval, SpaceTime
from ._problem import Grid, Problem
from ._recipe import Recipe

__all__ = ["Bumps", "MAIN_BUMPS", "RECIPE", "sample_bumps", "reference", "diffusion_reaction"]

NU = 0.5
RHO = 1.0

RECIPE = Recipe(combiner="weighted({'bc': 1, 'ic': 100, 'pde': 1}) | adam", steps=1500,
                width=32, depth=4, n_pde=500, lr=1e-3, resample_every=1, schedule="constant")
"""The set-up of `pinnx run diffusion_reaction`: the single-task baseline of
`examples/diffusion_reaction_atl.py` (docs/atl.md: relative L2 2.2e-1, mean of 3 seeds). The
ATL paper code's loss weights (initial condition x100, as a fixed weighted sum of the task
gradients, i.e. the gradient of the weighted loss), Adam at a constant 1e-3, a 4 x 32 tanh
MLP, 500 residual points drawn afresh every step, 1,500 steps. The paper trains 30,000
steps with the learning rate halved every 10,000; 1,500 is the step count of the results in
docs/atl.md, the only one measured with pinnx."""


class Bumps(NamedTuple):
    """A member of the initial-condition family: periodic bumps on [0, 1].

    u0(x) = sum_j amplitudes[j] exp(-sin^2(pi (x - centres[j])) / (2 width^2)).

    Attributes:
        amplitudes: a_j, one per bump (Python floats, so the IC is static).
        centres: c_j in [0, 1), one per bump.
        width: s > 0, shared by the bumps.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.problems.diffusion_reaction import Bumps
        >>> u0 = Bumps((0.5, 0.3), (0.25, 0.7), 0.15)
        >>> u0(jnp.linspace(0.0, 1.0, 5)).shape
        (5,)
    """

    amplitudes: tuple[float, ...]
    centres: tuple[float, ...]
    width: float = 0.15

    def __call__(self, x: Float[Array, "*n"]) -> Float[Array, "*n"]:
        """u0 at x (any shape; any float dtype, kept)."""
        x = jnp.asarray(x)
        out = jnp.zeros_like(x)
        for a, c in zip(self.amplitudes, self.centres, strict=True):
            out = out + a * jnp.exp(-jnp.sin(jnp.pi * (x - c)) ** 2 / (2 * self.width**2))
        return out


MAIN_BUMPS = Bumps(amplitudes=(0.5, 0.3), centres=(0.25, 0.7), width=0.15)
"""The main task's initial condition in pinnx's ATL examples."""


def sample_bumps(
    key: PRNGKeyArray,
    n: int,
    bumps: int = 2,
    amplitude: tuple[float, float] = (0.2, 0.6),
    width: float = 0.15,
) -> list[Bumps]:
    """Draw `n` initial conditions of the family: a_j ~ U(amplitude), c_j ~ U(0, 1).

    Args:
        key: PRNG key.
        n: number of members (>= 1).
        bumps: bumps per member (>= 1).
        amplitude: range of the amplitudes.
        width: the bumps' common width.

    Returns:
        A list of `n` `Bumps` (with Python floats: usable as static task definitions).
    """
    if n < 1 or bumps < 1:
        raise ValueError(f"sample_bumps needs n >= 1 and bumps >= 1, got {n}, {bumps}")
    if not 0 <= amplitude[0] <= amplitude[1] or width <= 0:
        raise ValueError(f"need 0 <= amplitude[0] <= amplitude[1] and width > 0, got "
                         f"{amplitude}, {width}")
    ka, kc = jax.random.split(key)
    a = np.asarray(jax.random.uniform(ka, (n, bumps), minval=amplitude[0],
                                      maxval=amplitude[1]))
    c = np.asarray(jax.random.uniform(kc, (n, bumps)))
    return [Bumps(tuple(map(float, ai)), tuple(map(float, ci)), float(width))
            for ai, ci in zip(a, c, strict=True)]


@partial(jax.jit, static_argnames=("max_steps",))
def _method_of_lines(u0, ts, nu, rho, rtol, atol, max_steps):
    """u on the grid j / N at every ts (ts[0] must be 0): (len(ts), N)."""
    n = u0.shape[0]
    ksq = (2 * jnp.pi * jnp.fft.rfftfreq(n, 1.0 / n)).astype(u0.dtype) ** 2
    cdtype = jnp.result_type(jnp.fft.rfft(u0))

    def rhs(t, u, args):
        del t, args
        u_xx = jnp.fft.irfft((-ksq).astype(cdtype) * jnp.fft.rfft(u), n=n)
        return nu * u_xx + rho * u * (1 - u)

    term = diffrax.ODETerm(rhs)
    solver = diffrax.Kvaerno5()
    controller = diffrax.PIDController(rtol=rtol, atol=atol)

    def advance(u, t_pair):
        ta, tb = t_pair

        def solve(u):
            sol = diffrax.diffeqsolve(term, solver, t0=ta, t1=tb, dt0=None, y0=u,
                                      saveat=diffrax.SaveAt(t1=True),
                                      stepsize_controller=controller, max_steps=max_steps)
            return sol.ys[0]

        u = jax.lax.cond(tb > ta, solve, lambda u: u, u)
        return u, u

    _, us = jax.lax.scan(advance, u0, (ts[:-1], ts[1:]))
    return jnp.concatenate([u0[None], us])


def _interpolate(u_grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trigonometric interpolant of rows sampled at j / N, evaluated at x: (..., len(x))."""
    n = u_grid.shape[-1]
    c = np.fft.rfft(u_grid, axis=-1) / n
    k = np.arange(c.shape[-1])
    weight = np.where((k == 0) | ((n % 2 == 0) & (k == n // 2)), 1.0, 2.0)
    phase = np.exp(2j * np.pi * np.outer(k, x))
    return np.real((c * weight) @ phase)


def reference(
    ic: Callable[[Array], Array],
    x: Float[np.ndarray, " nx"],
    t: Float[np.ndarray, " nt"],
    nu: float = NU,
    rho: float = RHO,
    n_grid: int = 128,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 100_000,
) -> Float[np.ndarray, "nt nx"]:
    """The reference solution u(x, t) by the spectral method of lines (float64).

    Args:
        ic: the initial condition (any callable u0(x) on arrays works).
        x: points in [0, 1] (periodic).
        t: non-decreasing times in [0, ...), t[0] >= 0.
        nu: diffusion coefficient.
        rho: reaction coefficient.
        n_grid: grid points of the method of lines (even).
        rtol: diffrax relative step-size tolerance.
        atol: diffrax absolute step-size tolerance.
        max_steps: diffrax step limit per output interval.

    Returns:
        u at every (t_i, x_j), shape (len(t), len(x)), float64.
    """
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    if x.ndim != 1 or t.ndim != 1 or t.size == 0:
        raise ValueError(f"x and t must be non-empty 1-D arrays, got shapes {x.shape}, "
                         f"{t.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t))):
        raise ValueError("x and t must be finite")
    if t[0] < 0 or np.any(np.diff(t) < 0):
        raise ValueError("t must be non-decreasing and start at t >= 0")
    if not (0 < rtol < 1 and 0 < atol < 1):
        raise ValueError(f"need 0 < rtol, atol < 1, got {rtol}, {atol}")
    if n_grid < 4 or n_grid % 2:
        raise ValueError(f"n_grid must be an even int >= 4, got {n_grid}")
    with jax.enable_x64(True):
        grid = np.arange(n_grid) / n_grid
        u0 = jnp.asarray(np.asarray(ic(jnp.asarray(grid, jnp.float64)), np.float64))
        ts = jnp.asarray(np.concatenate([[0.0], t]))
        us = np.asarray(_method_of_lines(u0, ts, jnp.float64(nu), jnp.float64(rho),
                                         jnp.float64(rtol), jnp.float64(atol),
                                         int(max_steps)))
    if not np.all(np.isfinite(us)):
        raise ValueError("the reference solve produced non-finite values")
    return _interpolate(us[1:], x)


def _describe(ic) -> str:
    if isinstance(ic, Bumps):
        return (f"bumps a={tuple(round(a, 3) for a in ic.amplitudes)} "
                f"c={tuple(round(c, 3) for c in ic.centres)} s={ic.width:g}")
    return getattr(ic, "__name__", type(ic).__name__)


def diffusion_reaction(
    ic: Callable[[Array], Array] = MAIN_BUMPS,
    n_pde: int = RECIPE.n_pde,
    n_ic: int = 100,
    n_bc: int = 100,
    method: str = "lhs",
    nu: float = NU,
    rho: float = RHO,
    n_x: int = 128,
    n_t: int = 101,
) -> Problem:
    """The diffusion-reaction benchmark for one initial condition, as a `Problem`.

    Args:
        ic: the initial condition u0(x), vectorised over x: a `Bumps` (default
            `MAIN_BUMPS`) or any such function.
        n_pde: residual points per batch.
        n_ic: initial-condition points per batch.
        n_bc: periodicity points per batch (on x = 0, paired with x = 1).
        method: sampling method of `pinnx.geometry` for every set.
        nu: diffusion coefficient.
        rho: reaction coefficient.
        n_x: test-grid points in x (uniform in [0, 1] with both ends).
        n_t: test-grid points in t (uniform in [0, 1]).

    Returns:
        A `Problem` with tasks ("bc", "ic", "pde"), inputs (x, t), scalar output, the
        spectral reference on the n_x x n_t (x, t) grid and the recipe `RECIPE`
        (`diffusion_reaction.recipe`) with `n_pde` points.

    Examples:
        >>> import jax
        >>> from pinnx.problems.diffusion_reaction import diffusion_reaction, sample_bumps
        >>> problem = diffusion_reaction(sample_bumps(jax.random.key(1), 1)[0], n_x=32, n_t=11)
        >>> problem.test_points.shape, problem.reference.shape   # the 32 x 11 (x, t) grid
        ((352, 2), (352,))

    References:
        Yan, Chen, Wang, Zhou, Liu. "Auxiliary-Tasks Learning for Physics-Informed Neural
        Network-Based Partial Differential Equations Solving". 2023.
        https://arxiv.org/abs/2307.06167 ; Takamoto et al. "PDEBench: An Extensive
        Benchmark for Scientific Machine Learning". NeurIPS 2022.
        https://arxiv.org/abs/2210.07182
    """
    domain = SpaceTime(Interval(0.0, 1.0), 0.0, 1.0)

    def residual(u, x):
        u0, _, uxx = operators.derivatives(u, x, 0, 2)
        ut = operators.time_derivative(u, x)
        return ut - nu * uxx - rho * u0 * (1 - u0)

    loss = residuals.losses(
        pde=residuals.pde(residual),
        ic=residuals.initial(lambda x: ic(x[0])),
        bc=residuals.periodic(dim=0, period=1.0, derivatives=1),
    )

    def sample(key):
        kp, ki, kb = jax.random.split(key, 3)
        return {
            "pde": domain.sample_interior(kp, n_pde, method),
            "ic": domain.sample_initial(ki, n_ic, method),
            "bc": domain.sample_boundary(kb, n_bc, sides="x-", method=method),
        }

    x = np.linspace(0.0, 1.0, n_x)
    t = np.linspace(0.0, 1.0, n_t)
    grid = Grid((x, t), ("x", "t"))
    return Problem(
        name="diffusion_reaction",
        losses=loss,
        sample=sample,
        in_size=2,
        out_size="scalar",
        test_points=grid.points,
        reference=grid.flatten(reference(ic, x, t, nu, rho)),
        recipe=dataclasses.replace(RECIPE, n_pde=n_pde),
        grid=grid,
        description=f"diffusion-reaction: u_t = {nu:g} u_xx + {rho:g} u (1 - u), periodic, "
        f"u0 = {_describe(ic)}",
    )


diffusion_reaction.recipe = RECIPE  # the default set-up, readable without building
