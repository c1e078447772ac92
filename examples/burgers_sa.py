"""Burgers (shock): SA-PINN point weights against uniform weights at the same budget.

The Burgers benchmark of `pinnx.problems.burgers` (nu = 0.01/pi), a 4 x 32 tanh MLP, one
fixed set of collocation points (the SA-PINN paper's setting: every weight belongs to one
point for the whole run), Adam at 1e-3 for the network. Both runs use `pinnx.fit` with the
same network, points, steps and seed; the SA run weights every point of every task
("pde", "ic", "bc") with the square mask m = lambda^2 (lambda_0 = 1, so it starts as the
uniform loss), ascended by Adam at 1e-2. Reports the relative L2 error against the
Cole-Hopf reference per seed and writes results.json and a figure (errors and where the
learned weights concentrate) to --out.

    python examples/burgers_sa.py                   # 4000 steps, 1 seed (~2 min on 2 cores)
    python examples/burgers_sa.py --steps 20000 --seeds 3
"""

import argparse
import json
from pathlib import Path

import jax
import numpy as np
import optax

import pinnx
from pinnx.nn import MLP
from pinnx.pointwise import SAModel, sa_losses, sa_mask_values, sa_optimizer, sa_weights
from pinnx.problems import burgers

TASKS = ("bc", "ic", "pde")
MASK, INIT, LR, WEIGHTS_LR = "square", 1.0, 1e-3, 1e-2


def run(method, problem, batch, steps, seed):
    net = MLP(2, "scalar", width=32, depth=4, key=jax.random.key(seed))
    if method == "uniform":
        loss, model = problem.losses, net
        opt = pinnx.sum() | optax.adam(LR)
    else:
        loss = sa_losses(problem.losses, MASK)
        model = SAModel(net, sa_weights(batch, TASKS, init=INIT))
        opt = pinnx.sum() | sa_optimizer(optax.adam(LR), weights_lr=WEIGHTS_LR)
    model, _, history = pinnx.fit(loss, model, opt, batch, steps=steps,
                                  log_every=max(1, steps // 10), progress=False)
    return model, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--n-pde", type=int, default=2000)
    parser.add_argument("--out", default="results/burgers_sa")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = burgers(n_pde=args.n_pde, n_ic=200, n_bc=200)
    print(f"Burgers, 4x32 tanh, {args.n_pde} fixed residual points, {args.steps} steps, "
          f"seeds 0..{args.seeds - 1}, device {jax.devices()[0]}")
    results = {"uniform": [], "sa": []}
    keep = {}
    for seed in range(args.seeds):
        batch = problem.sample(jax.random.key(1000 + seed))
        for method in results:
            model, history = run(method, problem, batch, args.steps, seed)
            err = problem.relative_l2(model)
            results[method].append(dict(rel_l2=err, wall_s=history.wall_time,
                                        final_losses={t: float(history.losses[t][-1])
                                                      for t in history.tasks}))
            print(f"  {method:8s} seed {seed}: relative L2 {err:.3e} "
                  f"({history.wall_time:.0f} s)", flush=True)
            if seed == 0:
                keep[method] = model
                keep["batch"] = batch
    print()
    print("| weights | rel. L2 mean | min | max |")
    print("|---|---|---|---|")
    for method, rows in results.items():
        e = [r["rel_l2"] for r in rows]
        print(f"| {method} | {np.mean(e):.3e} | {np.min(e):.3e} | {np.max(e):.3e} |")
    sa_model, batch = keep["sa"], keep["batch"]
    m = {t: np.asarray(v) for t, v in sa_mask_values(sa_model, MASK).items()}
    pts = np.asarray(batch["pde"])
    top = m["pde"] >= np.quantile(m["pde"], 0.9)
    near_shock = np.abs(pts[:, 0]) < 0.1
    summary = dict(
        pde_weight_max_over_mean=float(m["pde"].max() / m["pde"].mean()),
        top10_share_near_shock=float(np.mean(near_shock[top])),
        all_share_near_shock=float(np.mean(near_shock)),
        mean_weight={t: float(v.mean()) for t, v in m.items()},
    )
    ratio = summary["pde_weight_max_over_mean"]
    print(f"\nSA weights (seed 0): max/mean on pde points {ratio:.1f};"
          f" {100 * summary['top10_share_near_shock']:.0f}% of the top-10% pde weights lie at "
          f"|x| < 0.1 (vs {100 * summary['all_share_near_shock']:.0f}% of all points); mean "
          "weight per task " + ", ".join(f"{t} {v:.2f}" for t, v in
                                         summary["mean_weight"].items()))
    (out / "results.json").write_text(json.dumps(dict(
        steps=args.steps, n_pde=args.n_pde, device=str(jax.devices()[0]), results=results,
        sa_weights=summary), indent=2))
    _figure(problem, keep, m, out / "burgers_sa.png", args.steps)
    print(f"wrote {out / 'results.json'} and {out / 'burgers_sa.png'}")
    return results


def _figure(problem, keep, m, path, steps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(16, 4.2), constrained_layout=True)
    grid = problem.grid
    h, v = grid.axes
    errs = {k: grid.reshape(np.abs(problem.predict(keep[k]) - problem.reference))
            for k in ("uniform", "sa")}
    vmax = max(e.max() for e in errs.values())
    for ax, k in zip(axs[:2], errs, strict=True):
        mesh = ax.pcolormesh(h, v, errs[k], shading="auto", cmap="magma", vmin=0, vmax=vmax)
        ax.set(title=f"|error|, {k} weights, rel. L2 {problem.relative_l2(keep[k]):.2e}",
               xlabel="x", ylabel="t")
        fig.colorbar(mesh, ax=ax)
    pts = np.asarray(keep["batch"]["pde"])
    order = np.argsort(m["pde"])
    sc = axs[2].scatter(pts[order, 0], pts[order, 1], c=m["pde"][order], s=6, cmap="viridis")
    axs[2].set(title=f"SA weights m(lambda) on the pde points after {steps} steps",
               xlabel="x", ylabel="t")
    fig.colorbar(sc, ax=axs[2])
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
