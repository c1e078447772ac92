"""Helpers of the loss-weighting tests: run a weighting over a few steps in one jitted scan.

Compilations dominate these tests, so every runner is cached by its configuration, the
number of tasks and the dtype; the steps run inside one `lax.scan`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from strategies import flatten

STEPS = 4


def names(k: int) -> list[str]:
    return [f"t{i}" for i in range(k)]


@functools.cache
def runner(factory, kwargs: tuple, k: int, with_losses: bool, extra: str | None = None):
    """A jitted `run(grads, scales, losses, extras, params) -> (rows, states)` for STEPS steps:
    step t sees the rows scaled by scales[t] (K,), the losses losses[t] (K,) and, if `extra`
    names an extra argument, extras[t] (K,) under that name."""
    opt = factory(**dict(kwargs))

    @jax.jit
    def run(grads, scales, losses, extras, params):
        state = opt.init(params, tasks=k)

        def step(state, inputs):
            c, vals, ex = inputs
            rows = jax.tree.map(
                lambda g: g * jnp.reshape(c.astype(g.dtype), (-1,) + (1,) * (g.ndim - 1)), grads)
            kwargs = {}
            if with_losses:
                kwargs["losses"] = dict(zip(names(k), list(vals), strict=True))
            if extra is not None:
                kwargs[extra] = ex
            out, state = opt.update(rows, state, params, **kwargs)
            return state, (out, state)

        _, (outs, states) = jax.lax.scan(step, state, (scales, losses, extras))
        return outs, states

    return run


def run(factory, kwargs: dict, grads, params, scales=None, losses=None, extras=None,
        extra=None):
    """Run the weighting `factory(**kwargs)` for STEPS steps; returns (rows, states) with
    rows (STEPS, K, P) float64 (or (STEPS, P) for an aggregator) and the stacked states."""
    k = jax.tree.leaves(grads)[0].shape[0]
    dtype = jax.tree.leaves(grads)[0].dtype
    scales = np.ones((STEPS, k)) if scales is None else scales
    fn = runner(factory, tuple(sorted(kwargs.items())), k, losses is not None, extra)
    zeros = jnp.zeros((STEPS, k), dtype)
    outs, states = fn(grads, jnp.asarray(scales, dtype),
                      zeros if losses is None else jnp.asarray(losses),
                      zeros if extras is None else jnp.asarray(extras), params)
    per_step = [jax.tree.map(lambda x, t=t: x[t], outs) for t in range(STEPS)]
    if jax.tree.leaves(per_step[0])[0].ndim == jax.tree.leaves(grads)[0].ndim:
        rows = np.stack([flatten(out) for out in per_step])
    else:  # an aggregator: one params-shaped output per step
        rows = np.stack([flatten(jax.tree.map(lambda x: x[None], out))[0] for out in per_step])
    return rows, states
