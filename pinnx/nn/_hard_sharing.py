"""Hard parameter sharing: one shared trunk, one head per task (ATL-PINN's "hard" mode)."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._multitask import (
    Layers,
    MultiTaskNet,
    check_out_size,
    check_point,
    check_sizes,
    dense,
    mask_where,
    resolve_dtype,
    run,
    stack_outputs,
)

__all__ = ["HardSharing"]


class HardSharing(MultiTaskNet):
    """K task outputs from one shared trunk and K task heads (hard parameter sharing).

    z = trunk(x) (`depth` tanh layers of `width`); task k's output is head_k(z), a tanh MLP
    with `head_depth` hidden layers of `width` and a linear output. Shared: the trunk.
    Task-specific: the heads.

    Args:
        in_size: input dimension d (2 for (x, t)).
        out_size: per-task output width m, or "scalar".
        num_tasks: K, the number of tasks (outputs).
        width: units per hidden layer (trunk and heads).
        depth: trunk layers (>= 1).
        head_depth: hidden layers of each head (>= 0; 0 gives a linear head).
        key: PRNG key.
        activation: elementwise nonlinearity.
        dtype: parameter dtype (default: JAX's default float type).

    Shapes: `model(x)` maps x (in_size,) to (K,) for "scalar", else (K, m).

    Examples:
        >>> import jax, optax, pinnx
        >>> net = pinnx.nn.HardSharing(2, "scalar", 2, width=16, depth=2,
        ...                            key=jax.random.key(0))
        >>> points = jax.random.uniform(jax.random.key(1), (5, 2))
        >>> jax.vmap(net)(points).shape    # (N, 2) -> (N, K): one column per task
        (5, 2)
        >>> opt = (pinnx.cosine_gate(main="main", where=net.shared_mask) | pinnx.sum()
        ...        | optax.adam(1e-3))

    References:
        Caruana. "Multitask Learning". Machine Learning 28, 1997. Yan, Chen, Wang, Zhou,
        Liu. "Auxiliary-Tasks Learning for Physics-Informed Neural Network-Based Partial
        Differential Equations Solving". 2023. https://arxiv.org/abs/2307.06167
    """

    trunk: Layers
    heads: tuple[Layers, ...]
    in_size: int = eqx.field(static=True)
    out_size: int | str = eqx.field(static=True)
    num_tasks: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int | str,
        num_tasks: int,
        width: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        head_depth: int = 1,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
    ):
        check_sizes("HardSharing", in_size=in_size, num_tasks=num_tasks, width=width,
                    depth=depth)
        if not isinstance(head_depth, int) or head_depth < 0:
            raise ValueError(f"HardSharing: head_depth must be an int >= 0, got {head_depth!r}")
        m = check_out_size("HardSharing", out_size)
        dtype = resolve_dtype(dtype)
        tkey, *hkeys = jax.random.split(key, num_tasks + 1)
        self.trunk = dense([in_size] + [width] * depth, tkey, dtype)
        self.heads = tuple(dense([width] * (head_depth + 1) + [m], k, dtype) for k in hkeys)
        self.in_size, self.out_size, self.num_tasks = in_size, out_size, num_tasks
        self.activation = activation

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "tasks ..."]:
        """The K task outputs at one point x: (K,) or (K, m)."""
        check_point("HardSharing", x, self.in_size)
        z = run(self.trunk, x, self.activation, linear_last=False)
        return stack_outputs([run(h, z, self.activation, linear_last=True)
                              for h in self.heads], self.out_size)

    def shared_mask(self, params: Any = None) -> PyTree[bool]:
        """True on the trunk, False on the heads."""
        return mask_where(self, lambda m: m.trunk)
