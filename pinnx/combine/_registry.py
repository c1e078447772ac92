"""The one registry of combiner factories, and labels made from a factory's arguments.

Every public factory is decorated with `@register`. The decorator records it under its
function name and labels what it builds from the call, e.g. `cagrad(c=0.4)`: the arguments
given that differ from their defaults. The command line's combiner table is this registry;
`pinnx/__init__`, the shared test suite and the API pages are checked against it by
`tests/test_registry.py`.
"""

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from ._base import Combiner, Update, _name, concrete

__all__ = ["register", "registry", "call_label"]

_REGISTRY: dict[str, Callable[..., Combiner]] = {}
_NOT_IN_CLI: set[str] = set()


def registry(*, cli: bool = False) -> dict[str, Callable[..., Combiner]]:
    """Every registered combiner factory by name (sorted); `cli=True`: those the command
    line can build from a spec string (all but the ones taking pytrees or functions)."""
    return {n: f for n, f in sorted(_REGISTRY.items()) if not (cli and n in _NOT_IN_CLI)}


def register(fn: Callable[..., Combiner] | None = None, *, cli: bool = True):
    """Register a combiner factory and label its results from their arguments.

    Use as `@register` (or `@register(cli=False)` for a factory whose arguments cannot be
    written in a `--combiner` spec). The factory must return a pinnx `Combiner`.
    """
    if fn is None:
        return functools.partial(register, cli=cli)
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"a combiner named {name!r} is registered already")
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def factory(*args, **kwargs):
        tx = fn(*args, **kwargs)
        if not isinstance(tx, Combiner):
            raise TypeError(f"{name} must return a pinnx Combiner, got {type(tx).__name__}")
        label = call_label(name, signature, args, kwargs)
        return type(tx)(tx.init, Update(tx.update.fn, label, tx.update.parts))

    _REGISTRY[name] = factory
    if not cli:
        _NOT_IN_CLI.add(name)
    return factory


def call_label(name: str, signature: inspect.Signature, args: tuple, kwargs: dict) -> str:
    """`name(k=v, ...)` for the arguments given that differ from their defaults."""
    bound = signature.bind(*args, **kwargs)
    shown = []
    for key, value in bound.arguments.items():
        param = signature.parameters[key]
        if param.kind is param.VAR_KEYWORD:
            shown += [f"{k}={_show(v)}" for k, v in value.items()]
            continue
        if param.kind is param.VAR_POSITIONAL:
            shown += [_show(v) for v in value]
            continue
        if param.default is not param.empty and _same(value, param.default):
            continue
        shown.append(f"{key}={_show(value)}")
    return f"{name}({', '.join(shown)})"


def _same(value: Any, default: Any) -> bool:
    simple = (bool, int, float, str, type(None))
    if isinstance(value, simple) and isinstance(default, simple):
        return type(value) is type(default) and value == default
    return value is default


def _show(value: Any) -> str:
    if isinstance(value, Combiner):
        return value.label
    if isinstance(value, optax.GradientTransformation):
        base = _name(value)
        return base[len("optax transform (") : -1] if base.endswith(")") else base
    if isinstance(value, (jax.Array, np.ndarray)) or not concrete(value):
        if not concrete(value):
            return "<traced>"
        array = np.asarray(value)
        return repr(array.tolist()) if array.size <= 8 else f"<array {array.shape}>"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_show(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner}{',' if len(value) == 1 else ''})"
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    return repr(value)
