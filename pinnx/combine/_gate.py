"""The gradient-cosine gate of ATL-PINN."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from ..tasks import normalized_gram, num_tasks
from ._base import FloatLike, TaskTransform, check, resolve_task, stateless_init
from ._registry import register

__all__ = ["cosine_gate"]


def _is_bool_module(x: Any) -> bool:
    """An equinox Module whose leaves are all bools (a network-shaped mask) is callable
    but is a mask; a bound method of a network (also a Module) is a function."""
    return isinstance(x, eqx.Module) and all(
        isinstance(leaf, bool) or jnp.issubdtype(getattr(leaf, "dtype", float), jnp.bool_)
        for leaf in jax.tree.leaves(x))


def _mask_leaves(where: Any, updates: PyTree, params: PyTree) -> PyTree[bool]:
    """A bool per leaf of `updates` from a bool-pytree prefix or a callable."""
    if where is None:
        return jax.tree.map(lambda _: True, updates)
    is_function = callable(where) and not _is_bool_module(where)
    mask = where(params if params is not None else updates) if is_function else where
    try:
        return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask, updates)
    except ValueError as err:
        raise ValueError(
            "cosine_gate(where=...) must be (or return) a pytree of bools shaped like a "
            f"prefix of the parameters: {err}"
        ) from None


@register
def cosine_gate(
    main: str | int,
    threshold: FloatLike = 0.0,
    where: PyTree[bool] | Callable[[PyTree], PyTree[bool]] | None = None,
) -> TaskTransform:
    """Let an auxiliary task's gradient in only where it agrees with the main task.

    For every task k other than `main`, row k is kept if cos(g_main, g_k) > threshold and
    zeroed otherwise; the main row passes unchanged. With `where`, both the cosine and the
    gating use only the selected (shared) parameters, and every other leaf keeps all rows
    (a task's own tower learns from its own loss). A zero main gradient has cosine 0 with
    every row.

    Args:
        main: the main task, by name (looked up in `losses=` at update) or row index.
        threshold: keep a row when its cosine with the main row exceeds this (in [-1, 1)).
        where: which parameters are shared: a pytree of bools that is a prefix of the
            parameters, or a function from the parameters (`params=` at update, else the
            gradients) to one. None: all.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.0, 1.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> tx = pinnx.cosine_gate(main="pde")
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> rows, state = tx.update(grads, state, losses=losses)
        >>> rows["w"].tolist()   # "bc" disagrees with "pde": its row is zeroed
        [[0.0, 0.0], [2.0, -1.0]]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.cosine_gate(main="pde") | pinnx.pcgrad() | optax.adam(1e-3)

    References:
        Yan, Chen, Wang, Zhou, Liu. "Auxiliary-Tasks Learning for Physics-Informed Neural
        Network-Based Partial Differential Equations Solving". 2023.
        https://arxiv.org/abs/2307.06167 ; the gate follows Du, Czarnecki, Jayakumar,
        Farajtabar, Pascanu, Lakshminarayanan. "Adapting Auxiliary Losses Using Gradient
        Similarity". 2018. https://arxiv.org/abs/1812.02224
    """
    check(threshold, lambda v: (-1 <= v) & (v < 1),
          f"cosine_gate threshold must lie in [-1, 1), got {threshold}")

    def update(updates, state, params=None, *, losses=None, **extra_args):
        del extra_args
        k = num_tasks(updates)
        i = resolve_task(main, k, losses, "cosine_gate")
        mask = _mask_leaves(where, updates, params)
        shared = jax.tree.map(lambda m, g: g if m else None, mask, updates)
        if not jax.tree.leaves(shared):
            raise ValueError("cosine_gate(where=...) selects no parameters")
        _, cos = normalized_gram(shared)
        keep = (cos[i] > threshold) | (jnp.arange(k) == i)

        def gate(m, g):
            if not m:
                return g
            return g * jnp.reshape(keep, (-1,) + (1,) * (g.ndim - 1)).astype(g.dtype)

        return jax.tree.map(gate, mask, updates), state

    return TaskTransform(stateless_init, update)
