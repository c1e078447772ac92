"""Cost of each combiner alone, over the number of tasks K and the parameter count P.

One `update` of a combiner on K random task rows of P parameters (a pytree of four leaves:
a realistic MLP-like split), jitted, timed as the median of `--repeats` calls after a warm-up
call. A Gram-first aggregator costs one K x K Gram matrix (K^2 P / 2 multiply-adds) and one
weighted sum (K P), so its time should grow at most like K^2 P; coordinate-wise methods
(per-task Adam, GradDrop, trimmed mean) grow like K P (times log K where they sort).

For each combiner the script fits log t = a log K + b log P + c over the grid points whose
time is above `--floor` microseconds (below that, dispatch dominates) and prints the
exponents (a, b) next to the table: a <= 2 and b <= 1 (up to noise) is O(K^2 P) or better.

Run: `python benchmarks/combiner_scaling.py [--ks 2,4,8,16] [--ps 1e3,1e4,1e5,1e6]
[--only mgda,upgrad] [--json out.json]`
"""

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import pinnx

COMBINERS = {
    "sum": lambda k: pinnx.sum(),
    "pcgrad": lambda k: pinnx.pcgrad(),
    "mgda": lambda k: pinnx.mgda(),
    "cagrad": lambda k: pinnx.cagrad(),
    "imtl_g": lambda k: pinnx.imtl_g(),
    "aligned_mtl": lambda k: pinnx.aligned_mtl(),
    "upgrad": lambda k: pinnx.upgrad(),
    "dualproj": lambda k: pinnx.dualproj(),
    "nash_mtl": lambda k: pinnx.nash_mtl(),
    "fairgrad": lambda k: pinnx.fairgrad(),
    "config": lambda k: pinnx.config(),
    "m_config": lambda k: pinnx.m_config(),
    "dcgd_center": lambda k: pinnx.dcgd("center"),
    "dcgd_projection": lambda k: pinnx.dcgd("projection"),
    "dcgd_average": lambda k: pinnx.dcgd("average"),
    "graddrop": lambda k: pinnx.graddrop(),
    "gradvac": lambda k: pinnx.gradvac(),
    "krum": lambda k: pinnx.krum(),
    "trimmed_mean": lambda k: pinnx.trimmed_mean(trim=(k - 1) // 2),
    "random": lambda k: pinnx.random(),
    "multiadam": lambda k: pinnx.multiadam(),
    "lra | sum": lambda k: pinnx.lra(main=0) | pinnx.sum(),
    "grad_norm_weights | sum": lambda k: pinnx.grad_norm_weights() | pinnx.sum(),
}
"""Combiners timed, by name: `make(K)` returns a chain that ends at an aggregator."""


def _layout(p: int) -> dict[str, tuple[int, ...]]:
    """Four leaves holding about p parameters: two square-ish matrices and two vectors."""
    n = max(1, int(np.sqrt(p / 2)))
    rest = max(1, p - 2 * n * n)
    return {"w1": (n, n), "w2": (n, n), "b1": (rest // 2 or 1,), "b2": (rest - rest // 2 or 1,)}


def _time(make, k: int, p: int, repeats: int) -> float:
    layout = _layout(p)
    keys = jax.random.split(jax.random.key(k * 7919 + p), len(layout))
    grads = {n: jax.random.normal(kk, (k, *s))
             for kk, (n, s) in zip(keys, layout.items(), strict=True)}
    params = {n: jnp.zeros(s) for n, s in layout.items()}
    losses = {f"t{i}": jnp.asarray(1.0 + i) for i in range(k)}
    opt = make(k)
    state = opt.init(params, tasks=k)
    update = jax.jit(lambda g, s: opt.update(g, s, params, losses=losses))
    jax.block_until_ready(update(grads, state))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(update(grads, state))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _fit(ks, ps, table, floor):
    rows = [(np.log(k), np.log(p), np.log(t)) for (k, p), t in table.items() if t > floor]
    if len(rows) < 4:
        return float("nan"), float("nan")
    a = np.array([[lk, lp, 1.0] for lk, lp, _ in rows])
    coef, *_ = np.linalg.lstsq(a, np.array([r[2] for r in rows]), rcond=None)
    return float(coef[0]), float(coef[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", default="2,4,8,16")
    parser.add_argument("--ps", default="1e3,1e4,1e5,1e6")
    parser.add_argument("--only", help="comma-separated names (default: all)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--floor", type=float, default=200.0,
                        help="microseconds under which a time is left out of the fit")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    ks = [int(v) for v in args.ks.split(",")]
    ps = [int(float(v)) for v in args.ps.split(",")]
    names = args.only.split(",") if args.only else list(COMBINERS)
    device = f"{jax.devices()[0]} ({platform.processor() or platform.machine()}, " \
             f"{os.cpu_count()} CPU cores)"
    print(f"combiner update alone, float32, median of {args.repeats}; jax {jax.__version__} "
          f"on {device}")
    header = "".join(f"{f'K={k},P={p:.0e}':>15}" for p in ps for k in ks)
    print(f"{'combiner':<26}{'a(K)':>6}{'b(P)':>6}  times in ms: {header}")
    results = {}
    for name in names:
        table = {(k, p): _time(COMBINERS[name], k, p, args.repeats) for p in ps for k in ks}
        a, b = _fit(ks, ps, table, args.floor * 1e-6)
        results[name] = {"exponent_K": a, "exponent_P": b,
                         "ms": {f"{k},{p}": 1e3 * t for (k, p), t in table.items()}}
        cells = "".join(f"{1e3 * table[(k, p)]:>15.3f}" for p in ps for k in ks)
        print(f"{name:<26}{a:>6.2f}{b:>6.2f}  {cells}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "jax": jax.__version__, "ks": ks, "ps": ps,
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
