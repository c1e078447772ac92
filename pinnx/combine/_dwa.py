"""Dynamic weight average (Liu, Johns, Davison, CVPR 2019)."""

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._base import FloatLike, Tasks, TaskTransform, check
from ._loss_weighting import all_positive, loss_vector, loss_weighting, scaled_softmax
from ._registry import register

__all__ = ["dwa", "DWAState"]


class DWAState(NamedTuple):
    """State of `dwa`.

    Attributes:
        weights: (K,) the weights of the current step (they average to 1).
        last_losses: (K,) L(t-1), the losses of the last valid update.
        earlier_losses: (K,) L(t-2), those of the valid update before it.
        count: number of valid loss records so far.
        skipped: number of updates whose losses were not recorded (a loss zero, negative or
            not finite) or whose loss ratios overflowed (the weights then stay as they are).
    """

    weights: Float[Array, " tasks"]
    last_losses: Float[Array, " tasks"]
    earlier_losses: Float[Array, " tasks"]
    count: Int[Array, ""]
    skipped: Int[Array, ""]


@register
def dwa(temperature: FloatLike = 2.0, *, tasks: Tasks = None) -> TaskTransform:
    """Dynamic weight average: weight each loss by how slowly it decreased recently.

    With w_k = L_k(t-1) / L_k(t-2), the ratio of each task's last two recorded losses,

        lambda_k(t) = K exp(w_k / T) / sum_j exp(w_j / T),

    and lambda = 1 until two losses are recorded. Row k of step t is multiplied by
    lambda_k(t), which depends only on earlier losses; the step's own losses (from
    `losses=`) are then recorded. The paper's t counts epochs (losses averaged over an
    epoch); here it counts updates: pass epoch-averaged losses to follow it exactly.

    Losses must be positive: a step whose losses are zero, negative or not finite is not
    recorded (`state.skipped` counts it) and the weights stay as they are; a ratio that
    overflows leaves the weights unchanged too.

    Args:
        temperature: T, the softmax temperature (the paper uses 2).
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `DWAState.weights` is (K,).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> tx = pinnx.dwa(temperature=2.0)
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> for bc, pde in [(0.1, 2.0), (0.05, 1.9), (0.04, 1.8)]:   # losses of 3 steps
        ...     losses = {"bc": jnp.array(bc), "pde": jnp.array(pde)}
        ...     rows, state = tx.update(grads, state, losses=losses)
        >>> [round(v, 3) for v in state.weights.tolist()]   # "bc" fell faster: less weight
        [0.888, 1.112]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.dwa(temperature=2.0) | pinnx.sum() | optax.adam(1e-3)

    References:
        Liu, Johns, Davison. "End-to-End Multi-Task Learning with Attention". CVPR 2019.
        https://arxiv.org/abs/1803.10704
    """
    check(temperature, lambda v: v > 0, f"dwa temperature must be positive, got {temperature}")

    def init(k, dtype):
        ones = jnp.ones((k,), dtype)
        zero = jnp.zeros((), jnp.int32)
        return DWAState(ones, ones, ones, zero, zero)

    def weigh(grads, state, losses, **extra_args):
        del grads, extra_args
        k = state.weights.shape[0]
        values = loss_vector(losses, k, "dwa", state.weights.dtype)
        # weights of this step, from the two losses recorded before it (positive by
        # construction: only valid losses are recorded)
        ratio = state.last_losses / state.earlier_losses
        computed = scaled_softmax(jnp.where(jnp.isfinite(ratio), ratio, 0) / temperature)
        ready = state.count >= 2
        usable = ready & jnp.all(jnp.isfinite(ratio)) & jnp.all(jnp.isfinite(computed))
        weights = jnp.where(usable, computed, state.weights)
        ok = all_positive(values)
        skip = ~ok | (ready & ~usable)
        new = DWAState(
            weights=weights,
            last_losses=jnp.where(ok, values, state.last_losses),
            earlier_losses=jnp.where(ok, state.last_losses, state.earlier_losses),
            count=state.count + ok.astype(jnp.int32),
            skipped=state.skipped + skip.astype(jnp.int32),
        )
        return weights, new

    return loss_weighting(init, weigh, name="dwa", tasks=tasks)
