"""Step time of pinnx against a hand-written JAX training step, measured in one process.

The set-up of ../shared/BENCHMARKS.md ("Speed"): a Burgers PINN, 4 tanh layers of 64 units,
2,000 residual, 200 initial and 200 boundary points, Adam. Three steps are timed:

- hand: a hand-written step: nested `jax.jvp` for u_x, u_xx and u_t, the summed loss,
  `jax.value_and_grad`, `optax.adam`;
- pinnx vanilla: the step `pinnx.fit` scans (`pinnx.make_step`), with `optax.adam` on the
  summed loss;
- pinnx <combiner>: the same step with `<combiner> | optax.adam(...)`, i.e. per-task
  gradients (`pinnx.task_grads`, K = 3) and the combiner, for every combiner of
  `combiner_scaling.COMBINERS` (or those named by `--only`).

Each step runs inside one jitted `lax.scan` of `--steps` steps (so no Python dispatch is
timed); the variants are interleaved over `--rounds` rounds and the median is reported.
Targets: pinnx vanilla <= 1.05x hand, every aggregator <= 1.15x hand.

Run: `python benchmarks/step_time.py [--steps 200] [--rounds 7] [--only pcgrad,mgda]
[--json out.json]`
"""

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from combiner_scaling import COMBINERS

import pinnx

NU = 0.01 / np.pi


def hand_written(batch, lr):
    """A PINN step as one would write it by hand: MLP params as a list of (W, b)."""

    def init(key, sizes):
        keys = jax.random.split(key, len(sizes) - 1)
        glorot = jax.nn.initializers.glorot_normal()
        return [(glorot(k, (o, i)), jnp.zeros(o)) for k, i, o in
                zip(keys, sizes[:-1], sizes[1:], strict=True)]

    def u(params, x):
        h = x
        for w, b in params[:-1]:
            h = jnp.tanh(w @ h + b)
        w, b = params[-1]
        return (w @ h + b)[0]

    ex, et = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])

    def residual(params, x):
        f = lambda z: u(params, z)  # noqa: E731
        (u0, ux), (_, uxx) = jax.jvp(lambda z: jax.jvp(f, (z,), (ex,)), (x,), (ex,))
        ut = jax.jvp(f, (x,), (et,))[1]
        return ut + u0 * ux - NU * uxx

    def loss(params):
        r = jax.vmap(residual, (None, 0))(params, batch["pde"])
        u0 = jax.vmap(u, (None, 0))(params, batch["ic"])
        ub = jax.vmap(u, (None, 0))(params, batch["bc"])
        return (jnp.mean(r**2) + jnp.mean((u0 + jnp.sin(jnp.pi * batch["ic"][:, 0])) ** 2)
                + jnp.mean(ub**2))

    tx = optax.adam(lr)

    def step(carry, _):
        params, state = carry
        g = jax.grad(loss)(params)
        updates, state = tx.update(g, state, params)
        return (optax.apply_updates(params, updates), state), None

    params = init(jax.random.key(0), [2, 64, 64, 64, 64, 1])
    return step, (params, tx.init(params))


def pinnx_step(problem, batch, optimizer):
    model = pinnx.nn.MLP(2, "scalar", width=64, depth=4, key=jax.random.key(0))
    return pinnx.make_step(problem.losses, model, optimizer, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed scan")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--only", help="comma-separated combiner names (default: all)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(COMBINERS)

    problem = pinnx.problems.burgers(n_pde=2000, n_ic=200, n_bc=200)
    batch = problem.sample(jax.random.key(1))
    lr = 1e-3
    variants = {
        "hand-written JAX": hand_written(batch, lr),
        "pinnx vanilla (adam)": pinnx_step(problem, batch, optax.adam(lr)),
    }
    for name in names:
        variants[f"pinnx {name}"] = pinnx_step(problem, batch,
                                               COMBINERS[name](3) | optax.adam(lr))
    runners = {}
    for name, (step, carry) in variants.items():
        run = jax.jit(lambda c, s=step: jax.lax.scan(s, c, jnp.arange(args.steps))[0])
        t = time.perf_counter()
        jax.block_until_ready(run(carry))
        print(f"compiled {name} in {time.perf_counter() - t:.1f} s")
        runners[name] = (run, carry)
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (run, carry) in runners.items():
            t = time.perf_counter()
            jax.block_until_ready(run(carry))
            times[name].append((time.perf_counter() - t) / args.steps * 1e3)
    base = float(np.median(times["hand-written JAX"]))
    device = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    print(f"\nBurgers 4x64 tanh, 2000/200/200 points, Adam; {args.steps} steps per scan, "
          f"median of {args.rounds} rounds; jax {jax.__version__} on {jax.devices()[0]} "
          f"({device})")
    print(f"{'step':<32}{'ms/step':>10}{'ratio':>8}{'min ms':>9}{'max ms':>9}")
    results = {}
    for name, ts in times.items():
        med = float(np.median(ts))
        results[name] = {"ms_per_step": med, "ratio": med / base, "all_ms": ts}
        print(f"{name:<32}{med:>10.2f}{med / base:>8.3f}{min(ts):>9.2f}{max(ts):>9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "jax": jax.__version__, "results": results}, f,
                      indent=2)


if __name__ == "__main__":
    main()
