"""Reference solutions of the viscous Burgers benchmark, by two independent methods.

The problem: u_t + u u_x = nu u_xx, nu = 0.01/pi, x in [-1, 1], t in [0, 1],
u(x, 0) = -sin(pi x), u(-1, t) = u(1, t) = 0. A viscous shock of width ~nu forms at x = 0
near t = 1/pi and keeps steepening for a while: u_x(0, 1/pi) = -34.2 only, the steepest
slope is u_x(0, t) = -152.00516 at t = 1.6037/pi ~ 0.5105, the value published by
Basdevant et al. (1986). `cole_hopf` reproduces it (-152.0051616 at t = 1.603688/pi), and
so does `method_of_lines` (-152.0051604); it is a third, independent check of both.

Methods:

- `cole_hopf`: the exact solution written through the Cole-Hopf transform as a ratio of two
  convolution integrals, evaluated by Gauss-Hermite quadrature after eta = sqrt(4 nu t) z.
  The integrands span exp(+-1/(2 pi nu)) = exp(+-50); the sums run in log space (the
  largest exponent is subtracted before exponentiating), so nothing overflows and no NaN
  appears, down to t = 1e-300. Default `n_quad=128`. Convergence study (max |difference|
  to n_quad = 400 over a 4001 x 201 grid of [-1, 1] x [0, 1]): n_quad = 40: 3.3e-5,
  50: 2.2e-7, 60: 1.2e-9, 70: 1.2e-11, 80: 9.7e-14, 90 and up: ~5e-15 (round-off), always
  near x = 0 at t ~ 1; 128 vs 256 on the test grid: 2.7e-15. Larger t needs more nodes:
  up to t = 3, n_quad = 128 is good to 4e-10 and 200 to 4e-15. Spot checks against
  adaptive `scipy.integrate.quad` of the same integrals (shock included) agree to 3e-15.
- `method_of_lines`: a Fourier pseudo-spectral method of lines solved with diffrax. The
  solution of the odd initial value problem on the 2-periodic domain [-1, 1) stays odd
  (if u solves it, so does -u(-x, t), with the same initial data, and the solution is
  unique), and a 2-periodic odd function vanishes at x = +-1 (u(1) = u(-1) = -u(1)), so the
  periodic problem is the Dirichlet problem. Oddness is *not* imposed: all n_modes complex
  Fourier amplitudes are evolved, and the measured even part |u(x) + u(-x)| stays below
  1e-14, |u(+-1, t)| below 1e-15. The product u^2 in (u^2/2)_x is dealiased by the 3/2 rule;
  the stiff diffusion -nu k^2 is implicit and the advection explicit in the IMEX
  Runge-Kutta scheme `diffrax.KenCarp5`, with adaptive steps (PID controller, rtol 1e-12,
  atol 1e-14 on the mode amplitudes, in float64; steps capped at 1/n_modes, an advective
  CFL number <= pi). The implicit stage equations are diagonal in Fourier space and are
  solved by Newton with a diagonal linear solve (one Jacobian-vector product). The solver
  steps exactly onto every requested time; the series is then summed at the requested x
  (spectral interpolation). Default `n_modes=1024` (wavenumbers pi m, m < 1024).
  Convergence study on the test grid, max |difference| to `cole_hopf` (always at the
  shock, x = +-0.004 or +-0.012, t ~ 0.5): n_modes = 256: 2.0e-4, 384: 4.6e-6,
  512: 5.5e-8, 640: 1.4e-9, 768: 1.6e-11, 1024: 7.7e-12, 1280: 9.0e-12, 1536: 1.0e-11;
  against n_modes = 1536 instead (no `cole_hopf`): 768: 1.6e-11, 1024: 3.2e-12. From 768
  modes on, the time-integration tolerance dominates: at 1024 modes, rtol = 1e-8, 1e-10,
  1e-12, 1e-13 give 3.7e-8, 7.8e-10, 7.7e-12, 8.3e-13. On a 1001 x 11 grid across the
  shock (|x| <= 0.05, 0.25 <= t <= 0.75), 1024 modes agree with `cole_hopf` to 1.0e-11.

Measured agreement on the 256 x 100 test grid (float64, defaults): max |cole_hopf -
method_of_lines| = 7.7e-12, at t = 0.9293, x = -0.0039 (the grid point next to the shock);
relative L2 difference 7.5e-13. Run times on this machine (2 shared CPU cores, after
compilation, for that grid): `cole_hopf` 0.06 s (first call about 0.5 s, compilation
included), `method_of_lines` 2.3-2.6 s (first call about 5 s). Both run in the precision of
their inputs, but float64 is needed for agreement at 1e-4 and below (the test suite checks
1e-9): in float32 both run without NaN, and differ from the float64 `cole_hopf` by 1e-6
(`cole_hopf`) and 1e-5 (`method_of_lines`, rtol 1e-5, atol 1e-7).

References:
    J. D. Cole, "On a quasi-linear parabolic equation occurring in aerodynamics",
    Quart. Appl. Math. 9 (1951) 225-236.
    E. Hopf, "The partial differential equation u_t + u u_x = mu u_xx",
    Comm. Pure Appl. Math. 3 (1950) 201-230.
    C. Basdevant, M. Deville, P. Haldenwang, J. M. Lacroix, J. Ouazzani, R. Peyret,
    P. Orlandi, A. T. Patera, "Spectral and finite difference solutions of the Burgers
    equation", Computers & Fluids 14 (1986) 23-41.
"""

