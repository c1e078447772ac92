"""ModSync's modularity measure: how many per-sample gradient pairs interact at all.

For two tasks a, b and sampled points i (of a) and j (of b), g_i = d (r_a(x_i)^2) / d theta
and g_j likewise; the fraction of pairs (i, j) with |g_i . g_j| > 1e-12 measures how far the
two losses share parameters (0: fully modular, 1: every sample pair interacts). This needs
per-sample gradients, which the training step does not compute: it is measured on a few
sampled points at a few checkpoints, outside the compiled step.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..residuals import Losses

__all__ = ["per_sample_interaction"]

THRESHOLD = 1e-12


def _subset(entry: Any, n: int) -> Any:
    return jax.tree.map(lambda a: a[:n], entry)


@eqx.filter_jit
def _per_sample_grads(term, model, points):
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def point_losses(p):
        r = term(eqx.combine(p, static), points)
        return jnp.sum(jnp.reshape(r**2, (r.shape[0], -1)), axis=1)

    jac = jax.jacrev(point_losses)(params)
    leaves = jax.tree.leaves(jac)
    n = leaves[0].shape[0]
    return jnp.concatenate([jnp.reshape(leaf, (n, -1)) for leaf in leaves], axis=1)


def per_sample_interaction(
    losses: Any, model: Any, batch: dict[str, Any], *, points: int = 32,
    threshold: float = THRESHOLD,
) -> dict[tuple[str, str], float]:
    """Fraction of per-sample gradient pairs of two tasks with |g_i . g_j| > threshold.

    Args:
        losses: a `pinnx.residuals.Losses` (its terms give per-point residuals).
        model: the model.
        batch: a batch for `losses`; the first `points` points of each task are used.
        points: sampled points per task.
        threshold: the interaction threshold (ModSync: 1e-12).

    Returns:
        {(task_a, task_b): fraction} for every pair a < b in sorted order.

    Examples:
        >>> import jax, pinnx
        >>> from pinnx.diagnostics import per_sample_interaction
        >>> problem = pinnx.problems.helmholtz(n_pde=16, n_bc=16, n_test=11)
        >>> model = pinnx.nn.MLP(2, "scalar", width=8, depth=2, key=jax.random.key(0))
        >>> batch = problem.sample(jax.random.key(1))
        >>> per_sample_interaction(problem.losses, model, batch, points=8)   # a dense MLP
        {('bc', 'pde'): 1.0}

    References:
        Kong et al. 2026, ModSync (masked layers for modular PINN training).
    """
    if not isinstance(losses, Losses):
        raise ValueError("per-sample interactions need a pinnx.residuals.Losses (per-point "
                         f"residuals), got {type(losses).__name__}")
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    tasks = sorted(losses.terms)
    rows = {t: np.asarray(_per_sample_grads(losses.terms[t], model,
                                            _subset(batch[t], points))) for t in tasks}
    out = {}
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            dots = rows[a] @ rows[b].T
            out[a, b] = float(np.mean(np.abs(dots) > threshold))
    return out
