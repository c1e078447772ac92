"""NTK loss weights (Wang, Yu, Perdikaris, JCP 2022); the traces they need are in `pinnx.tasks`."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..tasks import ntk_traces
from ._base import FloatLike, IntLike, Tasks, TaskTransform
from ._loss_weighting import ema_weighting, inverse_share, task_vector
from ._registry import register

__all__ = ["ntk_weights", "ntk_traces", "NTKWeightsState"]


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


@register
def ntk_weights(alpha: FloatLike = 0.1, every: IntLike = 1000, *, tasks: Tasks = None
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

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> tx = pinnx.ntk_weights(every=100)
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> rows, state = tx.update(grads, state, losses=losses,
        ...                         ntk_traces={"bc": 1.0, "pde": 9.0})
        >>> [round(v, 3) for v in state.weights.tolist()]   # 0.9 + 0.1 * 10 / trace
        [1.9, 1.011]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.ntk_weights(every=100) | pinnx.sum() | optax.adam(1e-3)

    References:
        Wang, Yu, Perdikaris. "When and why PINNs fail to train: A neural tangent kernel
        perspective". J. Comput. Phys. 449, 2022. https://arxiv.org/abs/2007.14527
    """

    def estimate(grads, weights, *, due, main, ntk_traces: Callable[[], Any] | Any = None,
                 **extra_args):
        del main, extra_args
        if ntk_traces is None:
            raise ValueError(
                "ntk_weights needs the per-task NTK traces: update(..., ntk_traces=fn) with "
                "fn() -> {task: trace} (e.g. lambda: pinnx.ntk_traces(losses, model, batch)),"
                " or the traces themselves. pinnx.fit passes them when its loss function is "
                "a pinnx.residuals.Losses"
            )
        k = weights.shape[0]
        dtype = jnp.result_type(*jax.tree.leaves(grads))

        def fetch():
            value = ntk_traces() if callable(ntk_traces) else ntk_traces
            return task_vector(value, k, "ntk_weights", "ntk_traces", dtype)

        traces = jax.lax.cond(due, fetch, lambda: jnp.zeros((k,), dtype))
        return inverse_share(traces)

    return ema_weighting(estimate, alpha=alpha, every=every, state=NTKWeightsState,
                         name="ntk_weights", tasks=tasks)
