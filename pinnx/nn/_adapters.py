"""Per-loss adapters: a shared MLP trunk plus one low-rank (LoRA) adapter per loss.

Kim & N'guessan (2026): loss k is evaluated through trunk + adapter k, adapter k learns from
loss k alone and the trunk from the combined gradient. Three pieces make that a pinnx recipe:

- `PerLossAdapters`, the model; `model.for_task(k)` is a plain `MLP` (trunk weights with
  adapter k merged in), so every residual builder works on it unchanged;
- `pinnx.residuals.adapter_losses(losses)`, which evaluates loss k on `model.for_task(k)`,
  so `pinnx.fit` and `pinnx.task_grads` work unchanged;
- `adapter_owners`, the ownership for `pinnx.route`, which gives adapter k's leaves row k.

**Which forward is the solution.** `model(x)` is trunk + the adapter of the `main` task (the
PDE residual by default), `model.for_task(main)`. The argument: on the domain, the
solution's error is controlled by the residual and the boundary mismatch (stability of the
well-posed problem). The main forward's residual is trained directly, and its boundary
mismatch differs from the trained boundary forward's by the values of the difference of two
adapters. Any other forward inherits that difference through the PDE operator instead, i.e.
through its derivatives (second derivatives for Helmholtz, amplified by the wavenumber
squared): the task with the highest-order operator should own the solution. The trunk alone
is trained on no loss directly. `pinnx.residuals.cross_losses` measures every loss on every
forward from training data alone, so the choice can be checked without a reference solution.

The argument presumes that the adapters stay close. Nothing in the objective
sum_k L_k(trunk + adapter_k) enforces that: on Helmholtz (docs/adapters.md) rank-4 adapters
on every layer let the boundary forward fit the boundary and the PDE forward the equation
with wrong boundary values, and no forward was a solution; `cross_losses` shows it.

The ownership is structure, so it lives here with the model; the loss functions are in
`pinnx.residuals` (module `pinnx._adapter_losses`).
"""

import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._mlp import MLP

__all__ = ["LoRA", "PerLossAdapters", "adapter_owners"]


class LoRA(eqx.Module):
    """One low-rank adapter: per adapted layer l, factors A_l (rank, d_in) and B_l (d_out, rank).

    The layer's weight becomes W_l + (alpha / rank) B_l A_l (Hu et al. 2021). Built by
    `PerLossAdapters`: A ~ N(0, 1/d_in), B = 0, so the adapter starts as the identity.
    """

    a: tuple[Array, ...]  # (rank, d_in) per adapted layer
    b: tuple[Array, ...]  # (d_out, rank) per adapted layer


