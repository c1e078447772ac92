"""Linear aggregators: `sum`, `mean`, `weighted`."""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from ..tasks import num_tasks, task_names
from ._base import Aggregator, concrete, stateless_init
from ._gram import weighted_sum
from ._registry import register

__all__ = ["sum", "mean", "weighted"]


def _linear(coefficients) -> Aggregator:
    def update(updates, state, params=None, **extra_args):
        del params
        k = num_tasks(updates)
        w = coefficients(k, updates, extra_args)
        return weighted_sum(w, updates), state

    return Aggregator(stateless_init, update)


@register
def sum() -> Aggregator:  # noqa: A001 - mirrors jnp.sum; used as pinnx.sum()
    """Sum of the task rows: d = sum_k g_k, the gradient of the summed loss.

    The name shadows Python's builtin `sum` inside `pinnx` (as `jnp.sum` does in
    `jax.numpy`): call it qualified, `pinnx.sum()`, and do not `from pinnx import *`.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows
        >>> agg = pinnx.sum()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> update["w"].tolist()
        [0.0, 1.0]
        >>> opt = pinnx.sum() | optax.adam(1e-3)   # vanilla PINN training
    """

    def ones(k, updates, extra):
        return jnp.ones((k,), _dtype(updates))

    return _linear(ones)


@register
def mean() -> Aggregator:
    """Mean of the task rows: d = (1/K) sum_k g_k.

    `pinnx.per_task(optax.scale_by_adam()) | pinnx.mean()` is MultiAdam (Yao et al., ICML
    2023).
    """

    def uniform(k, updates, extra):
        return jnp.full((k,), 1 / k, _dtype(updates))

    return _linear(uniform)


@register
def weighted(
    weights: Sequence[float | int] | Float[ArrayLike, " tasks"] | Mapping[str, float | int],
) -> Aggregator:
    """Fixed weighted sum of the task rows: d = sum_k w_k g_k.

    Args:
        weights: one weight per task, either in row order (a sequence or (K,) array; rows
            are sorted by task name, see `pinnx.task_grads`) or as a dict from task name to
            weight, which needs `losses=` at update to match names to rows. An array may
            be traced, so `optax.inject_hyperparams(pinnx.weighted)(weights=w)` works.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # rows "bc", "pde" (sorted)
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> agg = pinnx.weighted({"pde": 1.0, "bc": 10.0})
        >>> state = agg.init({"w": jnp.zeros(2)}, tasks=2)
        >>> update, _ = agg.update(grads, state, losses=losses)   # losses= names the rows
        >>> update["w"].tolist()
        [9.0, 1.0]
        >>> opt = pinnx.weighted({"pde": 1.0, "bc": 10.0, "ic": 10.0}) | optax.adam(1e-3)
    """
    if isinstance(weights, Mapping):
        by_name = dict(weights)
        if not by_name:
            raise ValueError("weighted() needs at least one weight")
        _check_finite(list(by_name.values()))

        def named(k, updates, extra):
            losses = extra.get("losses")
            if losses is None:
                raise ValueError(
                    "weighted() with a dict of weights needs losses= at update to match "
                    "task names to rows"
                )
            names = task_names(losses)
            if set(names) != set(by_name) or len(names) != k:
                raise ValueError(
                    f"weighted() has weights for tasks {tuple(sorted(by_name))} but the "
                    f"losses are {names} ({k} gradient rows)"
                )
            dtype = _dtype(updates)
            return jnp.asarray([by_name[n] for n in names], dtype)

        return _linear(named)

    w = jnp.asarray(weights)
    if w.ndim != 1 or w.shape[0] < 1:
        raise ValueError(f"weighted() needs a 1-D sequence of weights, got shape {w.shape}")
    if concrete(w):  # traced under inject_hyperparams: unchecked
        _check_finite(w)

    def fixed(k, updates, extra):
        if w.shape[0] != k:
            raise ValueError(f"weighted() has {w.shape[0]} weights but the gradients have {k} "
                             "task rows")
        return w

    return _linear(fixed)


def _check_finite(weights) -> None:
    if not np.all(np.isfinite(np.asarray(weights, np.float64))):
        raise ValueError(f"weighted() needs finite weights, got {list(np.ravel(weights))}")


def _dtype(tree: PyTree[Array]):
    return jnp.result_type(*jax.tree.leaves(tree))
