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
it; `pinnx.fit` passes it, and `init_state` passes it to pinnx transforms only. The input
convention (leading task axis, params-shaped output) is that of
`optax.experimental.aggregating`.

A transform's kind is its class; its label (for `repr` and error messages) and, for a chain,
its parts live in a frozen `Update` that is the transform's `update` field. Both therefore
survive `_replace`, `_make` and a pytree round trip, as optax's own fields do.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PyTree

from ..tasks import task_names

__all__ = [
    "Tasks",
    "FloatLike",
    "IntLike",
    "Update",
    "Combiner",
    "TaskTransform",
    "Aggregator",
    "Chain",
    "as_aggregator",
    "as_task_transform",
    "init_state",
    "count_tasks",
    "resolve_task",
    "stateless_init",
    "concrete",
    "check",
    "static",
]

Tasks = int | Sequence[str] | None
# a hyperparameter that may arrive traced (optax.inject_hyperparams, a vmap over members)
FloatLike = float | Float[Array, ""]
IntLike = int | Int[Array, ""]


@dataclasses.dataclass(frozen=True, eq=False)
class Update:
    """A pinnx transform's update function with its label (and a chain's parts).

    Calling it calls `fn`. It is the `update` field of every `Combiner`, so the label and
    the parts are ordinary data of the NamedTuple: `_replace(init=...)`, `_make` and
    `jax.tree` round trips keep them.

    Attributes:
        fn: `fn(updates, state, params=None, **extra_args) -> (updates, state)`.
        label: what `repr` shows, e.g. `"cagrad(c=0.4)"`.
        parts: a chain's transforms, in order; empty for any other transform.
    """

    fn: Callable[..., tuple[Any, Any]]
    label: str
    parts: tuple[optax.GradientTransformation, ...] = ()

    def __call__(self, updates, state, params=None, **extra_args):
        return self.fn(updates, state, params, **extra_args)


class Combiner(optax.GradientTransformationExtraArgs):
    """A pinnx transform: an optax transform that knows its kind and composes with `|`.

    `init(params, *, tasks=None)`; `update(updates, state, params=None, **extra_args)`.
    Build one with `Aggregator(init, update_fn, label)` or `TaskTransform(...)`: the third
    argument wraps `update_fn` in an `Update` carrying the label.
    """

    kind: ClassVar[str] = ""

    def __new__(cls, init, update, label: str | None = None):
        if not isinstance(update, Update) or label is not None:
            fn = update.fn if isinstance(update, Update) else update
            parts = update.parts if isinstance(update, Update) else ()
            update = Update(fn, label or cls.kind, parts)
        return super().__new__(cls, init, update)

    @property
    def label(self) -> str:
        return getattr(self.update, "label", self.kind)

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
                "Add an aggregator such as pinnx.sum(), pinnx.mean() or pinnx.pcgrad() (an "
                "aggregator wrapped by an optax utility, e.g. optax.inject_hyperparams, "
                "keeps its kind with pinnx.inject_hyperparams or pinnx.as_aggregator)"
            )


def init_state(optimizer: optax.GradientTransformation, params: PyTree, *,
               tasks: Tasks = None) -> optax.OptState:
    """The initial state of any optimizer: pinnx transforms get `tasks=`, optax ones do not.

    Args:
        optimizer: a pinnx transform or chain, or any optax transform.
        params: the parameters.
        tasks: the number of tasks or their names (needed by transforms with one state entry
            per task; ignored by plain optax transforms).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> state = pinnx.init_state(pinnx.per_task(optax.scale_by_adam()) | pinnx.mean(),
        ...                          {"w": jnp.zeros(3)}, tasks=("bc", "pde"))
    """
    if isinstance(optimizer, Combiner):
        return optimizer.init(params, tasks=tasks)
    return optimizer.init(params)


class Chain(Combiner):
    """Transforms applied in sequence, built with `a | b`; an optax transform itself.

    Its state is the tuple of its parts' states, as in `optax.chain`; its parts are
    `chain.parts` (nested chains are flattened).
    """

    kind: ClassVar[str] = "chain"

    @property
    def parts(self) -> tuple[optax.GradientTransformation, ...]:
        return getattr(self.update, "parts", ())

    @property
    def has_aggregator(self) -> bool:
        return any(isinstance(p, Aggregator) for p in self.parts)

    @classmethod
    def of(cls, *transforms: optax.GradientTransformation) -> "Chain":
        """The chain of `transforms` (chains among them are flattened), order checked."""
        parts: list[optax.GradientTransformation] = []
        for tx in transforms:
            parts.extend(tx.parts if isinstance(tx, Chain) else (tx,))
        _check_order(parts)
        wrapped = [optax.with_extra_args_support(p) for p in parts]

        def init(params: PyTree, *, tasks: Tasks = None) -> tuple:
            return tuple(init_state(p, params, tasks=tasks) for p in parts)

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

        label = " | ".join(_name(p) for p in parts)
        return cls(init, Update(update, label, tuple(parts)))


def _wrap(cls, tx: optax.GradientTransformation, label: str | None) -> Combiner:
    inner = optax.with_extra_args_support(tx)

    def init(params: PyTree, *, tasks: Tasks = None) -> Any:
        del tasks
        return inner.init(params)

    return cls(init, inner.update, label or _name(tx))


def as_aggregator(tx: optax.GradientTransformation, label: str | None = None) -> Aggregator:
    """Mark any optax transform as an aggregator (K task rows -> one gradient).

    Use it for your own aggregators, or to keep the kind of a pinnx aggregator wrapped by
    an optax utility (`pinnx.inject_hyperparams` does this for you).

    Examples:
        >>> import optax, pinnx
        >>> tx = optax.inject_hyperparams(pinnx.weighted)(weights=[1.0, 10.0])
        >>> opt = pinnx.as_aggregator(tx) | optax.adam(1e-3)
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


def stateless_init(params: PyTree, *, tasks: Tasks = None) -> optax.EmptyState:
    del params, tasks
    return optax.EmptyState()


def concrete(value: Any) -> bool:
    """Whether a hyperparameter's value is known now (not traced): only then can a factory
    check it in Python. Under `optax.inject_hyperparams` or a vmap over hyperparameters
    (an ensemble) numeric arguments arrive as tracers."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(value))


def check(value: Any, ok: Callable[[Any], Any], message: str) -> None:
    """Raise `ValueError(message)` if a concrete `value` fails `ok`; accept a traced one.

    `ok` receives the value as a NumPy array (or the value itself when it is not numeric)
    and must return a bool (or a bool array: every entry must hold).
    """
    if value is None or not concrete(value):
        return
    try:
        arg = np.asarray(value) if not isinstance(value, (bool, str)) else value
    except (TypeError, ValueError):
        arg = value
    if not np.all(ok(arg)):
        raise ValueError(message)


def static(value: Any, name: str, who: str) -> Any:
    """A setting of the compiled program (an iteration cap, a tolerance), as a Python number:
    a traced value is refused with the advice to keep it static; a concrete array (as
    `optax.inject_hyperparams` passes outside jit) is converted."""
    if not concrete(value):
        raise ValueError(
            f"{who}: {name} is a setting of the compiled program and cannot be traced; keep "
            f"it static (optax.inject_hyperparams(..., static_args=({name!r},)), or "
            "pinnx.inject_hyperparams, which keeps every int and None static)"
        )
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return np.asarray(value).item()