class PerLossAdapters(eqx.Module):
    """A shared MLP trunk plus one LoRA adapter per loss; `model(x)` is the solution.

    Task k's forward is the trunk with, on every adapted layer l,
    W_l -> W_l + (alpha / rank) B_{k,l} A_{k,l}. `for_task(k)` returns it as a plain `MLP`,
    `for_task(None)` the trunk alone. Calling the model evaluates the `main` task's forward
    (trunk + main adapter): the solution at evaluation time, see the module documentation
    for why. At initialisation B = 0, so every forward equals the trunk exactly.

    Train it with `pinnx.residuals.adapter_losses` (loss k through forward k) and
    `pinnx.route(..., own=pinnx.nn.adapter_owners)` (adapter k gets exactly loss k's
    gradient, the trunk the chain's combined gradient).

    Args:
        trunk: the shared network, a `pinnx.nn.MLP`.
        tasks: the loss names, one adapter each (e.g. ("bc", "pde")); stored sorted, the
            row order of `pinnx.task_grads`.
        rank: the adapters' rank r (>= 1).
        alpha: the LoRA scale numerator; the update is (alpha / r) B A. Default: r.
        layers: indices into `trunk.layers` of the adapted layers (negative counts from the
            output layer); default: all of them.
        main: the task whose forward is the solution (default "pde").
        key: PRNG key for the A factors.

    Shapes: `model(x)` takes one point (in_size,) like the trunk and returns () or (m,).

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> trunk = pinnx.nn.MLP(2, "scalar", width=16, depth=2, key=jax.random.key(0))
        >>> model = pinnx.nn.PerLossAdapters(trunk, ("bc", "pde"), rank=4,
        ...                                  key=jax.random.key(1))
        >>> points = jax.random.uniform(jax.random.key(2), (5, 2))
        >>> u = jax.vmap(model)(points)                   # the solution: trunk + pde adapter
        >>> u_bc = jax.vmap(model.for_task("bc"))(points)
        >>> u.shape, bool(jnp.allclose(u, u_bc))          # B = 0: all forwards equal at first
        ((5,), True)

    References:
        Kim, N'guessan. "Per-Loss Adapters for Gradient Conflict in Physics-Informed Neural
        Networks". 2026. https://arxiv.org/abs/2605.10136 ; LoRA: Hu, Shen, Wallis,
        Allen-Zhu, Li, Wang, Wang, Chen. "LoRA: Low-Rank Adaptation of Large Language
        Models". 2021. https://arxiv.org/abs/2106.09685
    """

    trunk: MLP
    adapters: dict[str, LoRA]
    tasks: tuple[str, ...] = eqx.field(static=True)
    layers: tuple[int, ...] = eqx.field(static=True)
    rank: int = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    main: str = eqx.field(static=True)

    def __init__(
        self,
        trunk: Any,
        tasks: Sequence[str],
        *,
        rank: int = 4,
        alpha: float | None = None,
        layers: Sequence[int] | None = None,
        main: str = "pde",
        key: PRNGKeyArray,
    ):
        if not isinstance(trunk, MLP):
            raise ValueError(f"the trunk must be a pinnx.nn.MLP, got {type(trunk).__name__}")
        if isinstance(tasks, str):
            raise ValueError(f"tasks must be a sequence of names, got the string {tasks!r}")
        names = tuple(sorted(tasks))
        if not names or len(set(names)) != len(names) or not all(
                isinstance(n, str) and n for n in names):
            raise ValueError(f"tasks must be distinct non-empty names, got {tuple(tasks)}")
        if main not in names:
            raise ValueError(f"main={main!r} is not among the tasks {names}")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise ValueError(f"rank must be a positive int, got {rank!r}")
        if not all(isinstance(layer, eqx.nn.Linear) for layer in trunk.layers):
            raise ValueError("PerLossAdapters needs a trunk of plain linear layers (an MLP "
                             "without rwf=): a factorised weight is not a leaf to adapt")
        n = len(trunk.layers)
        chosen = tuple(range(n)) if layers is None else tuple(layers)
        if not chosen or any(not isinstance(i, int) or not -n <= i < n for i in chosen):
            raise ValueError(f"layers must be indices into the trunk's {n} layers, got "
                             f"{layers!r}")
        chosen = tuple(sorted({i % n for i in chosen}))
        alpha = float(rank if alpha is None else alpha)
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be positive and finite, got {alpha}")

        adapters = {}
        for name, k in zip(names, jax.random.split(key, len(names)), strict=True):
            a, b = [], []
            for i, kl in zip(chosen, jax.random.split(k, len(chosen)), strict=True):
                w = trunk.layers[i].weight
                d_out, d_in = w.shape
                a.append(jax.random.normal(kl, (rank, d_in), w.dtype) / math.sqrt(d_in))
                b.append(jnp.zeros((d_out, rank), w.dtype))
            adapters[name] = LoRA(tuple(a), tuple(b))
        self.trunk = trunk
        self.adapters = adapters
        self.tasks = names
        self.layers = chosen
        self.rank = rank
        self.alpha = alpha
        self.main = main

    def for_task(self, task: str | None) -> MLP:
        """Task `task`'s forward as a plain `MLP` (adapter merged in); None: the trunk.

        Differentiable: gradients flow to the trunk and to that task's adapter only.
        """
        if task is None:
            return self.trunk
        if task not in self.adapters:
            raise ValueError(f"no adapter for task {task!r}; the tasks are {self.tasks}")
        lora = self.adapters[task]
        scale = self.alpha / self.rank
        weights = tuple(
            self.trunk.layers[i].weight + scale * (b @ a)
            for i, a, b in zip(self.layers, lora.a, lora.b, strict=True)
        )
        return eqx.tree_at(lambda m: tuple(m.layers[i].weight for i in self.layers),
                           self.trunk, weights)

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "..."]:
        """The solution u(x): trunk + the `main` task's adapter, for one point (in_size,)."""
        return self.for_task(self.main)(x)

    def owners(self) -> "PerLossAdapters":
        """This model's ownership for `pinnx.route`: the trunk shared (None), adapter k
        owned by task k (a pytree prefix of the model)."""
        return eqx.tree_at(lambda m: (m.trunk, m.adapters), self,
                           (None, {name: name for name in self.adapters}),
                           is_leaf=lambda x: x is None)


def adapter_owners(tree: PyTree) -> PyTree[str | None]:
    """The ownership of every `PerLossAdapters` inside `tree`, for `pinnx.route`.

    Adapter k's leaves are owned by task k; everything else (the trunks, other modules) is
    shared. Works on the model, its trainable partition or its per-task gradients (all have
    the model's structure).

    Examples:
        >>> import jax, optax, pinnx
        >>> trunk = pinnx.nn.MLP(2, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> model = pinnx.nn.PerLossAdapters(trunk, ("bc", "pde"), key=jax.random.key(1))
        >>> own = pinnx.nn.adapter_owners(model)
        >>> own.trunk, own.adapters
        (None, {'bc': 'bc', 'pde': 'pde'})
        >>> opt = pinnx.route(pinnx.lra() | pinnx.sum(), own=pinnx.nn.adapter_owners
        ...                   ) | optax.adam(1e-3)
    """
    found = []

    def node(x):
        if isinstance(x, PerLossAdapters):
            found.append(x)
            return x.owners()
        return None

    out = jax.tree.map(node, tree, is_leaf=lambda x: isinstance(x, PerLossAdapters))
    if not found:
        raise ValueError("adapter_owners found no pinnx.nn.PerLossAdapters in the parameters")
    return out
