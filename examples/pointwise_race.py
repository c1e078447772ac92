"""Per-point weights on a steep fit: uniform, gradient-norm and SA weights on tanh(20 x).

Regress u(x) = tanh(20 x) on 30 uniform points in [-1, 1] (the reference experiment of
SA-PINN: the steep centre is the "stubborn spot"). Every method trains the same 3 x 32 tanh
MLP from the same seeds with Adam (1e-3) for the same number of steps; only the point
weights differ:

- uniform: the plain mean squared error;
- grad_norm: w_i = max_j g_j / g_i, g_i = ||d u(x_i) / d theta||, refreshed every 100 steps
  as a moving average (alpha = 0.1, the first estimate taken as is);
- sa_sigmoid: SA-PINN weights with the sigmoid mask, lambda_0 = 0 (m = 1/2), ascended by
  Adam at 1e-2;
- sa_square: SA-PINN weights with the square mask m = lambda^2, lambda_0 = 1, Adam ascent
  at 1e-2.

The seeds of one method train together (`jax.vmap` over the seed). Prints, per method, the
RMS residual on the 6 centre points (|x| < 0.2) and on the 24 outer ones, their ratio
(mean and median over seeds of the per-seed ratio), the relative L2 error on a 1001-point
grid, and the share of the total weight on the centre points; it also times one training
step against one refresh of the gradient-norm weights. Writes results.json and a figure
(fits, residuals and learned weights of seed 0) to --out.

    python examples/pointwise_race.py                  # 5000 steps, 5 seeds
    python examples/pointwise_race.py --steps 500 --seeds 2
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
from pinnx import residuals
from pinnx.nn import MLP
from pinnx.pointwise import (
    SAModel,
    grad_norm_point_weights,
    point_grad_norms,
    point_weighted_losses,
    sa_losses,
    sa_mask_values,
    sa_optimizer,
    sa_weights,
    with_point_weights,
)
from pinnx.tasks import task_grads

N_POINTS, CENTRE = 30, 0.2
LR, WEIGHTS_LR, EVERY, ALPHA = 1e-3, 1e-2, 100, 0.1
METHODS = {
    "uniform": "uniform weights (plain MSE)",
    "grad_norm": "gradient-norm weights max g / g_i (EMA 0.1, every 100 steps)",
    "sa_sigmoid": "SA weights, sigmoid mask, lambda0 = 0",
    "sa_square": "SA weights, square mask, lambda0 = 1",
}
SA = {"sa_sigmoid": ("sigmoid", 0.0), "sa_square": ("square", 1.0)}
BASE = residuals.losses(data=residuals.data())


def data():
    x = jnp.linspace(-1.0, 1.0, N_POINTS)[:, None]
    return {"data": (x, jnp.tanh(20 * x[:, 0]))}


def _setup(method, batch):
    if method in SA:
        mask, init = SA[method]
        return (sa_losses(BASE, mask), pinnx.sum() | sa_optimizer(optax.adam(LR),
                                                                  weights_lr=WEIGHTS_LR),
                lambda net: SAModel(net, sa_weights(batch, ("data",), init=init)))
    loss = point_weighted_losses(BASE) if method == "grad_norm" else BASE
    return loss, pinnx.sum() | optax.adam(LR), lambda net: net


def _net(seed, width=32, depth=3):
    return MLP(1, "scalar", width=width, depth=depth, key=jax.random.key(seed))


def train(method, seeds, steps, batch):
    """Train one model per seed (vmapped); returns the models and the point weights."""
    loss_fn, opt, wrap = _setup(method, batch)
    gn = method == "grad_norm"

    def init(seed):
        params, static = eqx.partition(wrap(_net(seed)), eqx.is_inexact_array)
        return params, opt.init(params, tasks=("data",)), static

    static = init(0)[2]
    params, state = jax.vmap(lambda s: init(s)[:2])(jnp.asarray(seeds))
    w = jnp.ones((len(seeds), N_POINTS))

    def one(carry, _):
        params, state, w = carry
        b = with_point_weights(batch, {"data": w}) if gn else batch
        values, grads = task_grads(loss_fn, eqx.combine(params, static), b)
        updates, state = opt.update(grads, state, params, losses=values)
        return (eqx.apply_updates(params, updates), state, w), values["data"]

    def refresh(params, w, first):
        g = point_grad_norms(BASE, eqx.combine(params, static), batch)["data"]
        w_hat = grad_norm_point_weights(g)
        return jnp.where(first, w_hat, (1 - ALPHA) * w + ALPHA * w_hat)

    @jax.jit
    def run_chunk(params, state, w, first):
        if gn:
            w = jax.vmap(refresh, in_axes=(0, 0, None))(params, w, first)
        (params, state, w), _ = jax.vmap(
            lambda p, s, w: jax.lax.scan(one, (p, s, w), None, length=EVERY))(params, state, w)
        return params, state, w

    for start in range(0, steps, EVERY):
        params, state, w = run_chunk(params, state, w, jnp.asarray(start == 0))
    models = [eqx.combine(jax.tree.map(lambda a, i=i: a[i], params), static)
              for i in range(len(seeds))]
    if method in SA:
        weights = [np.asarray(sa_mask_values(m, SA[method][0])["data"]) for m in models]
    elif gn:
        weights = [np.asarray(w[i]) for i in range(len(seeds))]
    else:
        weights = [np.ones(N_POINTS) for _ in seeds]
    return models, weights


def step_costs(batch, repeats=50):
    """Median wall time (ms) of one jitted Adam step and of one gradient-norm refresh."""
    net = _net(0)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    opt = pinnx.sum() | optax.adam(LR)
    state = opt.init(params, tasks=("data",))
    loss_fn = point_weighted_losses(BASE)
    b = with_point_weights(batch, {"data": jnp.ones(N_POINTS)})

    @jax.jit
    def step(params, state):
        values, grads = task_grads(loss_fn, eqx.combine(params, static), b)
        updates, state = opt.update(grads, state, params, losses=values)
        return eqx.apply_updates(params, updates), state

    @jax.jit
    def refresh(params):
        g = point_grad_norms(BASE, eqx.combine(params, static), batch)["data"]
        return grad_norm_point_weights(g)

    def timed(fn, *args):
        jax.block_until_ready(fn(*args))
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            out.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(out))

    return timed(step, params, state), timed(refresh, params)


def summarise(models, weights, batch):
    x, y = batch["data"]
    centre = np.abs(np.asarray(x[:, 0])) < CENTRE
    grid = jnp.linspace(-1, 1, 1001)[:, None]
    exact = np.tanh(20 * np.asarray(grid[:, 0]))
    rows = []
    for model, w in zip(models, weights, strict=True):
        r = np.asarray(jax.vmap(model)(x)) - np.asarray(y)
        c, o = np.sqrt(np.mean(r[centre] ** 2)), np.sqrt(np.mean(r[~centre] ** 2))
        u = np.asarray(jax.vmap(model)(grid))
        rows.append(dict(centre=float(c), outer=float(o), ratio=float(c / o),
                         rel_l2=float(np.linalg.norm(u - exact) / np.linalg.norm(exact)),
                         centre_weight_share=float(w[centre].sum() / w.sum())))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default="results/pointwise_race")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if args.steps < EVERY or args.steps % EVERY:
        parser.error(f"--steps must be a positive multiple of {EVERY}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batch = data()
    seeds = list(range(args.seeds))
    print(f"tanh(20x) on {N_POINTS} points, 3x32 tanh MLP, Adam {LR}, {args.steps} steps, "
          f"seeds {seeds}, device {jax.devices()[0]}")
    results, fits = {}, {}
    for name in names:
        t0 = time.perf_counter()
        models, weights = train(name, seeds, args.steps, batch)
        rows = summarise(models, weights, batch)
        fits[name] = (models[0], weights[0])
        ratios = [r["ratio"] for r in rows]
        results[name] = dict(method=METHODS[name], seeds=rows, wall_s=time.perf_counter() - t0,
                             ratio_mean=float(np.mean(ratios)),
                             ratio_median=float(np.median(ratios)),
                             weights_seed0=weights[0].tolist())
        print(f"  {name:11s} centre/outer {np.mean(ratios):7.2f} (median "
              f"{np.median(ratios):.2f})  {results[name]['wall_s']:.0f} s", flush=True)
    step_ms, refresh_ms = step_costs(batch)
    print()
    print("| method | centre RMS | outer RMS | centre/outer (mean) | (median) | rel. L2 "
          "(grid) | centre weight share |")
    print("|---|---|---|---|---|---|---|")
    for r in results.values():
        s = r["seeds"]

        def mean(k, s=s):
            return np.mean([x[k] for x in s])

        print(f"| {r['method']} | {mean('centre'):.2e} | {mean('outer'):.2e} | "
              f"{r['ratio_mean']:.2f} | {r['ratio_median']:.2f} | {mean('rel_l2'):.2e} | "
              f"{mean('centre_weight_share'):.2f} |")
    print(f"\ncost: one Adam step {step_ms:.3f} ms, one gradient-norm refresh ({N_POINTS} "
          f"per-point gradients, vmapped) {refresh_ms:.3f} ms = {refresh_ms / step_ms:.1f} "
          f"steps; every {EVERY} steps that adds {100 * refresh_ms / step_ms / EVERY:.1f}%")
    (out / "results.json").write_text(json.dumps(dict(
        steps=args.steps, seeds=seeds, device=str(jax.devices()[0]), step_ms=step_ms,
        refresh_ms=refresh_ms, results=results), indent=2))
    _figure(fits, batch, out / "pointwise_race.png", args.steps)
    print(f"wrote {out / 'results.json'} and {out / 'pointwise_race.png'}")
    return results


def _figure(fits, batch, path, steps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = (np.asarray(a) for a in batch["data"])
    x = x[:, 0]
    grid = np.linspace(-1, 1, 1001)
    fig, axs = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    axs[0].plot(grid, np.tanh(20 * grid), "k", lw=2, label="tanh(20x)")
    axs[0].plot(x, y, "ko", ms=3)
    for name, (model, w) in fits.items():
        u = np.asarray(jax.vmap(model)(jnp.asarray(grid)[:, None]))
        axs[0].plot(grid, u, lw=1, label=name)
        r = np.abs(np.asarray(jax.vmap(model)(jnp.asarray(x)[:, None])) - y)
        axs[1].semilogy(x, r, ".-", lw=1, label=name)
        axs[2].semilogy(x, w / w.mean(), ".-", lw=1, label=name)
    axs[0].set(title=f"fits after {steps} steps (seed 0)", xlabel="x")
    axs[1].set(title="|residual| at the training points", xlabel="x")
    axs[2].set(title="point weights / their mean", xlabel="x")
    for ax in axs:
        ax.axvspan(-CENTRE, CENTRE, color="0.9", zorder=0)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
