"""Burgers: the plain summed-loss baseline against PCGrad, same network, steps and seeds.

Both runs use `pinnx.fit` with the settings of `pinnx run burgers`: a 4 x 32 tanh MLP, 2,000
residual points resampled every 200 steps and a warmup-cosine Adam schedule peaking at 2e-3;
the only difference is whether Adam sees the summed gradient or the PCGrad aggregate of the
per-task gradients.

Run: `python examples/burgers_adam_vs_pcgrad.py [steps] [seeds]` (defaults 25000 and 3;
about 100 s per run on 2 CPU cores).
"""

import sys

import jax
import numpy as np
import optax

import pinnx


def run(optimizer, steps, seed, problem):
    key = jax.random.key(seed)
    model = pinnx.nn.MLP(2, "scalar", width=32, depth=4, key=key)
    model, _, history = pinnx.fit(problem.losses, model, optimizer, problem.sample,
                                  steps=steps, resample_every=200,
                                  key=jax.random.fold_in(key, 1),
                                  log_every=max(1, steps // 10), progress=False)
    return problem.relative_l2(model), history.wall_time


def main(steps: int = 25000, seeds: int = 3) -> dict[str, list[float]]:
    problem = pinnx.problems.burgers(n_pde=2000)
    schedule = optax.warmup_cosine_decay_schedule(0.0, 2e-3, min(500, steps // 10 + 1),
                                                  steps, 1e-5)
    recipes = {"adam": optax.adam(schedule),
               "pcgrad | adam": pinnx.pcgrad() | optax.adam(schedule)}
    errors: dict[str, list[float]] = {name: [] for name in recipes}
    print(f"Burgers, 4x32 tanh, {steps} steps, seeds 0..{seeds - 1}")
    for name, opt in recipes.items():
        for seed in range(seeds):
            err, wall = run(opt, steps, seed, problem)
            errors[name].append(err)
            print(f"  {name:<15} seed {seed}: relative L2 {err:.3e} ({wall:.0f} s)")
    for name, errs in errors.items():
        print(f"{name:<15} mean {np.mean(errs):.3e}  std {np.std(errs):.3e}  "
              f"median {np.median(errs):.3e}")
    return errors


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
