"""`per_task`: any optax transform applied to each task row with its own state."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import PyTree

from ..tasks import num_tasks
from ._base import Tasks, TaskTransform, count_tasks
from ._registry import register

__all__ = ["per_task", "PerTaskState"]


class PerTaskState(NamedTuple):
    """The inner transform's state with a leading task axis on every leaf."""

    inner: optax.OptState


@register
def per_task(tx: optax.GradientTransformation, *, tasks: Tasks = None) -> TaskTransform:
    """Apply `tx` to every task row separately, each row with its own state.

    Row k of the output is `tx.update(row k, state k, params)`. Stateful inner transforms
    (e.g. Adam's moments) keep one state per task, so the number of tasks is needed at init:
    `opt.init(params, tasks=K)`, or `tasks=K` here (needed when this transform sits inside
    `optax.chain`, whose init passes params only). The rows are processed by one `jax.vmap`.

    `per_task(optax.scale_by_adam()) | pinnx.mean()` is MultiAdam (Yao et al. 2023): every
    loss gets its own Adam moments, so each task's update is scale-free before averaging.
    Extra arguments such as `losses=` are not passed to `tx`.

    Args:
        tx: any optax transform written for params-shaped updates.
        tasks: the number of tasks, if it cannot be given at init.

    References:
        Yao, Su, Hao, Liu, Su, Zhu. "MultiAdam: Parameter-wise Scale-invariant
        Optimizer for Multiscale Training of Physics-informed Neural Networks". ICML 2023.
        https://arxiv.org/abs/2306.02816
    """
    label = "per_task"
    fixed = tasks

    def init(params: PyTree, *, tasks: Tasks = None) -> PerTaskState:
        tasks = fixed if tasks is None else tasks
        shapes = jax.eval_shape(tx.init, params)
        if not jax.tree.leaves(shapes):
            return PerTaskState(inner=tx.init(params))
        k = count_tasks(tasks, label)
        state = tx.init(params)
        return PerTaskState(
            inner=jax.tree.map(lambda s: jnp.broadcast_to(s, (k,) + jnp.shape(s)), state)
        )

    def update(updates, state, params=None, **extra_args):
        del extra_args
        k = num_tasks(updates)
        leaves = jax.tree.leaves(state.inner)
        if leaves:
            k_state = jnp.shape(leaves[0])[0]
            if k_state != k:
                raise ValueError(
                    f"{label} was initialised for {k_state} tasks but got {k} task rows"
                )
            axes = 0
        else:
            axes = None
        out, inner = jax.vmap(lambda g, s: tx.update(g, s, params), in_axes=(0, axes),
                              out_axes=(0, axes))(updates, state.inner)
        return out, PerTaskState(inner=inner)

    return TaskTransform(init, update)
