"""Gram-based aggregators: one factory, and the one scale-safe weighted sum.

Most aggregators need only the K x K Gram matrix G = J J^T of the task rows: K weights are
derived from it, and the update is one weighted sum of the rows. `gram_aggregator` owns
everything but the weights: the check of the task axis, the scale-safe Gram step (norms and
cosines, `pinnx.tasks.normalized_gram`), the weighted sum (`unit_combination`) and the
state plumbing. A method is then its weighting function

    weights(norms, cos, state) -> (coefficients, state)

of the (K,) norms and the (K, K) cosine matrix, returning coefficients beta on the unit
directions u_k = g_k / ||g_k||, so that the update is d = sum_k beta_k u_k. Working on
cosines and unit directions keeps every method finite for rows of any magnitude (1e-20 or
1e20 in float32), where G itself would under- or overflow. A method whose coefficients can
underflow before they are summed (MGDA, UPGrad, CAGrad: rows near the smallest normal
number) returns `Scaled(beta, scale)`: coefficients relative to `scale` (typically the
largest norm), which multiplies the sum last.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from ..tasks import normalized_gram, num_tasks
from ._base import Aggregator, Tasks

__all__ = [
    "Scaled",
    "gram_aggregator",
    "task_stats",
    "unit_combination",
    "relative_norms",
    "weighted_sum",
    "power_below",
]


class Scaled(NamedTuple):
    """Coefficients `beta` on the unit directions, relative to `scale`: the update is
    scale * sum_k beta_k u_k, with the scale applied after the sum."""

    beta: Float[Array, " tasks"]
    scale: Float[Array, ""]


# jitted so that an eager update compiles it once per layout (inlined inside a user's jit)
task_stats = jax.jit(normalized_gram)


def gram_aggregator(
    weights: Callable[[Array, Array, Any], tuple[Array | Scaled, Any]],
    *,
    init: Callable[[PyTree, Tasks], Any] | None = None,
    combine: Callable[[Array, Array, PyTree], PyTree] | None = None,
) -> Aggregator:
    """An aggregator from a weighting of the Gram matrix.

    Args:
        weights: `weights(norms, cos, state) -> (coefficients, state)`: (K,) norms, (K, K)
            cosines (zero rows have zero cosines) and the aggregator's state in; the
            coefficients on the unit directions ((K,) array, or `Scaled`) and the new state
            out. Jittable; K is static (`cos.shape[0]`).
        init: `init(params, tasks) -> state` (tasks may be None, see
            `pinnx.combine.count_tasks`); default: a stateless `optax.EmptyState()`.
        combine: `combine(coefficients, norms, grads) -> update`, for a method whose update
            is not a sum on the unit directions (Krum averages the rows it selects); default
            `unit_combination`.

    Returns:
        An `Aggregator`: K task rows in, one params-shaped gradient out. Register the
        public factory that returns it with `pinnx.combine.register` to label it.

    Examples:
        >>> import jax.numpy as jnp, pinnx
        >>> def equal_angles(norms, cos, state):   # the mean of the unit directions
        ...     return jnp.ones_like(norms) / norms.shape[0], state
        >>> agg = pinnx.combine.gram_aggregator(equal_angles)
        >>> d, _ = agg.update({"w": jnp.array([[3.0, 0.0], [0.0, 0.5]])}, agg.init(None))
        >>> d["w"].tolist()
        [0.5, 0.5]
    """

    def init_fn(params: PyTree, *, tasks: Tasks = None) -> Any:
        return optax.EmptyState() if init is None else init(params, tasks)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        num_tasks(updates)
        norms, cos = task_stats(updates)
        coefficients, state = weights(norms, cos, state)
        if combine is not None:
            return combine(coefficients, norms, updates), state
        if isinstance(coefficients, Scaled):
            return unit_combination(coefficients.beta, norms, updates,
                                    coefficients.scale), state
        return unit_combination(coefficients, norms, updates), state

    return Aggregator(init_fn, update)


def _bcast(v: Array, leaf: Array) -> Array:
    return jnp.reshape(v.astype(leaf.dtype), (-1,) + (1,) * (leaf.ndim - 1))


def weighted_sum(weights: Array, grads: PyTree[Array]) -> PyTree[Array]:
    """sum_k weights[k] * row k, leaf by leaf: (K,) and K-row leaves -> params-shaped."""
    return jax.tree.map(lambda g: jnp.sum(_bcast(weights, g) * g, axis=0), grads)


def power_below(top: Float[Array, "..."]) -> Float[Array, "..."]:
    """A power of two p with p <= top < 2 p (top < 4 p in the top binade, so that 1 / p is
    normal too); 1 where top is below the smallest normal number. Dividing by p is exact:
    the scale-safe sums of this module, `_trimmed_mean` and `_random` work in these units."""
    _, e = jnp.frexp(top)  # 2^(e-1) <= top < 2^e
    fi = jnp.finfo(top.dtype)
    e = jnp.minimum(e - 1, fi.maxexp - 2)
    return jnp.where(top >= fi.tiny, jnp.ldexp(jnp.ones_like(top), e), jnp.ones_like(top))


def _unit_sum(beta: Array, norms: Array, grads: PyTree[Array]) -> PyTree[Array]:
    """sum_k beta[k] * g_k / ||g_k||; rows with a norm below the smallest normal are zero."""
    tiny = jnp.finfo(norms.dtype).tiny
    inv = jnp.where(norms >= tiny, 1 / jnp.where(norms >= tiny, norms, 1), 0)
    return jax.tree.map(
        lambda g: jnp.sum(_bcast(beta, g) * (g * _bcast(inv, g)), axis=0), grads
    )


@jax.jit
def unit_combination(
    beta: Float[Array, " tasks"],
    norms: Float[Array, " tasks"],
    grads: PyTree[Float[Array, "tasks ..."]],
    scale: Float[Array, ""] | None = None,
) -> PyTree[Float[Array, "..."]]:
    """scale * sum_k beta_k g_k / ||g_k|| (scale 1 if None): the combination on the unit
    directions, safe at both ends of the float range.

    Forming u_k = g_k / ||g_k|| first keeps 1e20-scale coefficients on 1e-20-scale rows
    finite in float32. The coefficients are then divided by a power of two close to their
    largest magnitude (exact), the sum is formed from terms of order one and multiplied
    back, by that power and then by `scale`: beta_k u_k alone is subnormal, and flushed to
    zero, for float32 rows a few times the smallest normal number although the sum is not.
    Where beta itself could underflow, pass it relative to `scale` (e.g. the largest task
    norm). Rows with a norm below the smallest normal number count as zero.

    Args:
        beta: (K,) coefficients on the unit directions.
        norms: (K,) the rows' norms.
        grads: the K-row leaves.
        scale: a scalar applied last, or None.

    Returns:
        The params-shaped combination.
    """
    power = power_below(jnp.max(jnp.abs(beta)))
    out = _unit_sum(beta / power, norms, grads)
    if scale is None:
        return jax.tree.map(lambda v: v * power, out)
    return jax.tree.map(lambda v: (v * power) * scale, out)


@jax.jit
def relative_norms(norms: Float[Array, " tasks"]) -> tuple[Array, Array]:
    """(largest norm, norms / largest norm); the ratios are 0 when every row is zero."""
    top = jnp.max(norms)
    safe = jnp.where(top > 0, top, jnp.ones_like(top))
    return top, jnp.where(top > 0, norms / safe, jnp.zeros_like(norms))
