"""Timing of input-derivative formulations for PINN residuals (backs pinnx.operators' choices).

Run from the repository root::

    python benchmarks/operators.py                 # full run, a few minutes on 2 CPU cores
    python benchmarks/operators.py --repeats 10    # quicker, noisier

Three tables, all over ``--points`` random collocation points (default 2000) of a tanh MLP with
4 hidden layers of 64 units, float32, every function jitted and warmed up; each cell is the
median over ``--rounds`` x ``--repeats`` calls (rounds interleave the methods, so background
load hits all of them alike):

1. Burgers residual u_t + u u_x - (0.01/pi) u_xx (input (x, t)), its evaluation and ONE SGD
   step on the mean squared residual w.r.t. the MLP weights, for nested reverse mode
   (``jax.hessian``, and grad-of-grad), ``pinnx.operators`` (nested ``jax.jvp``) and Taylor
   mode (``jax.experimental.jet``).
2. ``derivatives`` along one coordinate, orders 1-4: nested jvp vs jet.
3. Laplacian of a 3-input MLP: loop of jvp-of-jvp (pinnx), vmap of jvp-of-jvp over
   coordinates, trace of jacfwd(jacfwd), vmapped jet, trace of ``jax.hessian``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import jet

from pinnx import operators as ops

NU = 0.01 / np.pi


def init_mlp(key: jax.Array, d_in: int, width: int = 64, depth: int = 4) -> list:
    sizes = [d_in] + [width] * depth + [1]
    params = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (a, b)) * np.sqrt(2.0 / (a + b)), jnp.zeros(b)))
    return params


def mlp(params: list, z: jax.Array) -> jax.Array:
    h = z
    for w, b in params[:-1]:
        h = jnp.tanh(h @ w + b)
    w, b = params[-1]
    return (h @ w + b)[0]


def unit(x: jax.Array, i: int) -> jax.Array:
    return jnp.zeros_like(x).at[i].set(1)


# --------------------------------------------------------------------------- Burgers residuals
# Each maps (field, point (x, t)) -> residual at that point.


def burgers_hessian(f, p):
    g, h = jax.grad(f)(p), jax.hessian(f)(p)
    return g[1] + f(p) * g[0] - NU * h[0, 0]


def burgers_grad_of_grad(f, p):
    g = jax.grad(f)(p)
    u_xx = jax.grad(lambda z: jax.grad(f)(z)[0])(p)[0]
    return g[1] + f(p) * g[0] - NU * u_xx


def burgers_pinnx(f, p):
    u, u_x, u_xx = ops.derivatives(f, p, 0, 2)
    return ops.time_derivative(f, p) + u * u_x - NU * u_xx


def burgers_jet(f, p):
    zero = jnp.zeros_like(p)
    u, (u_x, u_xx) = jet.jet(f, (p,), ((unit(p, 0), zero),))
    _, (u_t,) = jet.jet(f, (p,), ((unit(p, 1),),))
    return u_t + u * u_x - NU * u_xx


# --------------------------------------------------------------------------- timing


def timed(fn: Callable, *args) -> Callable[[], float]:
    """Compile and warm up fn(*args); return a closure giving one call's wall time in ms."""
    jax.block_until_ready(fn(*args))
    jax.block_until_ready(fn(*args))

    def once() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return (time.perf_counter() - t0) * 1e3

    return once


def medians(cases: dict[str, Callable[[], float]], rounds: int, repeats: int) -> dict:
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, once in cases.items():
            samples[name] += [once() for _ in range(repeats)]
    return {k: float(np.median(v)) for k, v in samples.items()}


def residual_and_step(pointwise: Callable, params: list, X: jax.Array):
    """Jitted residual over X and one jitted SGD step on mean(residual^2)."""

    def residual(params, X):
        return jax.vmap(lambda p: pointwise(lambda z: mlp(params, z), p))(X)

    def step(params, X):
        loss, g = jax.value_and_grad(lambda q: jnp.mean(residual(q, X) ** 2))(params)
        return loss, jax.tree.map(lambda a, b: a - 1e-3 * b, params, g)

    return jax.jit(residual), jax.jit(step)


def ratio_rows(t: dict, names, base: str) -> list[list[str]]:
    """Rows of (name, eval ms, step ms, eval ratio, step ratio) against `base`."""
    return [
        [
            name,
            f"{t[(name, 'res')]:.2f}",
            f"{t[(name, 'step')]:.2f}",
            f"{t[(name, 'res')] / t[(base, 'res')]:.2f}x",
            f"{t[(name, 'step')] / t[(base, 'step')]:.2f}x",
        ]
        for name in names
    ]


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    print(f"\n{title}\n{line(header)}\n{'  '.join('-' * w for w in widths)}")
    for r in rows:
        print(line(r))


# --------------------------------------------------------------------------- sections


