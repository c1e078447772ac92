"""Helmholtz with the LDA network of ACR-PINN: LDA + PCGrad against MLP + Adam.

u_xx + u_yy + u = q on [-1, 1]^2, u = sin(pi x) sin(4 pi y): the set-up of
`helmholtz_conflict.py` (128 residual points and 128 per edge, fresh every step, Adam 1e-3
decayed by 0.9 every 1,000 steps), at a CPU budget far below the papers' (they train for
tens of thousands of steps). Each run is a network and a combiner:

    mlp:adam      tanh MLP, Adam on the summed loss (the plain baseline)
    lda:pcgrad    LDA network, PCGrad (random order) then Adam (ACR-PINN, Niu et al. 2026)
    lda:adam      LDA network alone           } separate the two effects
    mlp:pcgrad    PCGrad alone                }

Every run sees the same seeds (initial weights), batches and schedule. Networks of equal
width and depth differ in size (LDA has several times the MLP's parameters): the counts
are printed. Other networks: `modified_mlp`, `mlp_rwf` (random weight factorisation).

    python examples/helmholtz_lda.py                       # the documented budget
    python examples/helmholtz_lda.py --steps 200 --seeds 1 --runs mlp:adam,lda:pcgrad

Prints a table of relative L2 errors (mean, min, max over seeds, last step) and writes
results.json, results.md and lda_helmholtz.png to --out.
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
from pinnx.nn._lda import LDA
from pinnx.nn._mlp import MLP
from pinnx.nn._modified_mlp import ModifiedMLP
from pinnx.problems.helmholtz import helmholtz

NETS = {
    "mlp": ("tanh MLP", lambda w, d, key: MLP(2, "scalar", w, d, key=key)),
    "lda": ("LDA", lambda w, d, key: LDA(2, "scalar", w, d, key=key)),
    "modified_mlp": ("modified MLP", lambda w, d, key: ModifiedMLP(2, "scalar", w, d, key=key)),
    "mlp_rwf": ("MLP + RWF", lambda w, d, key: MLP(2, "scalar", w, d, key=key, rwf=True)),
}
OPTS = {
    "adam": ("Adam", lambda lr: pinnx.sum() | optax.adam(lr)),
    "pcgrad": ("PCGrad + Adam", lambda lr: pinnx.pcgrad() | optax.adam(lr)),
}
DEFAULT_RUNS = "mlp:adam,lda:pcgrad,lda:adam,mlp:pcgrad"
TASKS = ("bc", "pde")


def schedule(lr: float = 1e-3):
    return optax.exponential_decay(lr, transition_steps=1000, decay_rate=0.9, staircase=True)


def train(make_net, make_opt, seeds, steps, problem, chunk=500):
    """Train one model per seed (seeds vmapped in one compiled step); models, losses, ms."""
    opt = make_opt(schedule())

    def init(seed):
        params, static = eqx.partition(make_net(jax.random.key(seed)), eqx.is_inexact_array)
        return params, opt.init(params, tasks=TASKS), static

    static = init(0)[2]
    params, state = jax.vmap(lambda s: init(s)[:2])(jnp.asarray(seeds))

    def one(params, state, key):
        losses, grads = pinnx.task_grads(problem.losses, eqx.combine(params, static),
                                         problem.sample(key))
        updates, state = opt.update(grads, state, params, losses=losses)
        return eqx.apply_updates(params, updates), state, jnp.stack([losses[t] for t in TASKS])

    @jax.jit
    def run_chunk(params, state, keys):
        def body(carry, key):
            p, s, lvec = jax.vmap(one)(*carry, key)
            return (p, s), lvec

        return jax.lax.scan(body, (params, state), keys)

    data_keys = [jax.random.key(10_000 + s) for s in seeds]
    history, t_run = [], 0.0
    for start in range(0, steps, chunk):
        idx = jnp.arange(start, min(start + chunk, steps))
        keys = jnp.stack([jax.vmap(lambda i, k=k: jax.random.fold_in(k, i))(idx)
                          for k in data_keys], axis=1)
        t0 = time.perf_counter()
        (params, state), lvec = run_chunk(params, state, keys)
        jax.block_until_ready(lvec)
        if start > 0:  # the first chunk holds the compilation
            t_run += time.perf_counter() - t0
        history.append(np.asarray(lvec))
    timed = steps - min(chunk, steps)
    ms = 1e3 * t_run / timed if timed else float("nan")
    models = [eqx.combine(jax.tree.map(lambda x, i=i: x[i], params), static)
              for i in range(len(seeds))]
    return models, np.concatenate(history), ms


def parse_runs(text):
    runs = [r.strip() for r in text.split(",") if r.strip()]
    for r in runs:
        net, _, opt = r.partition(":")
        if net not in NETS or opt not in OPTS:
            raise ValueError(f"unknown run {r!r}: expected net:opt with net in "
                             f"{sorted(NETS)} and opt in {sorted(OPTS)}")
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--runs", default=DEFAULT_RUNS)
    parser.add_argument("--out", default="results/helmholtz_lda")
    args = parser.parse_args(argv)
    try:
        runs = parse_runs(args.runs)
    except ValueError as e:
        parser.error(str(e))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = helmholtz()
    seeds = list(range(args.seeds))
    print(f"Helmholtz (a1, a2) = (1, 4), {args.steps} steps, seeds {seeds}, "
          f"{args.depth} x {args.width} networks, device {jax.devices()[0]}")
    results = {}
    for run in runs:
        net, opt = run.split(":")
        make_net = NETS[net][1]

        def build(key, make_net=make_net):
            return make_net(args.width, args.depth, key)

        n_params = sum(x.size for x in jax.tree.leaves(
            eqx.filter(build(jax.random.key(0)), eqx.is_inexact_array)))
        t0 = time.perf_counter()
        models, history, ms = train(build, OPTS[opt][1], seeds, args.steps, problem)
        errors = [problem.relative_l2(m) for m in models]
        results[run] = dict(network=NETS[net][0], optimizer=OPTS[opt][0], params=n_params,
                            errors=errors, ms_per_step=ms, wall_s=time.perf_counter() - t0,
                            final_losses=history[-1].tolist(),
                            loss_curve=history.sum(axis=2).mean(axis=1).tolist())
        print(f"  {run:14s} {n_params:7d} params  rel L2 {np.mean(errors):.2e} "
              f"[{np.min(errors):.2e}, {np.max(errors):.2e}]  {ms:6.2f} ms/step "
              f"({len(seeds)} seeds batched)", flush=True)
    table = _table(results)
    print("\n" + table)
    meta = dict(steps=args.steps, seeds=seeds, width=args.width, depth=args.depth,
                device=str(jax.devices()[0]))
    (out / "results.json").write_text(json.dumps(dict(**meta, results=results), indent=2))
    (out / "results.md").write_text(table + "\n")
    _figure(results, out / "lda_helmholtz.png", args.steps)
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'} and "
          f"{out / 'lda_helmholtz.png'}")
    return results


def _table(results):
    lines = ["| run | network | optimizer | parameters | rel. L2 mean | min | max | ms/step |",
             "|---|---|---|---|---|---|---|---|"]
    for run, r in results.items():
        e = r["errors"]
        lines.append(f"| `{run}` | {r['network']} | {r['optimizer']} | {r['params']} | "
                     f"{np.mean(e):.2e} | {np.min(e):.2e} | {np.max(e):.2e} | "
                     f"{r['ms_per_step']:.2f} |")
    return "\n".join(lines)


def _figure(results, path, steps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for i, name in enumerate(names):
        e = np.asarray(results[name]["errors"])
        ax1.bar(i, e.mean(), color=f"C{i}", alpha=0.6)
        ax1.plot(np.full(e.size, i), e, "k.", ms=6)
        curve = np.asarray(results[name]["loss_curve"])
        ax2.semilogy(curve, color=f"C{i}", lw=1, label=name)
    ax1.set_xticks(range(len(names)), names, rotation=20)
    ax1.set_yscale("log")
    ax1.set(ylabel="relative L2 error (bars: mean, dots: seeds)",
            title=f"Helmholtz (1, 4), {steps} steps")
    ax2.set(xlabel="step", ylabel="bc + pde loss (mean over seeds)", title="training loss")
    ax2.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
