"""Coordinate-wise trimmed mean (Yin et al., ICML 2018)."""

import operator

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from ..tasks import num_tasks
from ._base import Aggregator, stateless_init
from ._gram import power_below
from ._registry import register

__all__ = ["trimmed_mean", "trimmed_mean_rows"]


def column_power(g: Float[Array, "rows ..."]) -> Float[Array, "..."]:
    """At every coordinate of a (K, ...) leaf, a power of two p with p <= max_k |g_k| < 2 p
    (p <= max_k |g_k| < 4 p in the top binade, so that 1 / p is normal too: XLA may divide
    by multiplying with the reciprocal; 1 where the column is zero). g / p lies in (-4, 4)
    and is exact, unless it falls below the smallest normal number (an entry under 2^-126
    of its column's largest, in float32), where it is flushed to zero. Sums of g / p
    neither overflow nor underflow."""
    return power_below(jnp.max(jnp.abs(g), axis=0))


def row_mean(g: Float[Array, "rows ..."], select: Bool[Array, " rows"] | None = None
             ) -> Float[Array, "..."]:
    """At every coordinate, the mean of the rows of a (K, ...) leaf (of the rows where
    `select` holds, at least one), safe at both ends of the float range.

    Formed as p * (sum_k g_k / p) / n with p = `column_power` of the rows averaged (n of
    them), so no partial sum overflows or underflows. Each coordinate is within
    (n - 1) u sum_k |g_k| / n + u |mean| (to first order in u = eps / 2) of the exact mean,
    plus at most tiny (1 + max_k |g_k|) for what is flushed (tiny: the smallest normal
    number): a mean below tiny, entries below tiny times their column's largest. It is
    clipped to the range of the entries averaged: finite for finite rows (a plain sum of
    float32 entries above 1.7e38 overflows), and at least the smallest entry in magnitude
    where all have one sign (1 / n times a float32 row of 1.2e-38 would underflow to 0).
    """
    if select is None:
        lo, hi, n = jnp.min(g, axis=0), jnp.max(g, axis=0), g.shape[0]
    else:
        sel = jnp.reshape(select, (-1,) + (1,) * (g.ndim - 1))
        lo = jnp.min(jnp.where(sel, g, jnp.inf), axis=0)
        hi = jnp.max(jnp.where(sel, g, -jnp.inf), axis=0)
        g = jnp.where(sel, g, jnp.zeros_like(g))
        n = jnp.sum(select).astype(g.dtype)
    p = column_power(g)
    return jnp.clip(jnp.sum(g / p[None], axis=0) / n * p, lo, hi)


def trimmed_mean_rows(
    grads: PyTree[Float[Array, "tasks ..."]], trim: int
) -> PyTree[Float[Array, "..."]]:
    """At every coordinate, the mean of the K entries left after dropping the `trim`
    largest and the `trim` smallest: K-row leaves -> params-shaped leaves.

    Each mean is formed by `row_mean` (finite for finite rows; its error bound is there).

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
    return jax.tree.map(lambda g: row_mean(jnp.sort(g, axis=0)[trim : k - trim]), grads)


@register
def trimmed_mean(trim: int) -> Aggregator:
    """Coordinate-wise trimmed mean of the task rows, robust to `trim` outlying rows.

    At every coordinate p, sort the K entries g_1[p], ..., g_K[p], drop the `trim` largest
    and the `trim` smallest, and average the K - 2 trim left:
    d[p] = (1 / (K - 2 trim)) sum_{r = trim+1}^{K - trim} g_(r)[p] (order statistics).
    `trim=0` is `mean()`; the largest trim, (K - 1) // 2, gives the coordinate-wise median
    for odd K. Not a weighting of the Gram matrix: each coordinate picks its own rows.
    Cost: a sort of K entries at each of the P coordinates, O(P K log K). Each mean is
    scaled by a power of two before it is summed (`row_mean`): finite for finite rows, and
    within the range of the entries averaged.

    The number of rows is static, so too few rows (K <= 2 trim) raise a `ValueError` when
    the update is traced (e.g. at the first `jax.jit` call), not a silent fallback.

    Args:
        trim: how many of the largest and of the smallest entries to drop at each
            coordinate (a non-negative int; 2 trim + 1 task rows are needed).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0], [0.5, 0.5]])}   # 3 task rows
        >>> agg = pinnx.trimmed_mean(trim=1)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=3))
        >>> [round(v, 3) for v in update["w"].tolist()]   # the median row of each coordinate
        [0.5, 0.5]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.trimmed_mean(trim=1) | optax.adam(1e-3)

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

    return Aggregator(stateless_init, update)