def bench_burgers(X, params, rounds, repeats):
    methods = {
        "(a) reverse: jax.hessian": burgers_hessian,
        "(a) reverse: grad of grad": burgers_grad_of_grad,
        "(b) pinnx.operators (nested jvp)": burgers_pinnx,
        "(c) jet (Taylor mode)": burgers_jet,
    }
    ref = None
    cases = {}
    for name, pointwise in methods.items():
        res, step = residual_and_step(pointwise, params, X)
        r = res(params, X)
        ref = r if ref is None else ref
        err = float(jnp.max(jnp.abs(r - ref)))
        assert err < 1e-3, f"{name} disagrees with nested reverse mode by {err}"
        cases[(name, "res")] = timed(res, params, X)
        cases[(name, "step")] = timed(step, params, X)
    t = medians(cases, rounds, repeats)
    base = "(b) pinnx.operators (nested jvp)"
    rows = ratio_rows(t, methods, base)
    table(
        f"Burgers residual, 4x64 tanh MLP, {X.shape[0]} points (median ms; ratio to pinnx)",
        ["method", "residual", "grad step", "residual/pinnx", "step/pinnx"],
        rows,
    )


def bench_derivatives(X, params, rounds, repeats, orders=(1, 2, 3, 4)):
    def via_jet(f, p, order):
        zero = jnp.zeros_like(p)
        u, series = jet.jet(f, (p,), ((unit(p, 0),) + (zero,) * (order - 1),))
        return (u, *series)

    cases = {}
    for order in orders:
        for name, fn in {
            "jvp": lambda f, p, k=order: ops.derivatives(f, p, 0, k),
            "jet": lambda f, p, k=order: via_jet(f, p, k),
        }.items():
            # Sum of all returned derivatives, so no order can be dead-code eliminated.
            res, step = residual_and_step(lambda f, p, fn=fn: sum(fn(f, p)), params, X)
            cases[(order, name, "res")] = timed(res, params, X)
            cases[(order, name, "step")] = timed(step, params, X)
    t = medians(cases, rounds, repeats)
    rows = [
        [
            str(k),
            f"{t[(k, 'jvp', 'res')]:.2f}",
            f"{t[(k, 'jet', 'res')]:.2f}",
            f"{t[(k, 'jet', 'res')] / t[(k, 'jvp', 'res')]:.2f}x",
            f"{t[(k, 'jvp', 'step')]:.2f}",
            f"{t[(k, 'jet', 'step')]:.2f}",
            f"{t[(k, 'jet', 'step')] / t[(k, 'jvp', 'step')]:.2f}x",
        ]
        for k in orders
    ]
    table(
        "derivatives(f, x, 0, order): all of u..u^(order), nested jvp vs jet (median ms)",
        ["order", "jvp eval", "jet eval", "jet/jvp", "jvp step", "jet step", "jet/jvp"],
        rows,
    )


def bench_laplacian(X, params, rounds, repeats):
    def lap_vmap(f, x):
        def second(e):
            return jax.jvp(lambda z: jax.jvp(f, (z,), (e,))[1], (x,), (e,))[1]

        return jnp.sum(jax.vmap(second)(jnp.eye(x.shape[0], dtype=x.dtype)))

    def lap_jet(f, x):
        zero = jnp.zeros_like(x)
        eye = jnp.eye(x.shape[0], dtype=x.dtype)
        return jnp.sum(jax.vmap(lambda e: jet.jet(f, (x,), ((e, zero),))[1][1])(eye))

    methods = {
        "pinnx.laplacian (loop of jvp-of-jvp)": ops.laplacian,
        "vmap of jvp-of-jvp over coordinates": lap_vmap,
        "trace of jacfwd(jacfwd)": lambda f, x: jnp.trace(jax.jacfwd(jax.jacfwd(f))(x)),
        "vmap of jet over coordinates": lap_jet,
        "trace of jax.hessian (reverse)": lambda f, x: jnp.trace(jax.hessian(f)(x)),
    }
    cases = {}
    for name, fn in methods.items():
        res, step = residual_and_step(fn, params, X)
        cases[(name, "res")] = timed(res, params, X)
        cases[(name, "step")] = timed(step, params, X)
    t = medians(cases, rounds, repeats)
    base = "pinnx.laplacian (loop of jvp-of-jvp)"
    rows = ratio_rows(t, methods, base)
    table(
        f"Laplacian, d={X.shape[1]} inputs, 4x64 tanh MLP (median ms; ratio to pinnx)",
        ["method", "eval", "grad step", "eval/pinnx", "step/pinnx"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=20, help="calls per round (>= 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--only", choices=["burgers", "derivatives", "laplacian"], help="run one table"
    )
    args = parser.parse_args()

    key = jax.random.PRNGKey(0)
    k_net2, k_net3, k_x2, k_x3 = jax.random.split(key, 4)
    X2 = jax.random.uniform(k_x2, (args.points, 2), minval=jnp.array([-1.0, 0.0]))
    X3 = jax.random.uniform(k_x3, (args.points, 3), minval=-1.0)
    params2, params3 = init_mlp(k_net2, 2), init_mlp(k_net3, 3)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}; "
        f"{args.rounds} rounds x {args.repeats} repeats"
    )
    if args.only in (None, "burgers"):
        bench_burgers(X2, params2, args.rounds, args.repeats)
    if args.only in (None, "derivatives"):
        bench_derivatives(X2, params2, args.rounds, args.repeats)
    if args.only in (None, "laplacian"):
        bench_laplacian(X3, params3, args.rounds, args.repeats)


if __name__ == "__main__":
    main()
