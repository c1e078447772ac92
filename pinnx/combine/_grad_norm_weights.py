"""Gradient-norm loss weights (Wang et al. 2023, "An expert's guide to training PINNs")."""

from typing import NamedTuple

from jaxtyping import Array, Float, Int

from ..tasks import normalized_gram
from ._base import FloatLike, IntLike, Tasks, TaskTransform
from ._loss_weighting import ema_weighting, inverse_share
from ._registry import register

__all__ = ["grad_norm_weights", "GradNormWeightsState"]


class GradNormWeightsState(NamedTuple):
    """State of `grad_norm_weights`.

    Attributes:
        weights: (K,) the current loss weights lambda_k.
        count: number of updates seen (the step counter of the `every` period).
        skipped: number of due weight updates at which some task's estimate was undefined
            (a zero or non-finite gradient), so that weight kept its value.
    """

    weights: Float[Array, " tasks"]
    count: Int[Array, ""]
    skipped: Int[Array, ""]


@register
def grad_norm_weights(
    alpha: FloatLike = 0.1, every: IntLike = 1000, *, tasks: Tasks = None
) -> TaskTransform:
    """Global weights that give every task's weighted gradient the same norm.

    Every `every` steps (from the first on),

        lambda_hat_k = (sum_j ||g_j||) / ||g_k||,
        lambda_k    <- (1 - alpha) lambda_k + alpha lambda_hat_k,

    starting from lambda = 1, so that lambda_hat_k ||g_k|| = sum_j ||g_j|| for every k. Row
    k is multiplied by lambda_k; a step uses the weights updated at that step. Norms are
    computed scale-safely (`pinnx.tasks.normalized_gram`). A zero or non-finite row has no
    estimate: its weight keeps its value and `state.skipped` counts the step.
    A weight can outgrow the rows (1e37 from rows 1e-19 and 1e20 apart): where
    lambda_k g_k would overflow the dtype, row k saturates instead (the multiple of g_k
    whose largest entry is just below the dtype's largest number; never inf).

    The reference code (jaxpi) uses the mean of the norms instead of their sum (weights K
    times smaller; the same update direction after any scale-free optimizer such as Adam)
    and adds 1e-5 * mean to the denominator; here the sum of the paper's formula is used and
    undefined estimates are skipped instead.

    Args:
        alpha: weight of the new estimate in the moving average (the paper's 1 - 0.9).
        every: update period in steps (the paper uses 1000).
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `GradNormWeightsState.weights` is (K,).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> tx = pinnx.grad_norm_weights(every=100)
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> rows, state = tx.update(grads, state, losses=losses)
        >>> [round(v, 3) for v in state.weights.tolist()]   # the smaller row gains weight
        [1.447, 1.022]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.grad_norm_weights(every=100) | pinnx.sum() | optax.adam(1e-3)

    References:
        Wang, Sankaran, Wang, Perdikaris. "An Expert's Guide to Training Physics-informed
        Neural Networks". 2023. https://arxiv.org/abs/2308.08468 ; code: jaxpi,
        https://github.com/PredictiveIntelligenceLab/jaxpi
    """

    def estimate(grads, weights, *, due, main, **extra_args):
        del weights, due, main, extra_args
        norms, _ = normalized_gram(grads)
        return inverse_share(norms)

    return ema_weighting(estimate, alpha=alpha, every=every, state=GradNormWeightsState,
                         name="grad_norm_weights", tasks=tasks)
