"""Progressive layered extraction (ATL-PINN's "PLE" mode)."""

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

__all__ = ["PLE"]


class _Level(eqx.Module):
    """One extraction level: shared experts, task experts, task gates, a shared gate."""

    shared_experts: tuple[Layers, ...]
    task_experts: tuple[tuple[Layers, ...], ...]
    task_gates: tuple[eqx.nn.Linear, ...]
    shared_gate: eqx.nn.Linear | None


class PLE(MultiTaskNet):
    """K task outputs from stacked extraction levels of shared and task experts (PLE).

    Every level l holds `num_shared` shared experts and `num_task_experts` experts per task
    (tanh MLPs of `depth` layers of `width`). Level l reads one representation per task h_k
    and a shared one s (all equal to x at level 0). Task k's gate, softmax(W x' + b) of its
    own input x' = h_k, mixes task k's experts (fed h_k) and the shared experts (fed s) into
    the next h_k; below the last level a shared gate, fed s, mixes every expert of the level
    into the next s. Task k's output is tower_k(h_k) after the last level, a tanh MLP with
    `tower_depth` hidden layers and a linear output. `levels=1` is the customized gate
    control (CGC) of the same paper.

    Shared (for K >= 2), i.e. what more than one output depends on: the shared experts and
    shared gates of every level, the task experts of every level but the last, and the task
    gates of every level but the last two. Task-specific: the rest and the towers.

    Args:
        in_size: input dimension d.
        out_size: per-task output width m, or "scalar".
        num_tasks: K.
        width: units per layer of experts and towers.
        depth: layers of each expert (>= 1).
        key: PRNG key.
        levels: number of extraction levels (>= 1).
        num_shared: shared experts per level (>= 1).
        num_task_experts: experts per task and level (>= 1).
        tower_depth: hidden layers of each tower (>= 0).
        activation: elementwise nonlinearity.
        dtype: parameter dtype.

    Shapes: `model(x)` maps x (in_size,) to (K,) for "scalar", else (K, m); `model.gates(x)`
    gives, per level, the task gates (K, num_task_experts + num_shared) and the shared gate
    (K * num_task_experts + num_shared,) or None at the last level; rows sum to one.

    Examples:
        >>> import jax, pinnx
        >>> net = pinnx.nn.PLE(2, "scalar", 2, width=16, depth=2, levels=2,
        ...                    key=jax.random.key(0))
        >>> points = jax.random.uniform(jax.random.key(1), (5, 2))
        >>> jax.vmap(net)(points).shape    # (N, 2) -> (N, K)
        (5, 2)

    References:
        Tang, Liu, Zhao, Gong. "Progressive Layered Extraction (PLE): A Novel Multi-Task
        Learning (MTL) Model for Personalized Recommendations". RecSys 2020.
        https://doi.org/10.1145/3383313.3412236 ; Yan, Chen, Wang, Zhou, Liu.
        "Auxiliary-Tasks Learning for Physics-Informed Neural Network-Based Partial
        Differential Equations Solving". 2023. https://arxiv.org/abs/2307.06167
    """

    levels: tuple[_Level, ...]
    towers: tuple[Layers, ...]
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
        levels: int = 2,
        num_shared: int = 1,
        num_task_experts: int = 1,
        tower_depth: int = 1,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
    ):
        check_sizes("PLE", in_size=in_size, num_tasks=num_tasks, width=width, depth=depth,
                    levels=levels, num_shared=num_shared, num_task_experts=num_task_experts)
        if not isinstance(tower_depth, int) or tower_depth < 0:
            raise ValueError(f"PLE: tower_depth must be an int >= 0, got {tower_depth!r}")
        m = check_out_size("PLE", out_size)
        dtype = resolve_dtype(dtype)
        key, tkey = jax.random.split(key)
        built = []
        for level, lkey in enumerate(jax.random.split(key, levels)):
            d = in_size if level == 0 else width
            k_sh, k_task, k_tg, k_sg = jax.random.split(lkey, 4)
            shared = tuple(dense([d] + [width] * depth, k, dtype)
                           for k in jax.random.split(k_sh, num_shared))
            task = tuple(
                tuple(dense([d] + [width] * depth, k, dtype)
                      for k in jax.random.split(kt, num_task_experts))
                for kt in jax.random.split(k_task, num_tasks))
            gates = tuple(dense([d, num_task_experts + num_shared], k, dtype)[0]
                          for k in jax.random.split(k_tg, num_tasks))
            shared_gate = None
            if level < levels - 1:
                shared_gate = dense([d, num_tasks * num_task_experts + num_shared], k_sg,
                                    dtype)[0]
            built.append(_Level(shared, task, gates, shared_gate))
        self.levels = tuple(built)
        self.towers = tuple(dense([width] * (tower_depth + 1) + [m], k, dtype)
                            for k in jax.random.split(tkey, num_tasks))
        self.in_size, self.out_size, self.num_tasks = in_size, out_size, num_tasks
        self.activation = activation

    def _forward(self, x):
        """Final task representations and every level's gates."""
        check_point("PLE", x, self.in_size)
        act = self.activation
        h, s = [x] * self.num_tasks, x
        gates = []
        for lev in self.levels:
            shared = [run(e, s, act, linear_last=False) for e in lev.shared_experts]
            task = [[run(e, hk, act, linear_last=False) for e in experts]
                    for experts, hk in zip(lev.task_experts, h, strict=True)]
            task_gates = jnp.stack([jax.nn.softmax(g(hk))
                                    for g, hk in zip(lev.task_gates, h, strict=True)])
            h_new = [task_gates[k] @ jnp.stack(task[k] + shared)
                     for k in range(self.num_tasks)]
            shared_gate = None
            if lev.shared_gate is not None:
                shared_gate = jax.nn.softmax(lev.shared_gate(s))
                s = shared_gate @ jnp.stack([e for t in task for e in t] + shared)
            h = h_new
            gates.append((task_gates, shared_gate))
        return h, tuple(gates)

    def gates(self, x: Float[Array, " in_size"]) -> tuple:
        """Per level: (task gates (K, C), shared gate (C_s,) or None); rows sum to one."""
        return self._forward(x)[1]

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "tasks ..."]:
        """The K task outputs at one point x: (K,) or (K, m)."""
        h, _ = self._forward(x)
        return stack_outputs([run(t, hk, self.activation, linear_last=True)
                              for t, hk in zip(self.towers, h, strict=True)], self.out_size)

    def shared_mask(self, params: Any = None) -> PyTree[bool]:
        """True where more than one task's output depends on the leaf (see the class doc)."""
        last = len(self.levels) - 1

        def shared(m):
            picks = []
            for i, lev in enumerate(m.levels):
                picks.append(lev.shared_experts)
                if lev.shared_gate is not None:
                    picks.append(lev.shared_gate)
                if i < last:
                    picks.append(lev.task_experts)
                if i < last - 1:
                    picks.append(lev.task_gates)
            return tuple(picks)

        return mask_where(self, shared)
