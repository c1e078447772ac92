"""`route`: leaves owned by one task take that task's row; the shared rest goes through a chain.

Some parameters belong to one loss only: the per-loss adapters of Kim & N'guessan (2026),
ModSync's per-objective thresholds (Kong et al. 2026). Their gradient must be that loss's
own row, untouched by the loss weighting and the aggregator, while the shared parameters
follow the combined gradient. `route(chain, own=...)` is that split as one aggregator.

An *ownership* assigns every leaf of the parameters an owner: a task name, a task row index,
or None (shared). It is given as a pytree prefix of the parameters (one owner standing for
a whole subtree) or as a function from the parameters to one. It must depend on the tree's
structure only, never on values: it is evaluated while tracing.
"""

from collections.abc import Callable
from typing import Any

import jax
import optax
from jaxtyping import PyTree

from ..tasks import num_tasks
from ._base import Aggregator, Chain, Combiner, Tasks, TaskTransform, resolve_task
from ._registry import register

__all__ = ["route", "owners"]

Owner = str | int | None
# a pytree prefix of the parameters with `Owner` leaves, or a function of them returning one
Ownership = PyTree | Callable[[PyTree], PyTree]


class _Tag:
    """Wraps one leaf's owner while broadcasting (a plain object, so it is a pytree leaf)."""

    __slots__ = ("owner",)

    def __init__(self, owner: Owner):
        self.owner = owner


def _check_owner(owner: Any) -> Owner:
    if owner is None or isinstance(owner, str):
        return owner
    if isinstance(owner, int) and not isinstance(owner, bool):
        return owner
    raise ValueError(
        "an ownership's leaves must be task names (str), task row indices (int) or None "
        f"(shared), got {owner!r} of type {type(owner).__name__}"
    )


def owners(own: Ownership, tree: PyTree, reference: PyTree | None = None) -> list[Owner]:
    """The owner of every leaf of `tree`, in `jax.tree.leaves` order.

    Args:
        own: a pytree prefix of `tree` whose leaves are task names, row indices or None
            (shared), or a function from `reference` (default: `tree`) to one.
        tree: the pytree whose leaves are assigned (parameters or per-task gradients).
        reference: what a callable `own` receives; must have `tree`'s structure.

    Returns:
        A list with one owner (str, int or None) per leaf of `tree`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.combine import owners
        >>> params = {"shared": jnp.zeros(3), "mine": (jnp.zeros(2), jnp.zeros(1))}
        >>> owners({"shared": None, "mine": "pde"}, params)   # key order: "mine" first
        ['pde', 'pde', None]
    """
    prefix = own(tree if reference is None else reference) if callable(own) else own
    try:
        tagged = jax.tree.map(
            lambda o, sub: jax.tree.map(lambda _: _Tag(_check_owner(o)), sub),
            prefix, tree, is_leaf=lambda x: x is None,
        )
    except (ValueError, TypeError) as err:
        if "ownership's leaves" in str(err):
            raise
        raise ValueError(
            "route(own=...) must be (or return) a pytree prefix of the parameters whose "
            f"leaves are task names, row indices or None: {err}"
        ) from None
    return [t.owner for t in jax.tree.leaves(tagged, is_leaf=lambda x: isinstance(x, _Tag))]


def _check_inner(inner: Any) -> None:
    if not isinstance(inner, Combiner) or isinstance(inner, TaskTransform):
        raise ValueError(
            "route(...) wraps a pinnx aggregator or a chain ending at one (e.g. pinnx.sum() or "
            f"pinnx.lra() | pinnx.sum()), got {inner!r}"
        )
    if isinstance(inner, Chain):
        if not inner.has_aggregator:
            raise ValueError(f"the chain {inner!r} given to route(...) has no aggregator")
        if not isinstance(inner.parts[-1], Aggregator):
            raise ValueError(
                f"the chain {inner!r} given to route(...) goes on after its aggregator: put "
                "plain optax transforms after route(...), so that they see every parameter"
            )


