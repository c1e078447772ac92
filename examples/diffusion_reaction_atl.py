"""ATL-PINN on 1D diffusion-reaction: a single-task PINN against four multi-task networks.

u_t = 0.5 u_xx + u (1 - u), x in [0, 1] periodic, t in [0, 1]. The main task's initial
condition is `MAIN_BUMPS` (two periodic bumps); one auxiliary task, the same PDE from
another member of the bump family (`sample_bumps(key(1), 1)`), is learned alongside it by a
hard sharing, soft sharing (cross-stitch), MMoE or PLE network, each with and without the
cosine gate on its shared parameters (Yan et al. 2023); optionally (`--modes ...,softd`)
soft sharing by a parameter-distance penalty (no shared parameters, so no gated variant).
The baseline is a single-task PINN (an MLP) on the main task alone. Every method: the
paper's loss weights (initial condition x100), 500 residual, 100 initial and 100 periodicity
points drawn afresh every step (the same draws for every method), Adam 1e-3, the same number
of steps and the same seeds. Networks: tanh, width 32; the single-task MLP has 4 hidden
layers, the multi-task nets 4 layers on every input-to-output path (3 shared or expert
layers + 1 head layer; PLE: 3 extraction levels of 1-layer experts + 1 tower layer). The
reported model is the last step's.

    python examples/diffusion_reaction_atl.py                    # quick: 1 seed, 1,500 steps
    python examples/diffusion_reaction_atl.py --seeds 3          # the table in docs/atl.md
    python examples/diffusion_reaction_atl.py --steps 30000     # the paper's step count

Prints a table of the main task's relative L2 error (mean, std, min, max over seeds) against
the diffrax reference, and writes results.json, results.md and two figures to --out.
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

from pinnx.atl import TaskOutput, auxiliary_tasks, distance_penalty
from pinnx.combine._gate import cosine_gate
from pinnx.combine._linear import sum as sum_rows
from pinnx.nn._hard_sharing import HardSharing
from pinnx.nn._mlp import MLP
from pinnx.nn._mmoe import MMoE
from pinnx.nn._ple import PLE
from pinnx.nn._soft_sharing import SoftSharing
from pinnx.problems.diffusion_reaction import MAIN_BUMPS, diffusion_reaction, sample_bumps
from pinnx.tasks import task_grads

WIDTH = 32
NETS = {
    # name: (what it is, network factory of (K, key))
    "single": ("single-task PINN (MLP 4 x 32)",
               lambda k, key: MLP(2, "scalar", WIDTH, 4, key=key)),
    "hard": ("hard sharing (trunk 3 x 32, heads 1 x 32)",
             lambda k, key: HardSharing(2, "scalar", k, WIDTH, 3, key=key)),
    "soft": ("soft sharing (cross-stitch, columns 3 x 32, heads 1 x 32)",
             lambda k, key: SoftSharing(2, "scalar", k, WIDTH, 3, key=key)),
    "softd": ("soft sharing (distance penalty 1e-3, columns 3 x 32, heads 1 x 32)",
              lambda k, key: SoftSharing(2, "scalar", k, WIDTH, 3, key=key,
                                         coupling="distance")),
    "mmoe": ("MMoE (3 experts 3 x 32, towers 1 x 32)",
             lambda k, key: MMoE(2, "scalar", k, 3, WIDTH, 3, key=key)),
    "ple": ("PLE (3 levels, 1 shared + 1 task expert of 1 x 32, towers 1 x 32)",
            lambda k, key: PLE(2, "scalar", k, WIDTH, 1, levels=3, key=key)),
}
WEIGHTS = {"ic": 100.0}  # the paper code's initial-condition weight (bc and pde: 1)
DISTANCE = 1e-3  # weight of softd's distance penalty (not from the paper; not tuned)
UNGATED = {"softd"}  # nothing shared by construction: a gate on shared parameters is moot


def methods(modes):
    """(name, net, uses auxiliary task, gated) for the baseline and every mode +- gate."""
    out = [("single", "single", False, False)]
    for mode in modes:
        out.append((mode, mode, True, False))
        if mode not in UNGATED:
            out.append((f"{mode}+gate", mode, True, True))
    return out


def optimizer(net, gated, lr):
    if gated:
        return cosine_gate(main="main", where=net.shared_mask) | sum_rows() | optax.adam(lr)
    return sum_rows() | optax.adam(lr)


def train(losses, sample, make_net, k, gated, seeds, steps, lr, chunk=250):
    """Train one network per seed, the seeds in one vmapped step; returns models, ms/step."""
    def init(seed):
        net = make_net(k, jax.random.key(seed))
        params, static = eqx.partition(net, eqx.is_inexact_array)
        return params, static, net

    params0, static, net0 = init(0)
    opt = optimizer(net0, gated, lr)
    names = tuple(sorted(jax.eval_shape(losses, net0, sample(jax.random.key(0)))))
    params = jax.vmap(lambda s: init(s)[0])(jnp.asarray(seeds))
    state = jax.vmap(lambda p: opt.init(p, tasks=names))(params)

    def one(params, state, key):
        batch = sample(key)
        values, grads = task_grads(losses, eqx.combine(params, static), batch)
        updates, state = opt.update(grads, state, params, losses=values)
        return eqx.apply_updates(params, updates), state

    @jax.jit
    def run_chunk(params, state, keys):
        def body(carry, key):
            p, s = carry
            return jax.vmap(one, in_axes=(0, 0, None))(p, s, key), None

        return jax.lax.scan(body, (params, state), keys)[0]

    t_run, timed = 0.0, 0
    for start in range(0, steps, chunk):
        n = min(chunk, steps - start)
        # the same batches for every method and seed: a key per step
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(1234), i))(
            jnp.arange(start, start + n))
        t0 = time.perf_counter()
        params, state = run_chunk(params, state, keys)
        jax.block_until_ready(params)
        if start > 0:  # the first chunk holds the compilation
            t_run += time.perf_counter() - t0
            timed += n
    models = [eqx.combine(jax.tree.map(lambda x, i=i: x[i], params), static)
              for i in range(len(seeds))]
    return models, (1e3 * t_run / timed if timed else float("nan"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--modes", default="hard,soft,mmoe,ple")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-pde", type=int, default=500)
    parser.add_argument("--out", default="results/diffusion_reaction_atl")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in NETS or m == "single"]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from hard, soft, softd, mmoe, ple")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))

    aux_ic = sample_bumps(jax.random.key(1), 1)

    def make(ic):
        return diffusion_reaction(ic, n_pde=args.n_pde, n_ic=100, n_bc=100)

    atl = auxiliary_tasks(make, MAIN_BUMPS, aux_ic, weights=WEIGHTS)
    single = auxiliary_tasks(lambda ic: atl.problems[0], MAIN_BUMPS, [], weights=WEIGHTS)
    print(f"diffusion-reaction ATL, {args.steps} steps, seeds {seeds}, device "
          f"{jax.devices()[0]}")
    print(f"  main IC {MAIN_BUMPS}\n  aux IC  {aux_ic[0]}")
    results = {}
    models = {}
    for name, net, aux, gated in methods(modes):
        tasks = atl if aux else single
        t0 = time.perf_counter()
        losses = distance_penalty(tasks.losses, DISTANCE) if net == "softd" else tasks.losses
        trained, ms = train(losses, tasks.sample, NETS[net][1], tasks.num_tasks, gated,
                            seeds, args.steps, args.lr)
        errors = [tasks.relative_l2(m, 0) for m in trained]
        aux_errors = [tasks.relative_l2(m, 1) for m in trained] if aux else []
        what = NETS[net][0] + (" + cosine gate" if gated else "")
        results[name] = dict(method=what, errors=errors, aux_errors=aux_errors,
                             ms_per_step=ms, wall_s=time.perf_counter() - t0)
        models[name] = trained[0]
        print(f"  {name:10s} main rel L2 {np.mean(errors):.3e} +- {np.std(errors):.1e} "
              f"[{np.min(errors):.2e}, {np.max(errors):.2e}]  {ms:6.2f} ms/step "
              f"({len(seeds)} seeds batched)", flush=True)
    meta = dict(steps=args.steps, seeds=seeds, lr=args.lr, n_pde=args.n_pde,
                weights=WEIGHTS, main_ic=MAIN_BUMPS._asdict(), aux_ic=aux_ic[0]._asdict(),
                device=str(jax.devices()[0]))
    (out / "results.json").write_text(json.dumps(dict(meta, results=results), indent=2))
    table = _table(results)
    (out / "results.md").write_text(table + "\n")
    print()
    print(table)
    _bar_chart(results, out / "atl_diffusion_reaction.png", args.steps, len(seeds))
    _solutions(atl, models, out / "atl_solutions.png")
    print(f"\nwrote {out / 'results.json'}, results.md, atl_diffusion_reaction.png and "
          "atl_solutions.png")
    return results


def _table(results):
    base = np.mean(results["single"]["errors"])
    lines = ["| method | main rel. L2 mean | std | min | max | vs single-task | aux rel. L2 "
             "mean | ms/step |", "|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        e = np.asarray(r["errors"])
        aux = f"{np.mean(r['aux_errors']):.2e}" if r["aux_errors"] else "—"
        lines.append(f"| {r['method']} | {e.mean():.2e} | {e.std():.1e} | {e.min():.2e} | "
                     f"{e.max():.2e} | {e.mean() / base:.2f}x | {aux} | "
                     f"{r['ms_per_step']:.1f} |")
    return "\n".join(lines)


def _bar_chart(results, path, steps, n_seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    errs = [np.asarray(results[n]["errors"]) for n in names]
    mean = np.array([e.mean() for e in errs])
    lo, hi = mean - [e.min() for e in errs], np.array([e.max() for e in errs]) - mean
    colors = ["tab:gray" if n == "single" else "tab:orange" if n.endswith("+gate")
              else "tab:blue" for n in names]
    fig, ax = plt.subplots(figsize=(0.9 * len(names) + 2, 4), constrained_layout=True)
    ax.bar(names, mean, yerr=[lo, hi], capsize=4, color=colors)
    ax.axhline(mean[0], color="tab:gray", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set(ylabel="main task relative L2 (mean, min-max)",
           title=f"diffusion-reaction, main + 1 auxiliary task, {steps} steps, "
                 f"{n_seeds} seeds")
    ax.tick_params(axis="x", rotation=30)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _solutions(atl, models, path):
    """Reference of both tasks, and the main-task error of the baseline and the best ATL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main, aux = atl.problems
    grid = main.grid
    x, t = grid.axes
    best = min((n for n in models if n != "single"),
               key=lambda n: main.relative_l2(TaskOutput(models[n], 0)), default=None)
    panels = [(main.reference, "reference, main task", "RdBu_r"),
              (aux.reference, "reference, auxiliary task", "RdBu_r"),
              (np.abs(main.predict(models["single"]) - main.reference),
               "|error| single-task (seed 0)", "magma")]
    if best is not None:
        panels.append((np.abs(main.predict(TaskOutput(models[best], 0)) - main.reference),
                       f"|error| {best} (seed 0)", "magma"))
    fig, axs = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6),
                            constrained_layout=True)
    for ax, (values, title, cmap) in zip(axs, panels, strict=True):
        mesh = ax.pcolormesh(x, t, grid.reshape(values), shading="auto", cmap=cmap)
        fig.colorbar(mesh, ax=ax)
        ax.set(title=title, xlabel="x", ylabel="t")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