from functools import lru_cache, partial

import diffrax
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import scipy.special
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

__all__ = [
    "NU",
    "BASDEVANT_MAX_SLOPE",
    "BASDEVANT_T_MAX_SLOPE",
    "cole_hopf",
    "method_of_lines",
    "test_grid",
]

NU = 0.01 / np.pi
"""The benchmark viscosity, 0.01/pi."""

BASDEVANT_MAX_SLOPE = 152.00516
"""max_t |u_x(0, t)| for nu = 0.01/pi, published by Basdevant et al. (1986)."""

BASDEVANT_T_MAX_SLOPE = 1.6037 / np.pi
"""The time of that maximum slope, 1.6037/pi ~ 0.5105 (Basdevant et al. 1986)."""

_Scalar = float | Float[Array, ""]


def test_grid() -> tuple[Float[np.ndarray, " 256"], Float[np.ndarray, " 100"]]:
    """The standard Burgers evaluation grid (float64 NumPy arrays).

    x = linspace(-1, 1, 256), t = linspace(0, 1, 100). Reference values and the relative L2
    errors of trained models are taken on the tensor grid, t-major: shape (100, 256).

    Returns:
        (x, t): x of shape (256,) and t of shape (100,).
    """
    return np.linspace(-1.0, 1.0, 256), np.linspace(0.0, 1.0, 100)


test_grid.__test__ = False  # not a pytest test, despite the name


def _common_dtype(x, t):
    dtype = jnp.promote_types(jnp.asarray(x).dtype, jnp.asarray(t).dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"x and t must be floating point, got {dtype}")
    return dtype


# ----------------------------------------------------------------------------- Cole-Hopf


