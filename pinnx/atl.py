"""Auxiliary-task learning (ATL-PINN): build the tasks and their loss dictionary.

An ATL problem trains one multi-task network (`pinnx.nn.HardSharing`, `SoftSharing`, `MMoE`,
`PLE`) on K tasks: the main task and K - 1 auxiliary tasks, the same PDE with different
initial conditions. Output k of the network solves task k; the main task is output 0.
`atl_losses` turns the K single-task loss functions (`pinnx.residuals.Losses`, each written
for a scalar field) into ONE loss function whose dictionary has one entry per task,

    {"main": sum_t w_t L_t(u_0), "aux0": sum_t w_t L_t(u_1), ...},

the weighted sum of that task's terms (pde, ic, bc) on its own output, so per-task
gradients (`pinnx.task_grads`) have one row per ATL task and the cosine gate compares whole
tasks, as in the paper. The ATL-PINN recipe is then three lines:

    tasks = auxiliary_tasks(diffusion_reaction, MAIN_BUMPS, sample_bumps(key, 1))
    net = pinnx.nn.MMoE(2, "scalar", tasks.num_tasks, num_experts=3, width=32, depth=3,
                        key=key)
    opt = pinnx.cosine_gate(main="main", where=net.shared_mask) | pinnx.sum() \\
        | optax.adam(1e-3)
    net, _, history = pinnx.fit(tasks.losses, net, opt, tasks.sample, steps=5000)

`auxiliary_tasks` builds the problems (references included) from a problem factory and its
parameters; `TaskOutput` views one output of the network as a single-task model (for
`Problem.relative_l2` and plots).

References:
    Yan, Chen, Wang, Zhou, Liu. "Auxiliary-Tasks Learning for Physics-Informed Neural
    Network-Based Partial Differential Equations Solving". 2023.
    https://arxiv.org/abs/2307.06167
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .problems._problem import Problem
from .residuals import Losses

__all__ = ["TaskOutput", "ATLLosses", "atl_losses", "ATLTasks", "auxiliary_tasks",
           "DistancePenalty", "distance_penalty"]


class TaskOutput(eqx.Module):
    """Output `index` of a multi-task network, as a single-task field u(x).

    For a network returning (K,) it returns the scalar entry `index`; for (K, m), the row
    (m,). A network with a scalar output counts as one task (index 0).

    Attributes:
        model: the multi-task network (K outputs per point).
        index: which output (0 is the main task by the ATL convention).

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> from pinnx.atl import TaskOutput
        >>> net = pinnx.nn.HardSharing(2, "scalar", 2, width=8, depth=1, key=jax.random.key(0))
        >>> x = jnp.array([0.5, 0.1])
        >>> bool(TaskOutput(net, 1)(x) == net(x)[1])
        True

        A task's error against its reference: `problem.relative_l2(TaskOutput(net, 0))`.
    """

    model: Any
    index: int = eqx.field(static=True)

    def __check_init__(self):
        if not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"TaskOutput index must be an int >= 0, got {self.index!r}")

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, "..."]:
        """u_index(x) for one point x."""
        y = self.model(x)
        if jnp.ndim(y) == 0:
            if self.index != 0:
                raise ValueError(f"the network has one scalar output, so no output "
                                 f"{self.index}")
            return y
        if self.index >= y.shape[0]:
            raise ValueError(f"the network has {y.shape[0]} task outputs, so no output "
                             f"{self.index}")
        return y[self.index]


def _num_outputs(model: Any, batch: Mapping[str, Any]) -> int:
    """K of the network, from its output shape at one point of the batch."""
    for entry in batch.values():
        points = entry[0] if isinstance(entry, tuple) else entry
        if jnp.ndim(points) == 2:
            shape = jax.eval_shape(model, points[0]).shape
            return 1 if len(shape) == 0 else shape[0]
    raise ValueError("the batch has no (N, d) array of points")


class ATLLosses(eqx.Module):
    """The loss function of an ATL-PINN: one entry per task, on that task's output.

    `losses(model, batch)` gives `{name_k: sum_t weight_t * L_t(TaskOutput(model, k))}`
    for the tasks in `names` order (output k solves task k). The batch is either shared by
    all tasks (a dict of the terms' points, e.g. {"pde", "ic", "bc"}) or per task
    ({name_k: batch_k}).

    Attributes:
        tasks: the single-task loss functions, main first.
        names: the task names (the loss dictionary's keys), main first.
        weights: (term, weight) pairs; terms not listed weigh 1.
    """

    tasks: tuple[Losses, ...]
    names: tuple[str, ...] = eqx.field(static=True)
    weights: tuple[tuple[str, float], ...] = eqx.field(static=True)

    def _batch(self, batch: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        if set(batch) == set(self.names):
            return batch[name]
        return batch

    def _check(self, model: Any, batch: Mapping[str, Any]) -> None:
        if not isinstance(batch, Mapping):
            raise ValueError(f"the batch must be a dict, got {type(batch).__name__}")
        first = self._batch(batch, self.names[0])
        k = _num_outputs(model, first)
        if k != len(self.names):
            raise ValueError(f"the network has {k} task outputs but there are "
                             f"{len(self.names)} tasks {self.names}")

    def terms(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Float[Array, ""]]:
        """Every unweighted term of every task: {"main/pde": L, "aux0/ic": L, ...}."""
        self._check(model, batch)
        out = {}
        for k, (name, task) in enumerate(zip(self.names, self.tasks, strict=True)):
            for term, value in task(TaskOutput(model, k), self._batch(batch, name)).items():
                out[f"{name}/{term}"] = value
        return out

    def __call__(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Float[Array, ""]]:
        """One weighted loss per task: {name: sum_t w_t L_t}."""
        weights = dict(self.weights)
        out = {}
        for key, value in self.terms(model, batch).items():
            name, term = key.split("/", 1)
            w = weights.get(term, 1.0)
            out[name] = out.get(name, 0.0) + w * value
        return out


def atl_losses(
    main: Losses,
    auxiliary: Sequence[Losses],
    *,
    weights: Mapping[str, float] | None = None,
    main_name: str = "main",
    aux_prefix: str = "aux",
) -> ATLLosses:
    """One loss dictionary for the main task and its auxiliary tasks.

    Args:
        main: the main task's loss function (for a scalar field), output 0.
        auxiliary: the auxiliary tasks' loss functions, outputs 1..K-1 (may be empty: a
            single-task PINN with the same weighting, the ATL baseline).
        weights: weight per term name, e.g. {"ic": 100.0} (the paper's initial-condition
            weight); unlisted terms weigh 1.
        main_name: the main task's key.
        aux_prefix: auxiliary task j is named f"{aux_prefix}{j}".

    Returns:
        An `ATLLosses`: `losses(model, batch) -> {main_name: L_0, "aux0": L_1, ...}`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> from pinnx.atl import atl_losses
        >>> def task(c):   # one task: u = c in the domain and at t = 0
        ...     return pinnx.residuals.losses(ic=pinnx.residuals.initial(c),
        ...                                   pde=pinnx.residuals.pde(lambda u, x: u(x) - c))
        >>> batch = {"ic": jnp.zeros((3, 2)), "pde": jnp.full((4, 2), 0.5)}
        >>> losses = atl_losses(task(1.0), [task(2.0)], weights={"ic": 100.0})
        >>> net = pinnx.nn.HardSharing(2, "scalar", 2, width=8, depth=1, key=jax.random.key(0))
        >>> sorted(losses(net, batch))          # one entry per task, on its own output
        ['aux0', 'main']
        >>> sorted(losses.terms(net, batch))    # the unweighted terms
        ['aux0/ic', 'aux0/pde', 'main/ic', 'main/pde']
    """
    tasks = (main, *auxiliary)
    for i, task in enumerate(tasks):
        if not isinstance(task, Losses):
            raise ValueError(f"task {i} must be a pinnx.residuals.Losses, got "
                             f"{type(task).__name__}")
    terms = set(main.terms)
    for i, task in enumerate(auxiliary):
        if set(task.terms) != terms:
            raise ValueError(f"auxiliary task {i} has terms {sorted(task.terms)} but the main "
                             f"task has {sorted(terms)}: ATL tasks are the same PDE")
    names = (main_name, *(f"{aux_prefix}{j}" for j in range(len(auxiliary))))
    if len(set(names)) != len(names) or not all(names) or any("/" in n for n in names):
        raise ValueError(f"task names must be distinct, non-empty and free of '/', got "
                         f"{names}")
    weights = dict(weights or {})
    unknown = set(weights) - terms
    if unknown:
        raise ValueError(f"weights name unknown terms {sorted(unknown)}; the terms are "
                         f"{sorted(terms)}")
    for term, w in weights.items():
        if not (isinstance(w, (int, float)) and w >= 0 and w < float("inf")):
            raise ValueError(f"the weight of {term!r} must be a finite number >= 0, got {w!r}")
    return ATLLosses(tasks, names, tuple(sorted((t, float(w)) for t, w in weights.items())))


class DistancePenalty(eqx.Module):
    """`losses` plus one more task: `weight * model.distance()` under the key `name`.

    Built by `distance_penalty`; see there.
    """

    losses: Callable[[Any, Any], Mapping[str, Array]]
    weight: float = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __call__(self, model: Any, batch: Any) -> dict[str, Float[Array, ""]]:
        """{**losses(model, batch), name: weight * model.distance()}."""
        out = dict(self.losses(model, batch))
        if self.name in out:
            raise ValueError(f"the losses already have a task {self.name!r}; choose another "
                             "name for the distance penalty")
        distance = getattr(model, "distance", None)
        if not callable(distance):
            raise ValueError("distance_penalty needs a model with a distance() method, e.g. "
                             f"pinnx.nn.SoftSharing(..., coupling='distance'), got "
                             f"{type(model).__name__}")
        out[self.name] = self.weight * distance()
        return out


def distance_penalty(losses: Callable[[Any, Any], Mapping[str, Array]], weight: float, *,
                     name: str = "distance") -> DistancePenalty:
    """Soft sharing by a parameter-distance penalty, as one more task of the loss dictionary.

    The penalty lambda * sum_l sum_{j<k} ||theta_j^l - theta_k^l||^2 between the task
    columns of a `pinnx.nn.SoftSharing(..., coupling="distance")` network (its
    `distance()`) becomes the task `name`, so `pinnx.task_grads` gives it its own row: with
    `pinnx.sum()` the update is the gradient of the total loss sum_k L_k + lambda D, and a
    conflict-aware aggregator treats the coupling as one more objective.

    Args:
        losses: the task losses, e.g. `atl_losses(...)`.
        weight: lambda >= 0, finite.
        name: the penalty's key in the loss dictionary.

    Returns:
        A `DistancePenalty`: `losses(model, batch) | {name: weight * model.distance()}`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> from pinnx.atl import atl_losses, distance_penalty
        >>> def task(c):   # one task: u = c in the domain and at t = 0
        ...     return pinnx.residuals.losses(ic=pinnx.residuals.initial(c),
        ...                                   pde=pinnx.residuals.pde(lambda u, x: u(x) - c))
        >>> batch = {"ic": jnp.zeros((3, 2)), "pde": jnp.full((4, 2), 0.5)}
        >>> net = pinnx.nn.SoftSharing(2, "scalar", 2, width=8, depth=2,
        ...                            key=jax.random.key(0), coupling="distance")
        >>> losses = distance_penalty(atl_losses(task(1.0), [task(2.0)]), 1e-3)
        >>> values = losses(net, batch)
        >>> sorted(values), float(values["distance"])   # the columns start equal
        (['aux0', 'distance', 'main'], 0.0)

        Trained with the plain sum, the update is the gradient of sum_k L_k + lambda D:
        `pinnx.fit(losses, net, pinnx.sum() | optax.adam(1e-3), tasks.sample, steps=5000,
        resample_every=1)`.

    References:
        Duong, Cohn, Bird, Cook. ACL 2015 (the L2 distance penalty of soft sharing); Yan et
        al. 2023 (ATL-PINN's soft sharing). https://arxiv.org/abs/2307.06167
    """
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool)
            and 0 <= weight < float("inf")):
        raise ValueError(f"the distance penalty's weight must be a finite number >= 0, got "
                         f"{weight!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    return DistancePenalty(losses, float(weight), name)


@dataclasses.dataclass(frozen=True, eq=False)
class ATLTasks:
    """An ATL problem: the tasks' `Problem`s (main first) and their joint loss.

    Attributes:
        problems: one `Problem` per task (reference included), main first.
        losses: the joint `ATLLosses`.
        sample: `sample(key) -> batch`, the main problem's sampler (the tasks share points).
    """

    problems: tuple[Problem, ...]
    losses: ATLLosses
    sample: Callable[[PRNGKeyArray], dict[str, Any]]

    @property
    def names(self) -> tuple[str, ...]:
        """Task names, main first (output k solves names[k])."""
        return self.losses.names

    @property
    def num_tasks(self) -> int:
        """K, the number of network outputs."""
        return len(self.problems)

    def relative_l2(self, model: Any, task: int = 0) -> float:
        """Relative L2 error of output `task` against that task's reference."""
        return self.problems[task].relative_l2(TaskOutput(model, task))


def auxiliary_tasks(
    make: Callable[[Any], Problem],
    main: Any,
    auxiliary: Sequence[Any],
    *,
    weights: Mapping[str, float] | None = None,
) -> ATLTasks:
    """Build the main and auxiliary problems from one factory and their joint loss.

    Args:
        make: `make(params) -> Problem`, e.g. `pinnx.problems.diffusion_reaction.
            diffusion_reaction` with an initial condition as `params`.
        main: the main task's parameters.
        auxiliary: one parameter set per auxiliary task (may be empty: the single-task
            baseline).
        weights: term weights, as in `atl_losses`.

    Returns:
        An `ATLTasks` (problems, losses, sample).

    Examples:
        Each task's `Problem` computes its reference solution (seconds per task), so this
        one is not run as a doctest:

            from pinnx.problems.diffusion_reaction import (MAIN_BUMPS, diffusion_reaction,
                                                           sample_bumps)
            tasks = auxiliary_tasks(diffusion_reaction, MAIN_BUMPS,
                                    sample_bumps(jax.random.key(1), 1), weights={"ic": 100.0})
            tasks.names       # ('main', 'aux0')
            tasks.num_tasks   # 2: the network's outputs

    References:
        Yan et al. 2023, https://arxiv.org/abs/2307.06167
    """
    problems = tuple(make(p) for p in (main, *auxiliary))
    for p in problems:
        if not isinstance(p, Problem):
            raise ValueError(f"make(...) must return a pinnx.problems.Problem, got "
                             f"{type(p).__name__}")
    losses = atl_losses(problems[0].losses, [p.losses for p in problems[1:]], weights=weights)
    return ATLTasks(problems, losses, problems[0].sample)
