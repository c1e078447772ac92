"""Multi-gate mixture of experts (ATL-PINN's "MMoE" mode)."""

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

__all__ = ["MMoE"]


class MMoE(MultiTaskNet):
    """K task outputs from shared experts mixed by one softmax gate per task (MMoE).

    E shared experts f_e(x) (tanh MLPs of `depth` layers of `width`); task k's gate is
    g_k(x) = softmax(W_k x + b_k) over the E experts (one linear layer of the input, as in
    Ma et al. 2018); task k's output is tower_k(sum_e g_k(x)_e f_e(x)), a tanh MLP with
    `tower_depth` hidden layers and a linear output. Shared: the experts. Task-specific:
    gate k and tower k.

    Args:
        in_size: input dimension d.
        out_size: per-task output width m, or "scalar".
        num_tasks: K.
        num_experts: E (>= 1).
        width: units per layer of experts and towers.
        depth: layers of each expert (>= 1).
        key: PRNG key.
        tower_depth: hidden layers of each tower (>= 0).
        activation: elementwise nonlinearity.
        dtype: parameter dtype.

    Shapes: `model(x)` maps x (in_size,) to (K,) for "scalar", else (K, m);
    `model.gates(x)` gives the (K, E) gate weights (every row sums to one).

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> net = pinnx.nn.MMoE(2, "scalar", 2, num_experts=3, width=16, depth=2,
        ...                     key=jax.random.key(0))
        >>> x = jnp.array([0.5, 0.1])
        >>> net(x).shape, net.gates(x).shape   # K = 2 tasks, E = 3 experts
        ((2,), (2, 3))
        >>> print(net.gates(x).sum(axis=1).round(6))   # each task's gate sums to one
        [1. 1.]

    References:
        Ma, Zhao, Yi, Chen, Hong, Chi. "Modeling Task Relationships in Multi-task Learning
        with Multi-gate Mixture-of-Experts". KDD 2018.
        https://doi.org/10.1145/3219819.3220007 ; Yan, Chen, Wang, Zhou, Liu.
        "Auxiliary-Tasks Learning for Physics-Informed Neural Network-Based Partial
        Differential Equations Solving". 2023. https://arxiv.org/abs/2307.06167
    """

    experts: tuple[Layers, ...]
    gate_layers: tuple[eqx.nn.Linear, ...]
    towers: tuple[Layers, ...]
    in_size: int = eqx.field(static=True)
    out_size: int | str = eqx.field(static=True)
    num_tasks: int = eqx.field(static=True)
    num_experts: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int | str,
        num_tasks: int,
        num_experts: int,
        width: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        tower_depth: int = 1,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
    ):
        check_sizes("MMoE", in_size=in_size, num_tasks=num_tasks, num_experts=num_experts,
                    width=width, depth=depth)
        if not isinstance(tower_depth, int) or tower_depth < 0:
            raise ValueError(f"MMoE: tower_depth must be an int >= 0, got {tower_depth!r}")
        m = check_out_size("MMoE", out_size)
        dtype = resolve_dtype(dtype)
        keys = jax.random.split(key, num_experts + 2 * num_tasks)
        self.experts = tuple(dense([in_size] + [width] * depth, k, dtype)
                             for k in keys[:num_experts])
        self.towers = tuple(dense([width] * (tower_depth + 1) + [m], k, dtype)
                            for k in keys[num_experts:num_experts + num_tasks])
        # one leaf per task's gate, so that a gate's gradient is visibly that task's own
        self.gate_layers = tuple(dense([in_size, num_experts], k, dtype)[0]
                                 for k in keys[num_experts + num_tasks:])
        self.in_size, self.out_size, self.num_tasks = in_size, out_size, num_tasks
        self.num_experts = num_experts
        self.activation = activation

    def gates(self, x: Float[Array, " in_size"]) -> Float[Array, "tasks experts"]:
        """Gate weights at one point: (K, E), non-negative, every row summing to one."""
        check_point("MMoE", x, self.in_size)
        return jnp.stack([jax.nn.softmax(g(x)) for g in self.gate_layers])

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "tasks ..."]:
        """The K task outputs at one point x: (K,) or (K, m)."""
        check_point("MMoE", x, self.in_size)
        f = jnp.stack([run(e, x, self.activation, linear_last=False) for e in self.experts])
        mixed = self.gates(x) @ f  # (K, width)
        return stack_outputs([run(t, mixed[k], self.activation, linear_last=True)
                              for k, t in enumerate(self.towers)], self.out_size)

    def shared_mask(self, params: Any = None) -> PyTree[bool]:
        """True on the experts, False on the gates and towers."""
        return mask_where(self, lambda m: m.experts)
