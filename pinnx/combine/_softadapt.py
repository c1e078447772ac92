"""SoftAdapt: loss weights from a softmax of recent loss slopes (Heydari et al. 2019)."""

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._base import FloatLike, Tasks, TaskTransform
from ._loss_weighting import loss_vector, loss_weighting, scaled_softmax
from ._registry import register

__all__ = ["softadapt", "SoftAdaptState"]


class SoftAdaptState(NamedTuple):
    """State of `softadapt`.

    Attributes:
        weights: (K,) the current loss weights (they average to 1).
        last_losses: (K,) the losses of the last valid update.
        count: number of valid updates so far.
        skipped: number of updates at which the weights were left unchanged (a loss not
            finite, negative with `loss_weighted`, or a slope that overflows).
    """

    weights: Float[Array, " tasks"]
    last_losses: Float[Array, " tasks"]
    count: Int[Array, ""]
    skipped: Int[Array, ""]


@register
def softadapt(
    beta: FloatLike = 0.1,
    *,
    normalized: bool = False,
    loss_weighted: bool = False,
    tasks: Tasks = None,
) -> TaskTransform:
    """SoftAdapt: weight the losses by a softmax of how fast each one is changing.

    With the slope s_k = L_k(t) - L_k(t-1) of each loss over the last step,

        lambda_k = K exp(beta s_k) / sum_j exp(beta s_j)                       (original),
        s_k     <- s_k / sum_j |s_j|  first                                  (normalized),
        lambda_k = K f_k exp(beta s_k) / sum_j f_j exp(beta s_j)          (loss_weighted),

    with f_k = (L_k(t) + L_k(t-1)) / 2 the recent loss (the authors' code: the mean of the
    loss history). With beta > 0 the tasks whose loss decreases least get the larger
    weights. Row k is multiplied by lambda_k of the current step; the first valid step has
    no slope and uses lambda = 1. The paper's weights sum to 1; here they are scaled by K to
    average 1 (so beta = 0 is the plain sum). The slope is the authors' finite-difference
    slope over a two-loss history (first order).

    The losses come from `losses=` and must be finite (and the f_k non-negative with a
    positive sum, for `loss_weighted`); otherwise the weights are left unchanged, the losses
    are not recorded, and `state.skipped` counts the step. With `normalized`, slopes that
    are all zero stay zero (equal weights). A weight below the dtype's smallest normal
    number is 0 (beta = -3 and slopes 30 apart give e^-90); every larger one is kept.

    Args:
        beta: the softmax scale; > 0 favours the slowest-improving tasks, < 0 the fastest.
        normalized: divide the slopes by the sum of their absolute values (the paper's
            normalized variant; the authors' code divides by their plain sum).
        loss_weighted: multiply each exponential by the recent loss f_k (the paper's
            loss-weighted variant).
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `SoftAdaptState.weights` is (K,).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> tx = pinnx.softadapt(beta=0.1, normalized=True)
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> for bc, pde in [(0.1, 2.0), (0.05, 1.9)]:   # losses of 2 steps
        ...     losses = {"bc": jnp.array(bc), "pde": jnp.array(pde)}
        ...     rows, state = tx.update(grads, state, losses=losses)
        >>> [round(v, 3) for v in state.weights.tolist()]
        [1.017, 0.983]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.softadapt(beta=0.1, normalized=True) | pinnx.sum() | optax.adam(1e-3)

    References:
        Heydari, Thompson, Mehmood. "SoftAdapt: Techniques for Adaptive Loss Weighting of
        Neural Networks with Multi-Part Loss Functions". 2019.
        https://arxiv.org/abs/1912.12355 ; code: https://github.com/dr-aheydari/SoftAdapt
    """

    def init(k, dtype):
        zero = jnp.zeros((), jnp.int32)
        return SoftAdaptState(jnp.ones((k,), dtype), jnp.zeros((k,), dtype), zero, zero)

    def weigh(grads, state, losses, **extra_args):
        del grads, extra_args
        k = state.weights.shape[0]
        values = loss_vector(losses, k, "softadapt", state.weights.dtype)
        ok = jnp.all(jnp.isfinite(values))
        slopes = values - state.last_losses
        ok = ok & jnp.all(jnp.isfinite(slopes))
        slopes = jnp.where(ok, slopes, 0)
        if normalized:
            size = jnp.sum(jnp.abs(slopes))
            ok = ok & jnp.isfinite(size)
            slopes = jnp.where((size > 0) & ok, slopes / jnp.where(size > 0, size, 1), 0)
        logits = beta * slopes
        if loss_weighted:
            recent = (values + state.last_losses) / 2
            ok = ok & jnp.all(jnp.isfinite(recent) & (recent >= 0)) & (jnp.sum(recent) > 0)
            # f_k exp(beta s_k) = exp(beta s_k + log f_k); log 0 = -inf gives weight 0
            safe = jnp.where(ok, recent, 1)
            logits = logits + jnp.where(safe > 0, jnp.log(jnp.where(safe > 0, safe, 1)),
                                        -jnp.inf)
        computed = scaled_softmax(jnp.where(ok, logits, 0))
        ok = ok & jnp.all(jnp.isfinite(computed))
        fresh = jnp.where(state.count == 0, jnp.ones_like(computed), computed)
        weights = jnp.where(ok, fresh, state.weights)
        new = SoftAdaptState(
            weights=weights,
            last_losses=jnp.where(ok, values, state.last_losses),
            count=state.count + ok.astype(jnp.int32),
            skipped=state.skipped + (~ok).astype(jnp.int32),
        )
        return weights, new

    return loss_weighting(init, weigh, name="softadapt", tasks=tasks)
