"""NTK loss weights (Wang, Yu, Perdikaris, JCP 2022) and the per-task NTK traces they need."""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..residuals import Losses
from ..tasks import num_tasks
from ._base import Tasks, TaskTransform, count_tasks
from ._loss_weighting import (
    check_rows,
    ema,
    inverse_share,
    scale_rows,
    state_dtype,
    task_vector,
)

__all__ = ["ntk_weights", "ntk_traces", "NTKWeightsState"]


def ntk_traces(
    losses: Losses,
    model: Any,
    batch: Mapping[str, Any],
    *,
    mean: bool = False,
    batch_size: int | None = None,
) -> dict[str, Float[Array, ""]]:
    """Trace of each task's block of the neural tangent kernel: sum_i ||d r_i / d theta||^2.

    For task k with per-point residuals r_i (its `Term` evaluated at each point of its batch
    entry; vector residuals contribute every component), the diagonal block K_kk of the NTK
    has entries (d r_i / d theta) . (d r_j / d theta), so tr(K_kk) = sum_i ||d r_i/d theta||^2
    over the model's trainable (inexact-array) leaves. Each point's Jacobian is one
    `jax.jacrev`, mapped over the points.

    Args:
        losses: the loss function, a `pinnx.residuals.Losses` (it knows the per-point
            residuals).
        model: the model (its inexact-array leaves are the parameters theta).
        batch: the batch, one entry per task, as `losses` takes it.
        mean: average over the task's points instead of summing (the jaxpi code's variant,
            which does not grow with the number of points).
        batch_size: points per vectorised chunk (`jax.lax.map`), to bound the memory of the
            per-point Jacobians (N x P per task at once by default).

    Returns:
        {task: scalar trace}, in sorted task order (the row order).

    Example:
        >>> traces = pinnx.ntk_traces(losses, model, batch)   # {"bc": ..., "pde": ...}
    """
    if not isinstance(losses, Losses):
        raise ValueError(
            "ntk_traces needs per-point residuals: a pinnx.residuals.Losses, got "
            f"{type(losses).__name__}"
        )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    out = {}
    for name in sorted(losses.terms):
        term = losses.terms[name]
        if name not in batch:
            raise ValueError(f"the batch has no entry {name!r} (the points of task {name!r})")

        def residual(p, point, term=term):
            one = jax.tree.map(lambda a: a[None], point)
            return jnp.ravel(term(eqx.combine(p, static), one))

        def squared_norm(point, residual=residual):
            jac = jax.jacrev(residual)(params, point)
            return sum(jnp.sum(j**2) for j in jax.tree.leaves(jac))

        per_point = jax.lax.map(squared_norm, batch[name], batch_size=batch_size or 0)
        out[name] = jnp.mean(per_point) if mean else jnp.sum(per_point)
    return out


class NTKWeightsState(NamedTuple):
    """State of `ntk_weights`.

    Attributes:
        weights: (K,) the current loss weights lambda_k.
        count: number of updates seen (the step counter of the `every` period).
        skipped: number of due weight updates at which some task's trace was zero or not
            finite, so that weight kept its value.
    """

    weights: Float[Array, " tasks"]
    count: Int[Array, ""]
    skipped: Int[Array, ""]


def ntk_weights(alpha: float = 0.1, every: int = 1000, *, tasks: Tasks = None
                ) -> TaskTransform:
    """Weights from the neural tangent kernel: lambda_k = tr(K) / tr(K_kk).

    Every `every` steps (from the first on),

        lambda_hat_k = (sum_j tr(K_jj)) / tr(K_kk),
        lambda_k    <- (1 - alpha) lambda_k + alpha lambda_hat_k,

    starting from lambda = 1, with tr(K_kk) = sum_i ||d r_i / d theta||^2 over task k's
    points (`ntk_traces`); tr(K) = sum_j tr(K_jj) is the trace of the whole NTK. Row k is
    multiplied by lambda_k; a step uses the weights updated at that step. A zero or
    non-finite trace has no estimate: that weight keeps its value and `state.skipped`
    counts the step. Traces far apart give weights up to the dtype's largest number: where
    lambda_k g_k would overflow the dtype, row k saturates instead (the multiple of g_k
    whose largest entry is just below the dtype's largest number; never inf).

    The traces need the per-point residuals, which the per-task gradients do not carry, so
    they are an explicit input, the keyword `ntk_traces=` of `update`:

    - a zero-argument function returning the traces (dict by task name, or (K,) array in row
      order). It is called only at the steps that update the weights (inside `lax.cond`),
      so the Jacobians cost nothing in between. `pinnx.fit` passes
      `ntk_traces=lambda: pinnx.ntk_traces(losses, model, batch)` whenever its loss function
      is a `pinnx.residuals.Losses`;
    - or the traces themselves (dict or (K,) array).

    Args:
        alpha: weight of the new estimate in the moving average (jaxpi's 1 - momentum 0.9).
        every: update period in steps (jaxpi updates every 1000 steps).
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `NTKWeightsState.weights` is (K,).

    Example:
        >>> opt = pinnx.ntk_weights(every=100) | pinnx.sum() | optax.adam(1e-3)
        >>> model, state, history = pinnx.fit(losses, model, opt, batch, steps=5000)
        >>> # by hand:
        >>> updates, state = opt.update(grads, state, params, losses=values,
        ...     ntk_traces=lambda: pinnx.ntk_traces(losses, model, batch))

    References:
        Wang, Yu, Perdikaris. "When and why PINNs fail to train: A neural tangent kernel
        perspective". J. Comput. Phys. 449, 2022. https://arxiv.org/abs/2007.14527
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"ntk_weights alpha must lie in (0, 1], got {alpha}")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"ntk_weights every must be a positive int, got {every!r}")
    label = f"ntk_weights(alpha={alpha}, every={every})"
    bound = tasks

    def init(params, *, tasks: Tasks = None) -> NTKWeightsState:
        k = count_tasks(bound if tasks is None else tasks, label)
        return NTKWeightsState(jnp.ones((k,), state_dtype(params)), jnp.zeros((), jnp.int32),
                               jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, *,
               ntk_traces: Callable[[], Any] | Any = None, **extra_args):
        del params, extra_args
        k = num_tasks(updates)
        check_rows(state.weights.shape[0], k, label)
        if ntk_traces is None:
            raise ValueError(
                "ntk_weights needs the per-task NTK traces: update(..., ntk_traces=fn) with "
                "fn() -> {task: trace} (e.g. lambda: pinnx.ntk_traces(losses, model, batch)),"
                " or the traces themselves. pinnx.fit passes them when its loss function is "
                "a pinnx.residuals.Losses"
            )
        dtype = jnp.result_type(*jax.tree.leaves(updates))

        def fetch():
            value = ntk_traces() if callable(ntk_traces) else ntk_traces
            return task_vector(value, k, "ntk_weights", "ntk_traces", dtype)

        due = state.count % every == 0
        traces = jax.lax.cond(due, fetch, lambda: jnp.zeros((k,), dtype))
        est, defined = inverse_share(traces)
        weights, skip = ema(state.weights, est, defined, alpha, due)
        new = NTKWeightsState(weights, state.count + 1, state.skipped + skip.astype(jnp.int32))
        return scale_rows(weights, updates), new

    return TaskTransform(init, update).labelled(label)
