"""`accumulate`: gradient accumulation over micro-batches for chains of per-task rows."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PyTree

from ..tasks import num_tasks
from ._base import Aggregator, Combiner, Tasks, check, concrete, count_tasks, init_state
from ._loss_weighting import task_vector
from ._registry import register

__all__ = ["accumulate", "AccumulateState"]


class AccumulateState(NamedTuple):
    """State of `accumulate`.

    Attributes:
        mini_step: micro-batches accumulated since the last update, in [0, every).
        rows: the running mean of the per-task gradients (leaves with a leading task axis).
        losses: the running mean of the losses, (K,) in row order (zeros if none given).
        inner: the state of the wrapped optimizer.
    """

    mini_step: Int[Array, ""]
    rows: PyTree
    losses: Float[Array, " tasks"]
    inner: optax.OptState


@register(cli=False)
def accumulate(optimizer: optax.GradientTransformation, every: int) -> Aggregator:
    """Accumulate per-task gradients over `every` micro-batches, then update once.

    `optax.MultiSteps` keeps a params-shaped accumulator, so it cannot wrap a pinnx chain,
    whose input is K task rows. This is its counterpart for chains: every call adds the
    task rows (and the `losses=` values) to a running mean; every `every`-th call passes
    the means to `optimizer` and returns its update, the other calls return zeros and leave
    the optimizer's state alone (as `optax.MultiSteps` does). For losses that are means over
    the points of equally sized micro-batches, `every` accumulated micro-batches give the
    update of one batch of all their points. Other extra arguments (e.g. `ntk_traces=`)
    are passed on from the call that updates.

    Args:
        optimizer: a pinnx chain with an aggregator (e.g. `pinnx.upgrad() |
            optax.adam(1e-3)`), or a pinnx aggregator.
        every: micro-batches per update, a positive int.

    Returns:
        An aggregator (K task rows in, one params-shaped update out); initialise it with
        `init(params, tasks=K)` (`pinnx.fit` does).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> opt = pinnx.accumulate(pinnx.upgrad() | optax.adam(1e-2), every=2)
        >>> state = opt.init({"w": jnp.zeros(3)}, tasks=2)
    """
    if not isinstance(optimizer, Combiner) or not (
        isinstance(optimizer, Aggregator) or getattr(optimizer, "has_aggregator", False)
    ):
        raise ValueError(
            f"accumulate wraps a pinnx aggregator or a chain holding one, got {optimizer!r}; "
            "for a plain optax optimizer use optax.MultiSteps"
        )
    if not concrete(every) or not isinstance(every, int) or isinstance(every, bool):
        raise ValueError(f"accumulate: every must be a positive int, got {every!r}")
    check(every, lambda v: v >= 1, f"accumulate: every must be a positive int, got {every!r}")
    inner = optax.with_extra_args_support(optimizer)

    def init(params: PyTree, *, tasks: Tasks = None) -> AccumulateState:
        k = count_tasks(tasks, "accumulate")
        if params is None or not jax.tree.leaves(params):
            raise ValueError("accumulate needs the parameters at init to shape its sums")
        rows = jax.tree.map(lambda p: jnp.zeros((k,) + jnp.shape(p), jnp.result_type(p)),
                            params)
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return AccumulateState(jnp.zeros((), jnp.int32), rows, jnp.zeros((k,), dtype),
                               init_state(optimizer, params, tasks=tasks))

    def update(updates, state, params=None, *, losses: Any = None, **extra_args):
        k = num_tasks(updates)
        k_state = jnp.shape(state.losses)[0]
        if k_state != k:
            raise ValueError(f"accumulate was initialised for {k_state} tasks but got {k} "
                             "task rows")
        n = state.mini_step
        dtype = state.losses.dtype
        rows = jax.tree.map(lambda a, g: a + (g - a) / (n + 1).astype(a.dtype), state.rows,
                            updates)
        values = (jnp.zeros((k,), dtype) if losses is None
                  else task_vector(losses, k, "accumulate", "losses", dtype))
        mean_losses = state.losses + (values - state.losses) / (n + 1).astype(dtype)
        named = None if losses is None else dict(zip(sorted(losses), mean_losses, strict=True))

        def emit():
            out, new_inner = inner.update(rows, state.inner, params, losses=named,
                                          **extra_args)
            zero_rows = jax.tree.map(jnp.zeros_like, rows)
            return out, AccumulateState(jnp.zeros((), jnp.int32), zero_rows,
                                        jnp.zeros_like(mean_losses), new_inner)

        def hold():
            shapes = jax.eval_shape(lambda: inner.update(rows, state.inner, params,
                                                         losses=named, **extra_args)[0])
            out = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            return out, AccumulateState(n + 1, rows, mean_losses, state.inner)

        return jax.lax.cond(n + 1 >= every, emit, hold)

    return Aggregator(init, update)
