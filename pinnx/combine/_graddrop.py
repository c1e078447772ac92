"""GradDrop: gradient sign dropout (Chen et al., NeurIPS 2020)."""

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Key, PyTree

from ..tasks import num_tasks
from ._base import Aggregator, FloatLike, IntLike, concrete
from ._registry import register
from ._trimmed_mean import column_power

__all__ = ["graddrop", "graddrop_select", "GradDropState"]


class GradDropState(NamedTuple):
    """State of `graddrop`: the key of the next draw of uniforms."""

    key: Key[Array, ""]


def graddrop_select(
    grads: PyTree[Float[Array, "tasks ..."]],
    uniforms: PyTree[Float[Array, "..."]],
    leak: Float[ArrayLike, ""] | Float[ArrayLike, " tasks"] = 0.0,
) -> PyTree[Float[Array, "..."]]:
    """GradDrop given its uniform draws: K-row leaves -> params-shaped leaves.

    At every coordinate, with S = sum_k g_k and A = sum_k |g_k|, the positive sign purity
    is P = (1 + S / A) / 2 in [0, 1] (P = 1/2 where every row is zero). With the draw U:
    where P > U the positive entries are kept, where P < U the negative ones; the output
    is sum_k (l_k + (1 - l_k) M_k) g_k with M_k the keep mask of row k and l_k its leak.

    Floats: every coordinate is first divided by a power of two near its largest entry
    (exact), so P is computed to a few eps at any magnitude, and the output is within about
    K u sum_k |g_k| (u = eps / 2) of the exact sum of the kept entries, plus what is
    flushed: a result below the smallest normal number (tiny), entries below tiny times the
    coordinate's largest. It overflows to +-inf only where that sum exceeds the dtype's
    range (e.g. two float32 entries of 3e38 of one sign).

    Args:
        grads: per-task gradients, (K, ...) leaves.
        uniforms: params-shaped draws U in (0, 1) (one per coordinate).
        leak: l, a scalar or (K,): the fraction of each row that passes unmasked.

    Returns:
        The params-shaped aggregate.
    """
    leak = jnp.asarray(leak)

    def leaf(g, u):
        # in units of a power of two near each coordinate's largest entry (exact): S and A
        # of float32 entries near 1e38 overflow, near 1e-38 they flush to zero
        p = column_power(g)
        x = g / p[None]
        total, mass = jnp.sum(x, axis=0), jnp.sum(jnp.abs(x), axis=0)
        ratio = jnp.where(mass > 0, total / jnp.where(mass > 0, mass, 1), 0)
        purity = jnp.clip((1 + ratio) / 2, 0, 1)
        keep = ((purity > u)[None] & (x > 0)) | ((purity < u)[None] & (x < 0))
        lk = jnp.reshape(leak.astype(g.dtype), (-1,) + (1,) * (g.ndim - 1))
        return jnp.sum(jnp.where(keep, x, lk * x), axis=0) * p

    return jax.tree.map(leaf, grads, uniforms)


def _check_leak(leak) -> tuple[float, ...] | float:
    values = np.asarray(leak, np.float64)
    if values.ndim > 1 or values.size == 0:
        raise ValueError(f"graddrop(leak=...) needs a float or one float per task, got {leak!r}")
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"graddrop(leak=...) must lie in [0, 1], got {leak!r}")
    return float(values) if values.ndim == 0 else tuple(float(v) for v in values)


@register
def graddrop(*, leak: FloatLike | Sequence[float] = 0.0, seed: IntLike = 0) -> Aggregator:
    """GradDrop: at every coordinate keep only the task entries of one randomly drawn sign.

    At coordinate p, the positive sign purity P = (1 + sum_k g_k[p] / sum_k |g_k[p]|) / 2 is
    the fraction of the gradient mass that is positive. A draw U ~ Uniform(0, 1) per
    coordinate picks a sign: positive entries are kept where P > U, negative ones where
    P < U, the others are dropped, and d = sum of the kept entries. So every coordinate of d
    has the sign of all the entries kept there, and a coordinate where all rows agree keeps
    them all (U is drawn in the open interval, so P = 0 or 1 never ties with it). In
    expectation d is the plain sum (E d[p] = P S+ + (1 - P) S- = sum_k g_k[p]).

    A leak l_k in [0, 1] lets a fraction of row k through unmasked:
    d = sum_k (l_k + (1 - l_k) M_k) g_k. Leak 1 for every row is the sum.

    Not a Gram weighting (each coordinate picks its rows): one elementwise pass over the
    K x P gradients and P uniform draws per step. The draws come from the key in the
    state; `graddrop_select` is the same rule for given draws.

    Args:
        leak: l, one value for every task or one per task (in row order), in [0, 1].
        seed: seed of the key held in the state; each update splits it.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.graddrop(seed=0)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # 0: sign drawn; 1: rows agree
        [1.0, 1.0]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.graddrop(seed=0) | optax.adam(1e-3)

    References:
        Chen, Ngiam, Huang, Luong, Kretzschmar, Chai, Anguelov. "Just Pick a Sign:
        Optimizing Deep Multitask Models with Gradient Sign Dropout". NeurIPS 2020.
        https://arxiv.org/abs/2010.06808
    """
    leak = _check_leak(leak) if concrete(leak) else leak
    label = "graddrop"
    n_leak = np.shape(leak)[0] if np.ndim(leak) == 1 else None

    def init(params, *, tasks=None):
        del params, tasks
        return GradDropState(key=jax.random.key(seed))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        k = num_tasks(updates)
        if n_leak is not None and n_leak != k:
            raise ValueError(f"{label} has {n_leak} leak values but the gradients have "
                             f"{k} task rows")
        key, sub = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(updates)
        sizes = [math.prod(g.shape[1:]) for g in leaves]
        # one draw for all leaves (cheaper to compile), in the least precise leaf dtype so
        # that no draw rounds up to 1 when cast; in (0, 1): a coordinate where every row
        # has one sign (P = 0 or 1) keeps them all
        dtype = min((g.dtype for g in leaves), key=lambda d: jnp.finfo(d).bits)
        u = jax.random.uniform(sub, (sum(sizes),), dtype, jnp.finfo(dtype).tiny, 1)
        parts = jnp.split(u, list(itertools.accumulate(sizes))[:-1])
        draws = [p.reshape(g.shape[1:]).astype(g.dtype) for p, g in zip(parts, leaves,
                                                                        strict=True)]
        out = graddrop_select(updates, jax.tree.unflatten(treedef, draws), jnp.asarray(leak))
        return out, GradDropState(key=key)

    return Aggregator(init, update)
