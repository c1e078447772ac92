"""Random loss weighting, RLW (Lin et al., TMLR 2022)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Key

from ..tasks import num_tasks
from ._base import Aggregator, weighted_sum

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


def random(*, seed: int = 0) -> "Aggregator":  # noqa: A001 - the method's name (RLW)
    """Random loss weighting: a fresh random convex combination of the task rows each step.

    Every update draws z ~ N(0, I_K), sets w = softmax(z) and returns d = sum_k w_k g_k.
    The weights are positive and sum to one, so d is a random point of the convex hull of
    the task gradients; in expectation every task gets weight 1/K, so RLW behaves like
    `mean()` plus noise in the weights, which Lin et al. found to be a strong baseline.
    Cost: K normal draws and one weighted sum (no Gram matrix).

    Args:
        seed: seed of the key held in the state; each update splits it.

    Example:
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
        return weighted_sum(w, updates), RandomState(key=key)

    return Aggregator(init, update).labelled(f"random(seed={seed})")
