"""What the ATL-PINN multi-task networks share: dense stacks, output shapes, shared masks.

Every multi-task network maps ONE point x of shape (in_size,) to K task outputs: shape (K,)
for `out_size="scalar"`, else (K, out_size). Output k is the solution of task k (by the
convention of `pinnx.atl`, task 0 is the main task). Each network also says which of its
parameters are *shared*: `shared_mask()` returns a pytree of bools shaped like the network,
True on every array leaf that more than one task's output depends on (when K >= 2) and
False on the leaves only one task's output depends on (its tower or head). That is the
`where=` of `pinnx.cosine_gate`: the gate acts on the shared leaves, and task-specific leaves
keep every task's own gradient.

Pass the method itself, `cosine_gate(where=net.shared_mask)`: the gate calls it with the
parameters. (The mask is an equinox Module of the network's class, so it is callable, and
`cosine_gate` would call a mask passed as `where=net.shared_mask()` as if it were a
function; `params` is accepted and ignored for that reason.)

References:
    Yan, Chen, Wang, Zhou, Liu. "Auxiliary-Tasks Learning for Physics-Informed Neural
    Network-Based Partial Differential Equations Solving". 2023.
    https://arxiv.org/abs/2307.06167
"""

import abc
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._rwf import check_point  # noqa: F401  (re-exported for the multi-task nets)

__all__ = ["MultiTaskNet", "shared_mask"]

Layers = tuple[eqx.nn.Linear, ...]


def dense(sizes: Sequence[int], key: PRNGKeyArray, dtype: DTypeLike) -> Layers:
    """Linear layers sizes[0] -> sizes[1] -> ...: Glorot-normal weights, zero biases."""
    init = jax.nn.initializers.glorot_normal()
    keys = jax.random.split(key, max(len(sizes) - 1, 1))
    layers = []
    for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=False):
        layer = eqx.nn.Linear(n_in, n_out, key=k, dtype=dtype)
        layer = eqx.tree_at(lambda lin: (lin.weight, lin.bias), layer,
                            (init(k, (n_out, n_in), dtype), jnp.zeros((n_out,), dtype)))
        layers.append(layer)
    return tuple(layers)


def run(layers: Layers, h: Array, activation: Callable[[Array], Array], linear_last: bool
        ) -> Array:
    """Apply the layers; the activation follows every layer but, with linear_last, the last."""
    for i, layer in enumerate(layers):
        h = layer(h)
        if not (linear_last and i == len(layers) - 1):
            h = activation(h)
    return h


def resolve_dtype(dtype: DTypeLike | None) -> Any:
    return jnp.zeros(()).dtype if dtype is None else jnp.dtype(dtype)


def check_sizes(who: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")


def check_out_size(who: str, out_size: int | str) -> int:
    """Per-task output width m (1 for "scalar")."""
    if out_size == "scalar":
        return 1
    if not isinstance(out_size, int) or isinstance(out_size, bool) or out_size < 1:
        raise ValueError(f"{who}: out_size must be a positive int or 'scalar', got "
                         f"{out_size!r}")
    return out_size



def stack_outputs(outs: Sequence[Array], out_size: int | str) -> Array:
    """K per-task outputs of shape (m,) -> (K,) for "scalar", else (K, m)."""
    y = jnp.stack(outs)
    return y[:, 0] if out_size == "scalar" else y


def mask_where(module: eqx.Module, shared: Callable[[Any], Any]) -> PyTree[bool]:
    """A bool per array leaf of `module`: True inside the subtrees `shared(module)` selects."""
    mask = jax.tree.map(lambda _: False, module)
    return eqx.tree_at(shared, mask, replace_fn=lambda sub: jax.tree.map(lambda _: True, sub))


class MultiTaskNet(eqx.Module):
    """Base of the ATL-PINN multi-task networks: K task outputs from shared and task parts.

    Subclasses hold `in_size`, `out_size` and `num_tasks` (static) and implement
    `__call__(x) -> (K,) or (K, m)` on one point and `shared_mask()`.
    """

    in_size: eqx.AbstractVar[int]
    out_size: eqx.AbstractVar[int | str]
    num_tasks: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "tasks ..."]:
        """The K task outputs at one point x."""

    @abc.abstractmethod
    def shared_mask(self, params: Any = None) -> PyTree[bool]:
        """Bools shaped like the network: True on the leaves several tasks' outputs use.

        `params` is ignored: it lets `cosine_gate(where=net.shared_mask)` call the method.
        """


def shared_mask(model: Any) -> PyTree[bool]:
    """The shared-parameter mask of a multi-task network, for `cosine_gate(where=...)`.

    Args:
        model: a `MultiTaskNet` (anything with a `shared_mask()` method).

    Returns:
        A pytree of bools shaped like `model`: True on the leaves that more than one task's
        output depends on.

    Examples:
        >>> import jax, pinnx
        >>> net = pinnx.nn.HardSharing(2, "scalar", 2, width=8, depth=2, key=jax.random.key(0))
        >>> mask = pinnx.nn.shared_mask(net)
        >>> all(jax.tree.leaves(mask.trunk)), any(jax.tree.leaves(mask.heads))
        (True, False)

    References:
        Yan et al. 2023, https://arxiv.org/abs/2307.06167 (the gate acts on the shared
        parameters).
    """
    method = getattr(model, "shared_mask", None)
    if not callable(method):
        raise ValueError(f"{type(model).__name__} has no shared_mask() method: it is not a "
                         "multi-task network")
    return method()
