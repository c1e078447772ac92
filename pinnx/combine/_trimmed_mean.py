"""Coordinate-wise trimmed mean (Yin et al., ICML 2018)."""

import operator

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ..tasks import num_tasks
from ._base import Aggregator, stateless_init

__all__ = ["trimmed_mean", "trimmed_mean_rows"]


def trimmed_mean_rows(
    grads: PyTree[Float[Array, "tasks ..."]], trim: int
) -> PyTree[Float[Array, "..."]]:
    """At every coordinate, the mean of the K entries left after dropping the `trim`
    largest and the `trim` smallest: K-row leaves -> params-shaped leaves.

    Raises:
        ValueError: if K <= 2 * trim (nothing would be left to average).
    """
    k = num_tasks(grads)
    if k <= 2 * trim:
        raise ValueError(
            f"trimmed_mean(trim={trim}) drops the {trim} largest and the {trim} smallest "
            f"entries of every coordinate, so it needs at least {2 * trim + 1} task rows; "
            f"got {k}"
        )
    return jax.tree.map(lambda g: jnp.mean(jnp.sort(g, axis=0)[trim : k - trim], axis=0),
                        grads)


def trimmed_mean(trim: int) -> Aggregator:
    """Coordinate-wise trimmed mean of the task rows, robust to `trim` outlying rows.

    At every coordinate p, sort the K entries g_1[p], ..., g_K[p], drop the `trim` largest
    and the `trim` smallest, and average the K - 2 trim left:
    d[p] = (1 / (K - 2 trim)) sum_{r = trim+1}^{K - trim} g_(r)[p] (order statistics).
    `trim=0` is `mean()`; the largest trim, (K - 1) // 2, gives the coordinate-wise median
    for odd K. Not a weighting of the Gram matrix: each coordinate picks its own rows.
    Cost: a sort of K entries at each of the P coordinates, O(P K log K).

    The number of rows is static, so too few rows (K <= 2 trim) raise a `ValueError` when
    the update is traced (e.g. at the first `jax.jit` call), not a silent fallback.

    Args:
        trim: how many of the largest and of the smallest entries to drop at each
            coordinate (a non-negative int; 2 trim + 1 task rows are needed).

    Example:
        >>> opt = pinnx.trimmed_mean(trim=1) | optax.adam(1e-3)   # needs K >= 3 losses

    References:
        Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust Distributed Learning: Towards
        Optimal Statistical Rates". ICML 2018. https://arxiv.org/abs/1803.01498
    """
    try:
        trim = operator.index(trim)
    except TypeError:
        raise ValueError(f"trimmed_mean(trim=...) needs an int, got {trim!r}") from None
    if trim < 0:
        raise ValueError(f"trimmed_mean(trim=...) must be non-negative, got {trim}")

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        return trimmed_mean_rows(updates, trim), state

    return Aggregator(stateless_init, update).labelled(f"trimmed_mean(trim={trim})")
