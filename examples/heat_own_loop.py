"""A user-defined PINN in a hand-written JAX loop: the 1-D heat equation.

u_t = 0.1 u_xx on x in [0, 1], t in [0, 1], u(x, 0) = sin(pi x), u(0, t) = u(1, t) = 0,
whose solution is exp(-0.1 pi^2 t) sin(pi x). The loop is plain JAX + optax; pinnx supplies
the residual builders, the per-task gradients and the combiner.

Run: `python examples/heat_own_loop.py [steps]` (default 3000; about a minute on 2 CPU cores).
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import pinnx
from pinnx import operators as D
from pinnx import residuals as R

KAPPA = 0.1


def heat(u, x):
    """Residual at one point x = (x, t); u is the network."""
    return D.time_derivative(u, x) - KAPPA * D.partial(u, x, (0, 0))


def main(steps: int = 3000) -> float:
    domain = pinnx.geometry.SpaceTime(pinnx.geometry.Interval(0.0, 1.0), 0.0, 1.0)
    losses = R.losses(
        pde=R.pde(heat),
        ic=R.initial(lambda x: jnp.sin(jnp.pi * x[0])),
        bc=R.dirichlet(0.0),
    )

    def sample(key):
        k1, k2, k3 = jax.random.split(key, 3)
        return {"pde": domain.sample_interior(k1, 1000, "lhs"),
                "ic": domain.sample_initial(k2, 100, "lhs"),
                "bc": domain.sample_boundary(k3, 100, method="lhs")}

    model = pinnx.nn.MLP(2, "scalar", width=32, depth=3, key=jax.random.key(0))
    opt = pinnx.cosine_gate(main="pde") | pinnx.pcgrad() | optax.adam(1e-3)
    state = opt.init(model, tasks=3)

    @jax.jit
    def step(model, state, batch):
        values, grads = pinnx.task_grads(losses, model, batch)  # rows: bc, ic, pde
        updates, state = opt.update(grads, state, model, losses=values)
        return optax.apply_updates(model, updates), state, values

    key = jax.random.key(1)
    batch = sample(key)
    for i in range(steps):
        if i % 250 == 0:
            batch = sample(jax.random.fold_in(key, i))
        model, state, values = step(model, state, batch)

    x, t = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    points = jnp.asarray(np.stack([x.ravel(), t.ravel()], 1), jnp.float32)
    exact = np.exp(-KAPPA * np.pi**2 * t.ravel()) * np.sin(np.pi * x.ravel())
    error = pinnx.problems.relative_l2(np.asarray(jax.vmap(model)(points)), exact)
    print(f"heat equation, {steps} steps: losses "
          + ", ".join(f"{k}={float(v):.2e}" for k, v in values.items())
          + f"; relative L2 error {error:.3e}")
    return error


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
