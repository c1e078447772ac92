"""`inject_hyperparams`: optax's hyperparameter injection for pinnx transforms."""

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import optax
from jaxtyping import PyTree

from ._base import Aggregator, Chain, Combiner, Tasks, TaskTransform, Update, init_state

__all__ = ["inject_hyperparams"]


def inject_hyperparams(
    factory: Callable[..., Combiner],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., Combiner]:
    """`optax.inject_hyperparams` for a pinnx factory: the result keeps its kind and `tasks=`.

    `optax.inject_hyperparams(pinnx.cagrad)(c=0.5)` works, but its result is a plain optax
    transform: `|` no longer knows it is an aggregator, and its `init` cannot pass the
    number of tasks that per-task states need. This wrapper builds the same injected
    transform and returns it as an `Aggregator` or `TaskTransform` (the kind of what
    `factory` builds; a chain counts as an aggregator if it holds one), whose
    `init(params, tasks=...)` passes the tasks on. Its state is optax's
    `InjectStatefulHyperparamsState`: change `state.hyperparams["c"]` between steps, or
    pass a schedule, as with optax.

    Integer arguments (iteration caps, counts, periods, seeds) and None stay static, as do
    the names in `static_args`: optax would inject every number, and a traced iteration
    cap or count cannot set the size of a compiled program. Float arguments are injected.

    Args:
        factory: a pinnx combiner factory, e.g. `pinnx.cagrad`.
        static_args: names of further arguments to keep static.
        hyperparam_dtype: as in `optax.inject_hyperparams`.

    Returns:
        A function with `factory`'s arguments returning the injected transform.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> opt = pinnx.inject_hyperparams(pinnx.cagrad)(c=0.5) | optax.adam(1e-3)
        >>> state = opt.init({"w": jnp.zeros(2)}, tasks=2)
        >>> float(state[0].hyperparams["c"])
        0.5
    """
    static_args = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def build(*args, **kwargs) -> Combiner:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        static = static_args | {
            name for name, value in bound.arguments.items()
            if value is None or (isinstance(value, int) and not isinstance(value, bool))
        }
        probe = factory(*args, **kwargs)  # checks the arguments; gives the kind and label
        if not isinstance(probe, Combiner):
            raise ValueError(
                f"pinnx.inject_hyperparams takes a pinnx factory, got {factory!r} (which "
                "builds a plain optax transform: use optax.inject_hyperparams)"
            )
        kind = _kind(probe)

        def injected(tasks: Tasks) -> optax.GradientTransformationExtraArgs:
            @functools.wraps(factory)
            def bound_to_tasks(*a, **kw):
                tx = factory(*a, **kw)
                return optax.GradientTransformationExtraArgs(
                    lambda params: init_state(tx, params, tasks=tasks), tx.update)

            return optax.inject_hyperparams(bound_to_tasks, static, hyperparam_dtype)(
                *args, **kwargs)

        def init(params: PyTree, *, tasks: Tasks = None):
            return injected(tasks).init(params)

        update = injected(None).update
        return kind(init, Update(update, f"inject_hyperparams({probe.label})"))

    return build


def _kind(tx: Combiner) -> type:
    if isinstance(tx, Chain):
        return Aggregator if tx.has_aggregator else TaskTransform
    return type(tx)
