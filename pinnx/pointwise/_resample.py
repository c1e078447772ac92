"""Point weights across resampling: fixed point sets, weight transfer, optimizer state.

SA weights belong to points: weight i multiplies the residual at point i of its task's
batch entry. Three ways to keep that meaning when points change:

- **fixed point set** (the SA-PINN paper's setting): resample only the unweighted tasks.
  `freeze_tasks(sample, {"pde": points})` is a jittable `data(key)` for `pinnx.fit`'s
  resampling hook that keeps the weighted tasks' points fixed and draws the others afresh.
- **re-initialised**: `sa_transfer(..., how="reinit")` starts the new points' weights over.
- **interpolated**: `sa_transfer(..., how="nearest")` gives each new point the weight of
  its nearest old point (also how points added by RAR / RAR-D get their weights).

If `pinnx.fit` resamples a weighted task itself (`resample_every` with a `data(key)` that
draws new points for it), the weights stay attached by *index*: the new point i inherits
the weight of the old point i, a random re-assignment. Avoid that; use `freeze_tasks`.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ..combine import init_state
from ._sa import NET_LABEL, SA_LABEL, SAModel, count_points

__all__ = ["freeze_tasks", "sa_transfer", "nearest_transfer", "sa_refresh_state"]


def freeze_tasks(
    sample: Callable[[PRNGKeyArray], Mapping[str, Any]], fixed: Mapping[str, Any]
) -> Callable[[PRNGKeyArray], dict[str, Any]]:
    """A sampler that draws every task afresh except those in `fixed`, which stay as given.

    Args:
        sample: `sample(key) -> batch`, jittable (e.g. `problem.sample`).
        fixed: {task: points} kept fixed (e.g. the SA-weighted or RAR-grown tasks).

    Returns:
        `data(key) -> batch`, jittable, for `pinnx.fit(..., data, resample_every=...)`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from pinnx.pointwise import freeze_tasks
        >>> def sample(key):
        ...     return {"bc": jax.random.uniform(key, (2, 1)),
        ...             "pde": jax.random.uniform(key, (4, 1))}
        >>> fixed = jnp.full((4, 1), 0.5)
        >>> data = freeze_tasks(sample, {"pde": fixed})
        >>> bool(jnp.all(data(jax.random.key(0))["pde"] == fixed))   # bc drawn afresh
        True

        In training: `pinnx.fit(losses, model, opt, data, steps=1000, resample_every=100)`.
    """
    fixed = dict(fixed)

    def data(key):
        batch = dict(sample(key))
        missing = sorted(set(fixed) - set(batch))
        if missing:
            raise ValueError(f"freeze_tasks: the sampler draws no entries {missing}; it "
                             f"draws {sorted(batch)}")
        batch.update(fixed)
        return batch

    return data


def nearest_transfer(
    values: Float[Array, " n_old"],
    old_points: Float[Array, "n_old d"],
    new_points: Float[Array, "n_new d"],
    *,
    chunk: int = 1024,
) -> Float[Array, " n_new"]:
    """Each new point takes the value of its nearest old point (Euclidean distance).

    Brute force in chunks of `chunk` new points: O(n_old n_new d) time, O(chunk n_old)
    memory.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise._resample import nearest_transfer
        >>> print(nearest_transfer(jnp.array([1.0, 2.0]), jnp.array([[0.0], [1.0]]),
        ...                        jnp.array([[0.9], [0.2]])))
        [2. 1.]
    """
    old_points, new_points = jnp.asarray(old_points), jnp.asarray(new_points)
    if old_points.ndim != 2 or new_points.ndim != 2 or old_points.shape[1] != new_points.shape[1]:
        raise ValueError(f"expected (n_old, d) and (n_new, d) points, got {old_points.shape} "
                         f"and {new_points.shape}")
    if jnp.shape(values) != (old_points.shape[0],):
        raise ValueError(f"expected {old_points.shape[0]} values, one per old point, got "
                         f"shape {jnp.shape(values)}")

    def nearest(block):
        d2 = jnp.sum((block[:, None, :] - old_points[None, :, :]) ** 2, axis=-1)
        return jnp.argmin(d2, axis=1)

    n = new_points.shape[0]
    idx = jnp.concatenate([nearest(new_points[i:i + chunk]) for i in range(0, n, chunk)]) \
        if n else jnp.zeros((0,), jnp.int32)
    return jnp.asarray(values)[idx]


def _points(entry: Any) -> Array:
    return entry[0] if isinstance(entry, tuple | list) else entry


def sa_transfer(
    model: SAModel,
    old_batch: Mapping[str, Any],
    new_batch: Mapping[str, Any],
    *,
    how: str = "nearest",
    init: float = 1.0,
) -> SAModel:
    """Move an `SAModel`'s weights from the points of `old_batch` to those of `new_batch`.

    Args:
        model: the model whose weights belong to `old_batch`'s points.
        old_batch: {task: points}; only the weighted tasks are read.
        new_batch: {task: points}; only the weighted tasks are read.
        how: "nearest" (each new point takes the raw weight of the nearest old point),
            "reinit" (every weight set to `init`), or "keep" (unchanged, by index; needs the
            same number of points).
        init: the raw weight for "reinit".

    Returns:
        The model with weights shaped for `new_batch` (the network unchanged). If a weight's
        shape changed, refresh the optimizer state with `sa_refresh_state`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> from pinnx.pointwise import SAModel, sa_transfer
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> model = SAModel(net, {"pde": jnp.array([1.0, 2.0])})
        >>> old = {"pde": jnp.array([[0.0], [1.0]])}
        >>> new = {"pde": jnp.array([[0.9], [0.2], [0.6]])}
        >>> print(sa_transfer(model, old, new).weights["pde"])   # the nearest old weight
        [2. 1. 2.]

        After RAR-D grew the points: `model = sa_transfer(model, batch, new_batch)`, then
        `state = sa_refresh_state(opt, state, eqx.filter(model, eqx.is_inexact_array))`.
    """
    if how not in ("nearest", "reinit", "keep"):
        raise ValueError(f"how must be 'nearest', 'reinit' or 'keep', got {how!r}")
    new = {}
    for task, lam in model.weights.items():
        for name, b in (("old_batch", old_batch), ("new_batch", new_batch)):
            if task not in b:
                raise ValueError(f"{name} has no entry {task!r} for the SA weights")
        n_new = count_points(new_batch[task])
        if how == "keep":
            if n_new != lam.shape[0]:
                raise ValueError(f"how='keep' needs the same number of points: task {task!r} "
                                 f"has {lam.shape[0]} weights and {n_new} new points")
            new[task] = lam
        elif how == "reinit":
            new[task] = jnp.full((n_new,), init, lam.dtype)
        else:
            new[task] = nearest_transfer(lam, _points(old_batch[task]), _points(new_batch[task]))
    return SAModel(model.net, new)


def sa_refresh_state(
    optimizer: optax.GradientTransformation,
    state: optax.OptState,
    params: Any,
    *,
    tasks: Any = None,
) -> optax.OptState:
    """Optimizer state for parameters whose SA weights changed shape, network state kept.

    Initialises `optimizer` for `params` afresh, then copies back from `state` every part
    that does not depend on the weights' shapes: the "net" branch of each `sa_optimizer`
    partition (e.g. the network's Adam moments) and every other part of the chain. The SA
    weights' own optimizer state (e.g. their Adam moments) starts over.

    Args:
        optimizer: the optimizer (a pinnx chain holding an `sa_optimizer`, or the latter).
        state: its state for the old parameters.
        params: the new trainable parameters, `eqx.filter(model, eqx.is_inexact_array)`.
        tasks: the task names, for chains whose init needs them (`pinnx.fit` passes them).

    Returns:
        The state for `params`, usable as `pinnx.fit(..., opt_state=...)`.

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, optax, pinnx
        >>> from pinnx.pointwise import SAModel, sa_optimizer, sa_refresh_state, sa_transfer
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> model = SAModel(net, {"pde": jnp.ones(2)})
        >>> opt = pinnx.sum() | sa_optimizer(optax.adam(1e-3), weights_lr=1e-2)
        >>> state = pinnx.init_state(opt, eqx.filter(model, eqx.is_inexact_array),
        ...                          tasks=("pde",))
        >>> model = sa_transfer(model, {"pde": jnp.zeros((2, 1))}, {"pde": jnp.zeros((5, 1))})
        >>> state = sa_refresh_state(opt, state, eqx.filter(model, eqx.is_inexact_array),
        ...                          tasks=("pde",))
        >>> sa_branch = state[-1].inner_states["sa_weights"]   # its Adam moments start over
        >>> [leaf.shape for leaf in jax.tree.leaves(sa_branch) if leaf.ndim == 1]
        [(5,), (5,)]
    """
    fresh = init_state(optimizer, params, tasks=tasks)

    def is_partition(x):
        return isinstance(x, optax.transforms.PartitionState)

    def pick(new, old):
        if is_partition(new) and set(new.inner_states) == {NET_LABEL, SA_LABEL}:
            inner = dict(new.inner_states)
            inner[NET_LABEL] = old.inner_states[NET_LABEL]
            return type(new)(inner)
        return old

    try:
        return jax.tree.map(pick, fresh, state, is_leaf=is_partition)
    except ValueError as err:
        raise ValueError("sa_refresh_state: the state does not match this optimizer's "
                         f"structure apart from the SA weights ({err})") from err
