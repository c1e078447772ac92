"""PCGrad: projecting conflicting gradients (Yu et al., NeurIPS 2020)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, Key

from ._base import Aggregator, IntLike
from ._gram import gram_aggregator
from ._registry import register

__all__ = ["pcgrad", "pcgrad_weights", "PCGradState"]


class PCGradState(NamedTuple):
    """State of `pcgrad` with a random order: the key of the next permutation draw."""

    key: Key[Array, ""]


def _others(k: int) -> Int[Array, "tasks others"]:
    """Row i lists 0..K-1 without i, in ascending order."""
    j = jnp.arange(k - 1)[None, :]
    i = jnp.arange(k)[:, None]
    return j + (j >= i).astype(j.dtype)


def _random_others(key: Key[Array, ""], k: int) -> Int[Array, "tasks others"]:
    """Row i lists 0..K-1 without i, in an independent random order for every i."""
    # argsort of iid uniforms: a uniform random permutation per row, and far cheaper to
    # compile than vmapped jax.random.permutation
    perms = jnp.argsort(jax.random.uniform(key, (k, k - 1)), axis=1)
    return perms + (perms >= jnp.arange(k)[:, None]).astype(perms.dtype)


def pcgrad_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    order: Int[Array, "tasks others"],
) -> Float[Array, " tasks"]:
    """PCGrad as a weighting of the Gram matrix, in the unit-direction basis.

    Task i's projected gradient is tracked by its coefficients b on u_k = g_k / ||g_k||,
    starting from b = ||g_i|| e_i. For each j in `order[i]`: if b . C[:, j] < 0 (the current
    vector conflicts with g_j), subtract its projection on g_j, i.e. b_j -= b . C[:, j].
    The aggregate is sum_i b^(i), so d = sum_k beta_k u_k.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        order: (K, K-1) for each task i, the other tasks in projection order.

    Returns:
        beta: (K,) coefficients of the aggregate on the unit directions.
    """
    k = norms.shape[0]
    b = jnp.diag(norms)
    rows = jnp.arange(k)
    for s in range(order.shape[1]):
        j = order[:, s]
        dots = jnp.sum(b * cos[:, j].T, axis=1)  # (c_i . u_j) for every i
        b = b.at[rows, j].add(-jnp.minimum(dots, 0))
    return jnp.sum(b, axis=0)


@register
def pcgrad(*, seed: IntLike = 0, random_order: bool = True) -> Aggregator:
    """PCGrad: project each task gradient off the others it conflicts with, then sum.

    For each task i, start from g_i; for every other task j (in a random order, drawn afresh
    for each i at every step), if the current vector c has c . g_j < 0, replace it by
    c - (c . g_j / ||g_j||^2) g_j. The update is the sum of the K projected vectors. For two
    tasks the result never conflicts with either: d . g_k >= 0.

    Computed from the K x K cosine matrix and the K norms (one pass over the gradients for
    the Gram matrix, one for the weighted sum); safe for zero, parallel, opposite and
    extremely scaled rows.

    Args:
        seed: seed of the key held in the state; each update splits it.
        random_order: False projects in ascending task order (deterministic, stateless).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.pcgrad(random_order=False)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # each row projected off the other
        [0.5, 1.5]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.pcgrad() | optax.adam(1e-3)

    References:
        Yu, Kumar, Gupta, Levine, Hausman, Finn. "Gradient Surgery for Multi-Task Learning".
        NeurIPS 2020. https://arxiv.org/abs/2001.06782
    """

    def init(params, tasks):
        del params, tasks
        if random_order:
            return PCGradState(key=jax.random.key(seed))
        return optax.EmptyState()

    def weights(norms, cos, state):
        k = norms.shape[0]
        if random_order:
            key, sub = jax.random.split(state.key)
            order, state = _random_others(sub, k), PCGradState(key=key)
        else:
            order = _others(k)
        return pcgrad_weights(norms, cos, order), state

    return gram_aggregator(weights, init=init)
