"""Random loss weighting, RLW (Lin et al., TMLR 2022)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Key, PyTree

from ..tasks import num_tasks
from ._base import Aggregator, IntLike
from ._registry import register
from ._trimmed_mean import column_power

__all__ = ["random", "random_weights", "RandomState"]


class RandomState(NamedTuple):
    """State of `random`: the key of the next draw."""

    key: Key[Array, ""]


def random_weights(draws: Float[Array, " tasks"]) -> Float[Array, " tasks"]:
    """RLW's weights from its normal draws: w = softmax(z), positive and summing to 1.

    Args:
        draws: (K,) the draws z_k ~ N(0, 1) of one step.

    Returns:
        w: (K,) the task weights.
    """
    return jax.nn.softmax(draws)


def convex_sum(
    weights: Float[Array, " tasks"], grads: PyTree[Float[Array, "tasks ..."]]
) -> PyTree[Float[Array, "..."]]:
    """sum_k w_k g_k for convex weights (w_k >= 0, sum 1), safe at both ends of the float
    range: K-row leaves -> params-shaped leaves.

    Each coordinate is divided by a power of two close to its largest entry (exact,
    `column_power`), combined, multiplied back, and clipped to the range of its entries
    (where the exact combination lies). So it is finite for finite rows, and where the
    entries of a coordinate have one sign it is at least the smallest of them in magnitude:
    never flushed to zero there (w_k g_k alone underflows for a float32 entry of 1.2e-38 and
    w_k < 1). Error: within about (K + 1) u sum_k w_k |g_k| (u = eps / 2) of the exact
    combination with the given weights, plus at most (K + 1) tiny (1 + max_k |g_k|) for what
    is flushed (tiny: the smallest normal number): a result below tiny, terms below tiny
    times the coordinate's largest entry.
    """

    def leaf(g):
        p = column_power(g)
        w = jnp.reshape(weights.astype(g.dtype), (-1,) + (1,) * (g.ndim - 1))
        return jnp.clip(jnp.sum(w * (g / p[None]), axis=0) * p, jnp.min(g, axis=0),
                        jnp.max(g, axis=0))

    return jax.tree.map(leaf, grads)


@register
def random(*, seed: IntLike = 0) -> "Aggregator":  # noqa: A001 - the method's name (RLW)
    """Random loss weighting: a fresh random convex combination of the task rows each step.

    Every update draws z ~ N(0, I_K), sets w = softmax(z) and returns d = sum_k w_k g_k.
    The weights are positive and sum to one, so d is a random point of the convex hull of
    the task gradients; in expectation every task gets weight 1/K, so RLW behaves like
    `mean()` plus noise in the weights, which Lin et al. found to be a strong baseline.
    The name shadows Python's `random` module inside `pinnx`: call it qualified,
    `pinnx.random(seed=0)`.
    Cost: K normal draws and one weighted sum (no Gram matrix), formed by `convex_sum`:
    finite, within the range of the entries at every coordinate (so a single row, or K
    equal rows, are returned exactly), never flushed to zero where the entries have one
    sign.

    Args:
        seed: seed of the key held in the state; each update splits it.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[2.0, 0.0], [0.0, 2.0]])}   # 2 task rows
        >>> agg = pinnx.random(seed=0)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> round(float(update["w"].sum()), 3)   # 2 w_0 + 2 w_1 with w_0 + w_1 = 1
        2.0

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.random(seed=0) | optax.adam(1e-3)

    References:
        Lin, Ye, Xu, Shi, Zhang, Kwok. "Reasonable Effectiveness of Random Weighting: A
        Litmus Test for Multi-Task Learning". TMLR 2022. https://arxiv.org/abs/2111.10603
    """

    def init(params, *, tasks=None):
        del params, tasks
        return RandomState(key=jax.random.key(seed))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        k = num_tasks(updates)
        dtype = jnp.result_type(*jax.tree.leaves(updates))
        key, sub = jax.random.split(state.key)
        w = random_weights(jax.random.normal(sub, (k,), dtype))
        return convex_sum(w, updates), RandomState(key=key)

    return Aggregator(init, update)
