"""Helmholtz, the learning-rate-annealing set-up: plain Adam against conflict-aware combiners.

u_xx + u_yy + u = q on [-1, 1]^2, u = sin(pi x) sin(4 pi y) (Wang, Teng, Perdikaris 2021).
3 tanh layers of 50, 128 residual points and 128 points per edge, fresh every step, Adam
1e-3 decayed by 0.9 every 1,000 steps, 40,000 steps. Every method gets the same networks,
batches and schedule; only the combiner differs. The seeds of one method train together
(`jax.vmap` over the seed: one compiled step updates all of them), which is plain JAX: the
pinnx transforms are pure functions of their state.

    python examples/helmholtz_conflict.py                      # the paper budget (use a GPU)
    python examples/helmholtz_conflict.py --steps 2000 --methods adam,lra,dcgd_center

Prints a table of relative L2 errors (mean, min, max over seeds, at the last step) and step
times, and writes results.json and a bar chart to --out.
"""

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import pinnx
from pinnx.problems.helmholtz import helmholtz

ADAM = optax.adam

METHODS = {
    # name: (what it is, optimizer factory of the learning-rate schedule)
    "adam": ("Adam on the summed loss", lambda lr: pinnx.sum() | ADAM(lr)),
    "lra": ("LRA weights (main task pde) + Adam",
            lambda lr: pinnx.lra(main="pde") | pinnx.sum() | ADAM(lr)),
    "dcgd_center": ("DCGD (center) + Adam", lambda lr: pinnx.dcgd("center") | ADAM(lr)),
    "config": ("ConFIG + Adam", lambda lr: pinnx.config() | ADAM(lr)),
    "pcgrad": ("PCGrad + Adam", lambda lr: pinnx.pcgrad() | ADAM(lr)),
    "mgda": ("MGDA + Adam", lambda lr: pinnx.mgda() | ADAM(lr)),
    "upgrad": ("UPGrad + Adam", lambda lr: pinnx.upgrad() | ADAM(lr)),
    "multiadam": ("MultiAdam (per-task Adam, mean)",
                  lambda lr: pinnx.multiadam() | optax.scale_by_learning_rate(lr)),
}


def schedule(lr: float = 1e-3):
    return optax.exponential_decay(lr, transition_steps=1000, decay_rate=0.9, staircase=True)


def train(make, seeds, steps, problem, chunk=1000, width=50, depth=3):
    """Train one model per seed, all seeds in one vmapped step; returns models and timing."""
    opt = make(schedule())
    tasks = ("bc", "pde")

    def init(seed):
        model = pinnx.nn.MLP(2, "scalar", width=width, depth=depth, key=jax.random.key(seed))
        params, static = eqx.partition(model, eqx.is_inexact_array)
        return params, opt.init(params, tasks=tasks), static

    static = init(0)[2]
    params, state = jax.vmap(lambda s: init(s)[:2])(jnp.asarray(seeds))

    def one(params, state, key):
        batch = problem.sample(key)
        losses, grads = pinnx.task_grads(problem.losses, eqx.combine(params, static), batch)
        updates, state = opt.update(grads, state, params, losses=losses)
        return eqx.apply_updates(params, updates), state, jnp.stack([losses[t] for t in tasks])

    @jax.jit
    def run_chunk(params, state, keys):
        def body(carry, key):
            p, s = carry
            p, s, lvec = jax.vmap(one)(p, s, key)
            return (p, s), lvec

        return jax.lax.scan(body, (params, state), keys)

    data_keys = jax.vmap(lambda s: jax.random.key(10_000 + s))(jnp.asarray(seeds))
    losses, t_run = [], 0.0
    for start in range(0, steps, chunk):
        n = min(chunk, steps - start)
        idx = jnp.arange(start, start + n)
        keys = jax.vmap(lambda k, idx=idx: jax.vmap(lambda i: jax.random.fold_in(k, i))(idx),
                        out_axes=1)(data_keys)
        t0 = time.perf_counter()
        (params, state), lvec = run_chunk(params, state, keys)
        jax.block_until_ready(lvec)
        dt = time.perf_counter() - t0
        if start > 0:  # the first chunk holds the compilation
            t_run += dt
        losses.append(np.asarray(lvec))
    timed = steps - min(chunk, steps)
    ms = 1e3 * t_run / timed if timed else float("nan")  # one chunk: compile only
    models = [eqx.combine(jax.tree.map(lambda x, i=i: x[i], params), static)
              for i in range(len(seeds))]
    return models, np.concatenate(losses), ms, state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default="results/helmholtz")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = helmholtz()
    seeds = list(range(args.seeds))
    print(f"Helmholtz, {args.steps} steps, seeds {seeds}, device {jax.devices()[0]}")
    results = {}
    for name in names:
        what, make = METHODS[name]
        t0 = time.perf_counter()
        models, losses, ms, _ = train(make, seeds, args.steps, problem)
        errors = [problem.relative_l2(m) for m in models]
        results[name] = dict(method=what, errors=errors, ms_per_step=ms,
                             final_losses=losses[-1].tolist(),
                             wall_s=time.perf_counter() - t0)
        print(f"  {name:12s} rel L2 {np.mean(errors):.2e} [{np.min(errors):.2e}, "
              f"{np.max(errors):.2e}]  {ms:6.2f} ms/step ({len(seeds)} seeds batched)",
              flush=True)
    (out / "results.json").write_text(json.dumps(dict(steps=args.steps, seeds=seeds,
                                                      device=str(jax.devices()[0]),
                                                      results=results), indent=2))
    print()
    print("| method | rel. L2 mean | min | max | ms/step |")
    print("|---|---|---|---|---|")
    for r in results.values():
        e = r["errors"]
        print(f"| {r['method']} | {np.mean(e):.2e} | {np.min(e):.2e} | {np.max(e):.2e} | "
              f"{r['ms_per_step']:.2f} |")
    _bar_chart(results, out / "helmholtz_conflict.png", args.steps)
    print(f"\nwrote {out / 'results.json'} and {out / 'helmholtz_conflict.png'}")
    return results


def _bar_chart(results, path, steps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    errs = [np.asarray(results[n]["errors"]) for n in names]
    mean = np.array([e.mean() for e in errs])
    lo = mean - np.array([e.min() for e in errs])
    hi = np.array([e.max() for e in errs]) - mean
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 4), constrained_layout=True)
    ax.bar(names, mean, yerr=[lo, hi], capsize=4, color="tab:blue")
    ax.set_yscale("log")
    ax.set(ylabel="relative L2 error", title=f"Helmholtz (a1, a2) = (1, 4), {steps} steps")
    ax.tick_params(axis="x", rotation=30)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
