"""Burgers: Adam vs DCGD vs DCGD + ModSync masked layers, same init, batches and steps.

u_t + u u_x = (0.01/pi) u_xx on [-1, 1] x [0, 1], u(x, 0) = -sin(pi x), u(+-1, t) = 0.
ModSync (Kong et al. 2026) is written for two objectives, the PDE residual and the boundary;
the boundary and initial losses are summed into one "boundary" objective (as the DCGD
authors' code does), for all three methods, so they train on the same two losses. Per seed
every method starts from the same weights (a tanh MLP with `--depth` hidden layers of
`--width` units: `ModSyncMLP` with the same key has the same weights, thresholds 0), sees
the same batches and takes the same number of steps, with the paper's hyperparameters:

- adam: plain Adam 1e-3 on the summed loss;
- dcgd: `pinnx.dcgd()` (center) | Adam 1e-3;
- dcgd_modsync: every layer masked, one threshold vector per objective; the recipe is

      model = ModSyncMLP(2, "scalar", width, depth, objectives=("boundary", "pde"), key=key)
      opt = pinnx.route(pinnx.dcgd(), own=modsync_owners) | modsync_optimizer(
          optax.adam(1e-3), thresholds_lr=1e-4, lambda_s=1e-4, beta=0.3)
      model, _, history = pinnx.fit(losses, model, opt, problem.sample, ...,
                                    eval_fn=lambda m: {**sparsity(m), ...})

    python examples/burgers_modsync.py               # 3 seeds, 2,000 steps, width 64 (minutes)
    python examples/burgers_modsync.py --steps 200 --seeds 1

Prints a table (relative L2 error against the Cole-Hopf reference at the last step, final
sparsity per layer, wall time) and writes results.json and burgers_modsync.png to --out.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
import optax

import pinnx
from pinnx.nn import ModSyncMLP, modsync_owners, sparsity
from pinnx.recipes import modsync_optimizer

OBJECTIVES = ("boundary", "pde")
LR, LR_T, LAMBDA_S, BETA = 1e-3, 1e-4, 1e-4, 0.3  # Kong et al. 2026


def boundary_vs_pde(losses):
    """The paper's two objectives from Burgers' three losses: bc + ic as one boundary loss."""

    def two(model, batch):
        d = losses(model, batch)
        return {"boundary": d["bc"] + d["ic"], "pde": d["pde"]}

    return two


def adam(width, depth, seed):
    return pinnx.nn.MLP(2, "scalar", width, depth, key=jax.random.key(seed)), optax.adam(LR)


def dcgd(width, depth, seed):
    model = pinnx.nn.MLP(2, "scalar", width, depth, key=jax.random.key(seed))
    return model, pinnx.dcgd() | optax.adam(LR)


def dcgd_modsync(width, depth, seed):
    model = ModSyncMLP(2, "scalar", width, depth, objectives=OBJECTIVES,
                       key=jax.random.key(seed))
    opt = pinnx.route(pinnx.dcgd(), own=modsync_owners) | modsync_optimizer(
        optax.adam(LR), thresholds_lr=LR_T, lambda_s=LAMBDA_S, beta=BETA)
    return model, opt


METHODS = {
    "adam": ("Adam (summed loss)", adam),
    "dcgd": ("DCGD + Adam", dcgd),
    "dcgd_modsync": ("DCGD + ModSync + Adam", dcgd_modsync),
}


def _count(model) -> int:
    return sum(x.size for x in jax.tree.leaves(model) if isinstance(x, jax.Array))


def run(name, problem, seed, steps, width, depth, resample_every):
    model, opt = METHODS[name][1](width, depth, seed)
    masked = isinstance(model, ModSyncMLP)

    def evaluate(m):
        out = {"error": problem.relative_l2(m)}
        if masked:
            out.update(sparsity(m))
            out.update({f"{k}_{o}": v for o in OBJECTIVES
                        for k, v in sparsity(m, o).items() if k == "sparsity"})
        return out

    t0 = time.perf_counter()
    model, _, history = pinnx.fit(boundary_vs_pde(problem.losses), model, opt, problem.sample,
                                  steps=steps, key=jax.random.key(10_000 + seed),
                                  resample_every=resample_every, log_every=max(steps // 10, 1),
                                  eval_fn=evaluate, progress=False)
    wall = time.perf_counter() - t0
    if history.nonfinite is not None:
        print(f"    {name} seed {seed}: stopped early: {history.nonfinite.message}")
    last = history.evals[-1][1]
    out = dict(error=last["error"], wall_s=wall, params=_count(model),
               final_losses={t: float(history.losses[t][-1]) for t in history.tasks},
               loss_curves={t: history.losses[t][:: max(steps // 500, 1)].tolist()
                            for t in history.tasks},
               eval_steps=[s for s, _ in history.evals],
               error_curve=[e["error"] for _, e in history.evals],
               cosine_steps=history.log_steps.tolist(),
               cosines=history.cosines[OBJECTIVES].tolist())
    if masked:
        n = len(model.layers)
        out["sparsity"] = [last[f"sparsity_{i}"] for i in range(n)]
        out["sparsity_total"] = last["sparsity"]
        out["sparsity_per_objective"] = {o: last[f"sparsity_{o}"] for o in OBJECTIVES}
        out["sparsity_curves"] = [[e[f"sparsity_{i}"] for _, e in history.evals]
                                  for i in range(n)]
        out["threshold_gap"] = [float(np.linalg.norm(np.asarray(layer.thresholds["pde"])
                                                     - np.asarray(layer.thresholds["boundary"])))
                                for layer in model.layers]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=4, help="hidden layers")
    parser.add_argument("--n-pde", type=int, default=1_000, help="residual points per batch")
    parser.add_argument("--resample-every", type=int, default=100)
    parser.add_argument("--out", default="results/burgers_modsync")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = pinnx.problems.burgers(n_pde=args.n_pde, n_ic=100, n_bc=100)
    seeds = list(range(args.seeds))
    print(f"Burgers, {args.steps} steps, seeds {seeds}, {args.depth}x{args.width} tanh MLP "
          f"({args.depth + 1} linear layers), {args.n_pde} residual points resampled every "
          f"{args.resample_every} steps, device {jax.devices()[0]}")
    results = {}
    for name, (what, _) in METHODS.items():
        runs = [run(name, problem, s, args.steps, args.width, args.depth, args.resample_every)
                for s in seeds]
        errors = [r["error"] for r in runs]
        results[name] = dict(method=what, errors=errors, runs=runs,
                             wall_s=float(np.sum([r["wall_s"] for r in runs])))
        print(f"  {name:13s} rel L2 {np.mean(errors):.2e} [{np.min(errors):.2e}, "
              f"{np.max(errors):.2e}]  {runs[0]['params']} parameters, "
              f"{results[name]['wall_s']:.0f} s", flush=True)
    (out / "results.json").write_text(json.dumps(dict(
        steps=args.steps, seeds=seeds, width=args.width, depth=args.depth, n_pde=args.n_pde,
        resample_every=args.resample_every,
        hyperparameters=dict(lr=LR, thresholds_lr=LR_T, lambda_s=LAMBDA_S, beta=BETA),
        device=str(jax.devices()[0]), results=results), indent=2))
    print()
    print("| method | rel. L2 mean | min | max | parameters | wall s (all seeds) |")
    print("|---|---|---|---|---|---|")
    for r in results.values():
        e = r["errors"]
        print(f"| {r['method']} | {np.mean(e):.2e} | {np.min(e):.2e} | {np.max(e):.2e} | "
              f"{r['runs'][0]['params']} | {r['wall_s']:.0f} |")
    ms = results["dcgd_modsync"]["runs"]
    n = len(ms[0]["sparsity"])
    print("\nDCGD + ModSync, final sparsity (fraction of pruned weights; mean [min, max] over "
          "seeds):")
    print("| layer | " + " | ".join(f"{i}" for i in range(n)) + " | all |")
    print("|---|" + "---|" * (n + 1))
    cells = [np.array([r["sparsity"][i] for r in ms]) for i in range(n)]
    cells.append(np.array([r["sparsity_total"] for r in ms]))
    print("| sparsity | " + " | ".join(f"{c.mean():.3f} [{c.min():.3f}, {c.max():.3f}]"
                                       for c in cells) + " |")
    for o in OBJECTIVES:
        s = np.array([r["sparsity_per_objective"][o] for r in ms])
        print(f"mask of t_{o} alone (diagnostic): {s.mean():.3f} of all weights pruned")
    _figure(results, out / "burgers_modsync.png", args)
    print(f"\nwrote {out / 'results.json'} and {out / 'burgers_modsync.png'}")
    return results


def _figure(results, path, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    colors = {"adam": "tab:blue", "dcgd": "tab:green", "dcgd_modsync": "tab:orange"}
    for i, (name, r) in enumerate(results.items()):
        e = np.asarray(r["errors"])
        left.bar(i, e.mean(), yerr=[[e.mean() - e.min()], [e.max() - e.mean()]], capsize=4,
                 color=colors[name])
        left.scatter(np.full(e.shape, i), e, color="k", s=10, zorder=3)
        steps = r["runs"][0]["eval_steps"]
        curves = np.array([run["error_curve"] for run in r["runs"]])
        mid.semilogy(steps, np.median(curves, axis=0), color=colors[name], label=r["method"])
    left.set_xticks(range(len(results)), [r["method"].replace(" + ", "\n+ ")
                                          for r in results.values()])
    left.set_yscale("log")
    left.set(ylabel="relative L2 error (last step)",
             title=f"Burgers, {args.depth}x{args.width} tanh, {args.steps} steps, "
                   f"{len(results['adam']['errors'])} seeds")
    mid.set(xlabel="step", ylabel="relative L2 error (median over seeds)", title="error")
    mid.legend(fontsize=8)
    ms = results["dcgd_modsync"]["runs"]
    steps = ms[0]["eval_steps"]
    curves = np.array([run["sparsity_curves"] for run in ms])  # (seeds, layers, evals)
    for i in range(curves.shape[1]):
        right.plot(steps, curves[:, i].mean(axis=0), label=f"layer {i}")
    right.set(xlabel="step", ylabel="fraction of weights pruned (mean over seeds)",
              title="ModSync sparsity per layer")
    right.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