@lru_cache(maxsize=16)
def _hermite_log_rule(n_quad: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and log-weights (weights that underflow to 0 are dropped)."""
    z, w = scipy.special.roots_hermite(n_quad)
    keep = w > 0
    return z[keep], np.log(w[keep])


def cole_hopf(
    x: Float[Array | np.ndarray, " nx"],
    t: Float[Array | np.ndarray, " nt"],
    nu: _Scalar = NU,
    n_quad: int = 128,
) -> Float[Array, "nt nx"]:
    """Exact Burgers solution by the Cole-Hopf transform and Gauss-Hermite quadrature.

    u(x, t) = - int sin(pi (x - eta)) f(x - eta) exp(-eta^2 / (4 nu t)) d eta
                / int f(x - eta) exp(-eta^2 / (4 nu t)) d eta,
    f(y) = exp(-cos(pi y) / (2 pi nu)). With eta = sqrt(4 nu t) z both integrals take the
    Gauss-Hermite form int g(z) exp(-z^2) dz ~ sum_i w_i g(z_i); the sums are evaluated in
    log space (max exponent subtracted), so the exp(+-1/(2 pi nu)) range is harmless. At
    t = 0 the initial condition -sin(pi x) is returned exactly.

    Vectorised and jit-able (`n_quad` static); runs in the dtype of the inputs, but float64
    is needed for agreement with `method_of_lines` at the 1e-4 level and below.

    Args:
        x: positions in [-1, 1], shape (nx,).
        t: times >= 0, shape (nt,).
        nu: viscosity (default 0.01/pi).
        n_quad: Gauss-Hermite order (static). 128 is converged to round-off (~5e-15) for
            t <= 1 (90 would do); use >= 200 for t up to 3.

    Returns:
        u on the tensor grid, shape (nt, nx) (t-major).

    References:
        Cole (1951), Quart. Appl. Math. 9; Hopf (1950), Comm. Pure Appl. Math. 3;
        Basdevant et al. (1986), Computers & Fluids 14, 23-41: the benchmark, with the
        maximum slope |u_x(0, 1.6037/pi)| = 152.00516 that this function reproduces.
    """
    dtype = _common_dtype(x, t)
    return _cole_hopf(jnp.asarray(x, dtype), jnp.asarray(t, dtype), jnp.asarray(nu, dtype), n_quad)


@partial(jax.jit, static_argnames=("n_quad",))
def _cole_hopf(
    x: Float[Array, " nx"], t: Float[Array, " nt"], nu: Float[Array, ""], n_quad: int
) -> Float[Array, "nt nx"]:
    dtype = x.dtype
    z_np, logw_np = _hermite_log_rule(n_quad)
    z = jnp.asarray(z_np, dtype)
    logw = jnp.asarray(logw_np, dtype)
    pi = jnp.asarray(np.pi, dtype)

    def one_time(ti: Float[Array, ""]) -> Float[Array, " nx"]:
        scale = jnp.sqrt(4 * nu * ti)
        y = x[:, None] - scale * z[None, :]  # (nx, n_quad)
        expo = logw[None, :] - jnp.cos(pi * y) / (2 * pi * nu)
        weights = jnp.exp(expo - jnp.max(expo, axis=1, keepdims=True))
        u = -jnp.sum(jnp.sin(pi * y) * weights, axis=1) / jnp.sum(weights, axis=1)
        return jnp.where(ti == 0, -jnp.sin(pi * x), u)

    # lax.map keeps memory at nx * n_quad per batch of 16 times, whatever nt is.
    return jax.lax.map(one_time, t, batch_size=16)


# ----------------------------------------------------------------------- method of lines


class _DiagonalJacobianSolve(lx.AbstractLinearSolver):
    """Solves J d = b for a Jacobian J known to be diagonal: diag(J) = J @ ones (one JVP).

    Used for the implicit stages of `KenCarp5`, whose only implicit term is the diffusion
    -nu k^2, diagonal in Fourier space. (Diffrax builds the stage Jacobian without a
    diagonal tag, so `lineax.Diagonal` cannot be used directly; the default dense LU would
    cost O(n^3) per step.)
    """

    def init(self, operator, options):
        del options
        ones = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), operator.in_structure())
        diag, _ = ravel_pytree(operator.mv(ones))
        return diag

    def compute(self, state, vector, options):
        del options
        flat, unravel = ravel_pytree(vector)
        return unravel(flat / state), lx.RESULTS.successful, {}

    def transpose(self, state, options):
        del options
        return state, {}

    def conj(self, state, options):
        del options
        return state.conj(), {}

    def assume_full_rank(self):
        return True


def _default_tols(dtype) -> tuple[float, float]:
    if jnp.finfo(dtype).bits >= 64:
        return 1e-12, 1e-14
    return 1e-5, 1e-7


@partial(jax.jit, static_argnames=("n_modes", "rtol", "atol", "max_steps"))
def _mol_coefficients(
    t_sorted: Float[Array, " nt"],
    nu: Float[Array, ""],
    n_modes: int,
    rtol: float,
    atol: float,
    max_steps: int,
) -> Float[Array, "nt 2 n_modes"]:
    """Real and imaginary parts of c_m(t), u = sum_m Re(c_m exp(i pi m (x + 1)))."""
    dtype = t_sorted.dtype
    m = n_modes
    n_pad = 3 * m  # 3/2-rule: 3m points resolve all products of modes < m without aliasing
    k = jnp.pi * jnp.arange(m, dtype=dtype)
    k2 = k * k
    # amplitude c_m <-> rfft coefficient on n_pad points: c_0 = X_0 / n, c_m = 2 X_m / n
    to_rfft = jnp.where(jnp.arange(m) == 0, 1.0, 0.5).astype(dtype) * n_pad
    from_rfft = jnp.where(jnp.arange(m) == 0, 1.0, 2.0).astype(dtype) / n_pad

    def advection(t, y, args):
        del t, args
        c = jax.lax.complex(y[0], y[1])
        spec = jnp.zeros(n_pad // 2 + 1, c.dtype).at[:m].set(c * to_rfft.astype(c.dtype))
        u = jnp.fft.irfft(spec, n=n_pad)
        w = jnp.fft.rfft(u * u)[:m] * from_rfft.astype(c.dtype)
        # d c / dt = -i k w / 2, with w the amplitudes of u^2
        return jnp.stack([k * jnp.imag(w) / 2, -k * jnp.real(w) / 2])

    def diffusion(t, y, args):
        del t, args
        return -nu * k2[None, :] * y

    # u(x, 0) = -sin(pi x) = sin(pi (x + 1)) = Re(-i exp(i pi (x + 1))): c_1 = -i, exactly.
    y0 = jnp.zeros((2, m), dtype).at[1, 1].set(-1.0)
    root_finder = diffrax.with_stepsize_controller_tols(optx.Newton)(
        linear_solver=_DiagonalJacobianSolve()
    )
    # dtmax: |u| <= 1 (maximum principle), so h <= 1/m keeps the explicit advection at
    # CFL h |u| k_max <= pi, inside the stability region of the explicit tableau. Without
    # it the controller takes unstable steps while the unstable components are still below
    # atol (the even part then grows from round-off to ~atol).
    controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmax=1.0 / m)
    terms = diffrax.MultiTerm(diffrax.ODETerm(advection), diffrax.ODETerm(diffusion))
    solver = diffrax.KenCarp5(root_finder=root_finder)

    def advance(y, t_pair):
        # One solve per output interval, saving only its end point: the outputs are step
        # end points, never the (lower-order) dense output. (That also keeps diffrax's
        # float64 interpolation constants away from a float32 state.)
        ta, tb = t_pair

        def solve(y):
            sol = diffrax.diffeqsolve(
                terms,
                solver,
                t0=ta,
                t1=tb,
                dt0=None,
                y0=y,
                saveat=diffrax.SaveAt(t1=True),
                stepsize_controller=controller,
                max_steps=max_steps,
            )
            return sol.ys[0]

        y = jax.lax.cond(tb > ta, solve, lambda y: y, y)
        return y, y

    t_start = jnp.concatenate([jnp.zeros((1,), dtype), t_sorted[:-1]])
    _, ys = jax.lax.scan(advance, y0, (t_start, t_sorted))
    return ys


def method_of_lines(
    x: Float[Array | np.ndarray, " nx"],
    t: Float[Array | np.ndarray, " nt"],
    nu: _Scalar = NU,
    n_modes: int = 1024,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 100_000,
) -> Float[Array, "nt nx"]:
    """Burgers solution by a Fourier pseudo-spectral method of lines (diffrax, IMEX RK).

    u(x, t) = sum_{m < n_modes} Re(c_m(t) exp(i pi m (x + 1))) on the 2-periodic domain,
    dc_m/dt = -(i pi m / 2) (u^2)^_m - nu (pi m)^2 c_m, c_1(0) = -i (i.e. u = -sin(pi x)).
    The product u^2 is formed on 3 n_modes points (3/2-rule dealiasing); diffusion is
    implicit and advection explicit in `diffrax.KenCarp5`, with adaptive PID step control.
    Oddness, hence u(+-1, t) = 0, is preserved by the equation, not imposed. The series is
    summed at the requested x (spectral interpolation).

    Jit-able with `n_modes`, `rtol`, `atol`, `max_steps` static; the solve itself is
    jit-compiled and cached per (n_modes, tolerances, dtype, len(t)). Runs in the dtype of
    the inputs; float64 is needed for the default tolerances and for the 1e-4 (in fact
    ~1e-11) agreement with `cole_hopf`.

    Args:
        x: positions in [-1, 1], shape (nx,).
        t: times >= 0, in any order, repeats allowed, shape (nt,).
        nu: viscosity (default 0.01/pi).
        n_modes: number of Fourier modes m = 0..n_modes-1 (static). 1024 agrees with
            `cole_hopf` to 8e-12 on the test grid; 768 to 2e-11; 512 to 6e-8; 256 to 2e-4
            (shock under-resolved).
        rtol: relative tolerance of the step controller (default 1e-12; 1e-5 in float32).
        atol: absolute tolerance on the mode amplitudes (default 1e-14; 1e-7 in float32).
        max_steps: diffrax step limit per output interval.

    Returns:
        u on the tensor grid, shape (nt, nx) (t-major).

    References:
        Basdevant et al. (1986), "Spectral and finite difference solutions of the Burgers
        equation", Computers & Fluids 14, 23-41 (Fourier and other spectral solutions of
        this very problem); Kennedy & Carpenter (2003), Appl. Numer. Math. 44, 139-181
        (the ARK5(4)8L[2]SA IMEX scheme behind `diffrax.KenCarp5`).
    """
    dtype = _common_dtype(x, t)
    x = jnp.asarray(x, dtype)
    t = jnp.asarray(t, dtype)
    default_rtol, default_atol = _default_tols(dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol

    order = jnp.argsort(t)
    coeffs_sorted = _mol_coefficients(
        t[order], jnp.asarray(nu, dtype), n_modes, rtol, atol, max_steps
    )
    coeffs = jnp.zeros_like(coeffs_sorted).at[order].set(coeffs_sorted)

    theta = jnp.pi * jnp.arange(n_modes, dtype=dtype)[None, :] * (x[:, None] + 1)
    re = coeffs[:, 0, :] @ jnp.cos(theta).T
    im = coeffs[:, 1, :] @ jnp.sin(theta).T
    return re - im