def _shared(tree: PyTree, tags: list[Owner]) -> PyTree:
    """`tree` with every owned leaf replaced by None."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([x if t is None else None for x, t in zip(leaves, tags,
                                                                       strict=True)])


@register(cli=False)
def route(aggregator: optax.GradientTransformation, *, own: Ownership) -> Aggregator:
    """Give each task's own leaves that task's row; aggregate the shared leaves with a chain.

    For a leaf owned by task k the output is row k of the per-task gradients, exactly (the
    other rows are ignored there). The shared leaves (owner None) are passed, with the owned
    leaves removed (set to None), through `aggregator`: task transforms and one aggregator,
    e.g. `pinnx.lra() | pinnx.sum()`. So a loss weighting or a conflict-aware aggregator acts
    on the shared parameters only, and never sees a task's private ones. The result is one
    params-shaped gradient: put plain optax transforms after `route(...)`.

    With the per-loss adapters of `pinnx.nn.PerLossAdapters`, loss k depends on adapter k
    and the trunk only, so the rows j != k vanish on adapter k's leaves by construction, and
    row k there is the gradient of loss k alone: adapter k learns from its own loss, the
    trunk from the chain's combined gradient. A task transform placed *before* `route` (as in
    `pinnx.lra() | route(pinnx.sum(), own=...)`) acts on every leaf, so the owned leaves then
    get their row after that transform (e.g. weighted).

    Args:
        aggregator: a pinnx aggregator, or a chain of task transforms ending at one.
        own: the ownership: a pytree prefix of the parameters with a task name (looked up
            in `losses=` at update), a row index or None (shared) at each leaf, or a function
            of the parameters (`params=` at update, else the gradients) returning one, e.g.
            `pinnx.nn.adapter_owners`. Evaluated on the structure only, while tracing.

    Shapes: K task rows in (leaves (K, ...)), one params-shaped gradient out. The state is
    `aggregator`'s state for the shared leaves.

    Examples:
        A head owned by the "bc" task and a shared trunk:

        >>> import jax.numpy as jnp, optax, pinnx
        >>> params = {"head": jnp.zeros(1), "trunk": jnp.zeros(2)}
        >>> grads = {"head": jnp.array([[3.0], [0.0]]),   # rows "bc", "pde" (sorted)
        ...          "trunk": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> agg = pinnx.route(pinnx.upgrad(), own={"head": "bc", "trunk": None})
        >>> state = agg.init(params, tasks=2)
        >>> update, _ = agg.update(grads, state, params, losses=losses)
        >>> update["head"].tolist(), [round(v, 3) for v in update["trunk"].tolist()]
        ([3.0], [0.25, 0.75])

        With `pinnx.nn.PerLossAdapters`, `own=pinnx.nn.adapter_owners` gives each adapter
        to its loss:

        >>> opt = pinnx.route(pinnx.lra() | pinnx.sum(), own=pinnx.nn.adapter_owners
        ...                   ) | optax.adam(1e-3)

    References:
        Kim, N'guessan. "Per-Loss Adapters for Gradient Conflict in Physics-Informed Neural
        Networks". 2026. https://arxiv.org/abs/2605.10136
    """
    _check_inner(aggregator)
    inner = optax.with_extra_args_support(aggregator)
    label = f"route({aggregator!r})"

    def init(params: PyTree, *, tasks: Tasks = None) -> Any:
        tags = owners(own, params)
        for t in tags:
            if isinstance(t, str) and tasks is not None and not isinstance(tasks, int) \
                    and t not in tuple(tasks):
                raise ValueError(f"{label}: task {t!r} is not among the tasks {tuple(tasks)}")
        shared = _shared(params, tags)
        if not jax.tree.leaves(shared):
            raise ValueError(f"{label}: every parameter is owned by a task; nothing is shared")
        return aggregator.init(shared, tasks=tasks)

    def update(updates, state, params=None, *, losses=None, **extra_args):
        k = num_tasks(updates)
        tags = owners(own, updates, params)
        rows = [None if t is None else resolve_task(t, k, losses, "route") for t in tags]
        shared = _shared(updates, tags)
        if not jax.tree.leaves(shared):
            raise ValueError(f"{label}: every parameter is owned by a task; nothing is shared")
        shared_params = None if params is None else _shared(params, owners(own, params))
        combined, state = inner.update(shared, state, shared_params, losses=losses,
                                       **extra_args)
        done = iter(jax.tree.leaves(combined))
        leaves, treedef = jax.tree.flatten(updates)
        out = [next(done) if r is None else g[r] for g, r in zip(leaves, rows, strict=True)]
        if next(done, None) is not None:
            raise AssertionError(f"{aggregator!r} returned more leaves than it was given")
        return treedef.unflatten(out), state

    return Aggregator(init, update)
