"""The combinator algebra: task transforms, aggregators, and `|`.

Layer 3 of pinnx turns per-task gradients (leaves with a leading task axis K) into one
update. Its pieces are optax `GradientTransformationExtraArgs` of three kinds:

- a *task transform* maps K rows to K rows (`cosine_gate`, `per_task`, loss weights);
- an *aggregator* maps K rows to one params-shaped gradient (`sum`, `pcgrad`, ...);
- any plain optax transform (`optax.adam`, clipping, schedules) runs after the aggregator.

`a | b` composes them into a `Chain`, itself a `GradientTransformationExtraArgs`, after
checking the order: task transforms, then exactly one aggregator, then plain optax. A chain
that breaks the order raises `ValueError` when it is built. A chain may stop before its
aggregator (task transforms only); `pinnx.fit` refuses such a chain as an optimizer.

Every pinnx transform's `init` takes `params` and an optional keyword `tasks` (the number of
tasks, or their names). Transforms whose state has one entry per task (e.g. `per_task`) need
it; `pinnx.fit` passes it. The input convention (leading task axis, params-shaped output)
is that of `optax.experimental.aggregating`.
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from ..tasks import task_names

__all__ = [
    "Tasks",
    "Combiner",
    "TaskTransform",
    "Aggregator",
    "Chain",
    "as_aggregator",
    "as_task_transform",
    "count_tasks",
    "weighted_sum",
    "unit_sum",
]

Tasks = int | Sequence[str] | None


class Combiner(optax.GradientTransformationExtraArgs):
    """A pinnx transform: an optax transform that knows its kind and composes with `|`.

    `init(params, *, tasks=None)`; `update(updates, state, params=None, **extra_args)`.
    """

    kind: ClassVar[str] = ""

    @property
    def label(self) -> str:
        return self.__dict__.get("_label", self.kind)

    def labelled(self, label: str):
        self.__dict__["_label"] = label
        return self

    def __repr__(self) -> str:
        return self.label

    def __or__(self, other: Any) -> "Chain":
        if not isinstance(other, optax.GradientTransformation):
            return NotImplemented
        return Chain.of(self, other)

    def __ror__(self, other: Any) -> "Chain":
        if not isinstance(other, optax.GradientTransformation):
            return NotImplemented
        return Chain.of(other, self)


class TaskTransform(Combiner):
    """K task rows in, K task rows out."""

    kind: ClassVar[str] = "task transform"


class Aggregator(Combiner):
    """K task rows in, one params-shaped gradient out."""

    kind: ClassVar[str] = "aggregator"


def _name(tx: optax.GradientTransformation) -> str:
    if isinstance(tx, Combiner):
        return tx.label
    qualname = getattr(tx.update, "__qualname__", "")
    base = qualname.split(".<locals>")[0] if ".<locals>" in qualname else ""
    return f"optax transform ({base})" if base else "optax transform"


def _role(tx: optax.GradientTransformation) -> str:
    if isinstance(tx, Chain):
        raise AssertionError("chains are flattened before their roles are read")
    if isinstance(tx, Aggregator):
        return "aggregator"
    if isinstance(tx, TaskTransform):
        return "task"
    return "plain"


def _check_order(parts: Sequence[optax.GradientTransformation]) -> None:
    """Raise ValueError unless parts read: task transforms, one aggregator, plain optax."""
    aggregator = None
    for i, part in enumerate(parts):
        role = _role(part)
        if role == "aggregator":
            if aggregator is not None:
                raise ValueError(
                    f"a chain holds exactly one aggregator, got two: {_name(aggregator)} "
                    f"and {_name(part)}"
                )
            aggregator = part
        elif role == "task" and aggregator is not None:
            raise ValueError(
                f"task transform {_name(part)} comes after the aggregator "
                f"{_name(aggregator)}: it needs K task rows but would receive one combined "
                "gradient; move it before the aggregator"
            )
        elif role == "plain" and aggregator is None:
            later = [p for p in parts[i + 1 :] if _role(p) == "aggregator"]
            if later:
                raise ValueError(
                    f"{_name(part)} comes before the aggregator {_name(later[0])}: a plain "
                    "optax transform expects one params-shaped gradient but would receive "
                    "the K stacked task rows. Put it after the aggregator, or apply it to "
                    "every task row with pinnx.per_task(...)"
                )
            before = " | ".join(_name(p) for p in parts[:i]) or "nothing"
            raise ValueError(
                f"no aggregator before {_name(part)}: a plain optax transform needs one "
                f"combined gradient, but the chain before it ({before}) passes K task rows. "
                "Add an aggregator such as pinnx.sum(), pinnx.mean() or pinnx.pcgrad()"
            )


def _init_part(part: optax.GradientTransformation, params: PyTree, tasks: Tasks) -> Any:
    if isinstance(part, Combiner):
        return part.init(params, tasks=tasks)
    return part.init(params)


class Chain(Combiner):
    """Transforms applied in sequence, built with `a | b`; an optax transform itself.

    Its state is the tuple of its parts' states, as in `optax.chain`.
    """

    kind: ClassVar[str] = "chain"

    @property
    def parts(self) -> tuple[optax.GradientTransformation, ...]:
        return self.__dict__["_parts"]

    @property
    def has_aggregator(self) -> bool:
        return any(isinstance(p, Aggregator) for p in self.parts)

    @property
    def label(self) -> str:
        return " | ".join(_name(p) for p in self.parts)

    @classmethod
    def of(cls, *transforms: optax.GradientTransformation) -> "Chain":
        parts: list[optax.GradientTransformation] = []
        for tx in transforms:
            parts.extend(tx.parts if isinstance(tx, Chain) else (tx,))
        _check_order(parts)
        wrapped = [optax.with_extra_args_support(p) for p in parts]

        def init(params: PyTree, *, tasks: Tasks = None) -> tuple:
            return tuple(_init_part(p, params, tasks) for p in parts)

        def update(updates, state, params=None, **extra_args):
            if not isinstance(state, tuple) or len(state) != len(parts):
                raise ValueError(
                    f"this chain has {len(parts)} parts but the state has "
                    f"{len(state) if isinstance(state, tuple) else type(state).__name__}"
                    " entries: was it initialised by another optimizer?"
                )
            new_state = []
            for part, s in zip(wrapped, state, strict=True):
                updates, s = part.update(updates, s, params, **extra_args)
                new_state.append(s)
            return updates, tuple(new_state)

        chain = cls(init, update)
        chain.__dict__["_parts"] = tuple(parts)
        return chain


def _wrap(cls, tx: optax.GradientTransformation, label: str | None) -> Combiner:
    inner = optax.with_extra_args_support(tx)

    def init(params: PyTree, *, tasks: Tasks = None) -> Any:
        del tasks
        return inner.init(params)

    out = cls(init, inner.update)
    return out.labelled(label or _name(tx))


def as_aggregator(tx: optax.GradientTransformation, label: str | None = None) -> Aggregator:
    """Mark any optax transform as an aggregator (K task rows -> one gradient).

    Use it for your own aggregators, or to keep the kind of a pinnx aggregator wrapped by
    an optax utility, e.g.
    `pinnx.as_aggregator(optax.inject_hyperparams(pinnx.weighted)(weights=w)) | optax.adam(1e-3)`.
    """
    return _wrap(Aggregator, tx, label)


def as_task_transform(
    tx: optax.GradientTransformation, label: str | None = None
) -> TaskTransform:
    """Mark any optax transform as a task transform (K task rows -> K task rows)."""
    return _wrap(TaskTransform, tx, label)


def count_tasks(tasks: Tasks, who: str) -> int:
    """The number of tasks from an int or a sequence of names, for transforms that need it."""
    if tasks is None:
        raise ValueError(
            f"{who} keeps one state entry per task, so its init needs the number of tasks: "
            "opt.init(params, tasks=K) or tasks=(names...) (pinnx.fit passes it for you)"
        )
    if isinstance(tasks, int):
        k = tasks
    elif isinstance(tasks, str):
        raise ValueError(f"tasks must be an int or a sequence of names, got the string {tasks!r}")
    else:
        k = len(tuple(tasks))
    if k < 1:
        raise ValueError(f"{who}: the number of tasks must be at least 1, got {k}")
    return k


def resolve_task(task: str | int, k: int, losses: Any, who: str) -> int:
    """Row index of a task given by name (looked up in the `losses=` dict) or by index."""
    if isinstance(task, str):
        if losses is None:
            raise ValueError(
                f"{who} names task {task!r}, so its update needs the loss dictionary: "
                "opt.update(grads, state, params, losses=losses)"
            )
        names = task_names(losses)
        if len(names) != k:
            raise ValueError(
                f"{who}: losses= has {len(names)} tasks {names} but the gradients have {k} "
                "task rows"
            )
        if task not in names:
            raise ValueError(f"{who}: task {task!r} is not among the tasks {names}")
        return names.index(task)
    if not -k <= task < k:
        raise ValueError(f"{who}: task index {task} is out of range for {k} task rows")
    return task % k


def _bcast(v: Array, leaf: Array) -> Array:
    return jnp.reshape(v.astype(leaf.dtype), (-1,) + (1,) * (leaf.ndim - 1))


def weighted_sum(weights: Array, grads: PyTree[Array]) -> PyTree[Array]:
    """sum_k weights[k] * row k, leaf by leaf: (K,) and K-row leaves -> params-shaped."""
    return jax.tree.map(lambda g: jnp.sum(_bcast(weights, g) * g, axis=0), grads)


def unit_sum(beta: Array, norms: Array, grads: PyTree[Array]) -> PyTree[Array]:
    """sum_k beta[k] * g_k / ||g_k||: a combination in the unit-direction basis.

    Gram-based methods produce coefficients on the unit vectors u_k = g_k / ||g_k||; forming
    u_k first keeps 1e20-scale coefficients on 1e-20-scale rows finite in float32. Rows with
    a norm below the dtype's smallest normal number count as zero.
    """
    tiny = jnp.finfo(norms.dtype).tiny
    inv = jnp.where(norms >= tiny, 1 / jnp.where(norms >= tiny, norms, 1), 0)
    return jax.tree.map(
        lambda g: jnp.sum(_bcast(beta, g) * (g * _bcast(inv, g)), axis=0), grads
    )


def power_below(top: Float[Array, "..."]) -> Float[Array, "..."]:
    """A power of two p with p <= top < 2 p (top < 4 p in the top binade, so that 1 / p is
    normal too); 1 where top is below the smallest normal number. Dividing by p is exact:
    the scale-safe sums of `_trimmed_mean`, `_random` and `_qp` work in these units."""
    _, e = jnp.frexp(top)  # 2^(e-1) <= top < 2^e
    fi = jnp.finfo(top.dtype)
    e = jnp.minimum(e - 1, fi.maxexp - 2)
    return jnp.where(top >= fi.tiny, jnp.ldexp(jnp.ones_like(top), e), jnp.ones_like(top))


def stateless_init(params: PyTree, *, tasks: Tasks = None) -> optax.EmptyState:
    del params, tasks
    return optax.EmptyState()

