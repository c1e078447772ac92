"""Self-adaptive point weights (SA-PINN): trainable weights that the optimizer ascends.

The model is an `SAModel(net, weights)`: the network and one weight array lambda_t of shape
(N_t,) per weighted task, both ordinary pytree leaves. `sa_losses` turns a
`pinnx.residuals.Losses` into the weighted losses

    L_t(theta, lambda_t) = (1 / N_t) sum_i m(lambda_t,i) r_t,i(theta)^2,

and `sa_optimizer` is the plain optax piece that goes after the aggregator: it descends the
network's leaves and *ascends* the weight leaves (their update is negated), each group with
its own optimizer and learning rate, so the min-max problem min_theta max_lambda L is one
chain, e.g. `pinnx.sum() | sa_optimizer(optax.adam(1e-3), weights_lr=1e-2)`.
"""

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.tree_util import GetAttrKey, SequenceKey
from jaxtyping import Array, ArrayLike, Float, PyTree

from ..residuals import Losses
from ._masks import Mask, resolve_mask

__all__ = ["SAModel", "SALosses", "sa_weights", "sa_losses", "sa_optimizer", "sa_labels",
           "SA_LABEL", "NET_LABEL", "count_points", "sa_mask_values"]

SA_LABEL = "sa_weights"
NET_LABEL = "net"


class SAModel(eqx.Module):
    """A network plus its self-adaptive point weights, both trainable pytree leaves.

    Calling it calls the network, so an `SAModel` can be evaluated wherever the network can
    (e.g. `problem.relative_l2(model)`).

    Attributes:
        net: the network (any callable pytree, e.g. `pinnx.nn.MLP`).
        weights: {task: (N_t,) array} of raw weights lambda (the mask is applied in the
            loss, `sa_losses`); entry i belongs to point i of the task's batch entry.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> from pinnx.pointwise import SAModel, sa_weights
        >>> net = pinnx.nn.MLP(2, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"bc": jnp.zeros((3, 2)), "pde": jnp.full((6, 2), 0.5)}
        >>> model = SAModel(net, sa_weights(batch, ("pde",)))
        >>> model.weights["pde"].shape   # (N_pde,)
        (6,)
    """

    net: Any
    weights: dict[str, Float[Array, " points"]]

    def __check_init__(self):
        if not isinstance(self.weights, Mapping):
            raise ValueError(f"SAModel weights must be a dict {{task: (N,) array}}, got "
                             f"{type(self.weights).__name__}")

    def __call__(self, x: Any) -> Any:
        """The network at one point."""
        return self.net(x)


def count_points(entry: Any) -> int:
    """Number of points of a batch entry: an (N, d) array or a data pair ((N, d), values)."""
    points = entry[0] if isinstance(entry, tuple | list) else entry
    if jnp.ndim(points) != 2:
        raise ValueError(f"a batch entry must be an (N, d) array of points (or a pair "
                         f"(points, values)), got shape {jnp.shape(points)}")
    return int(jnp.shape(points)[0])


def sa_weights(
    batch: Mapping[str, Any],
    tasks: tuple[str, ...] | list[str],
    *,
    init: float | ArrayLike = 1.0,
    dtype: Any = None,
) -> dict[str, Float[Array, " points"]]:
    """Initial SA weights, one (N_t,) array per task, for the points of `batch`.

    Args:
        batch: the batch the weights belong to ({task: (N_t, d) points or (points, values)}).
        tasks: the tasks to weight (the others stay unweighted).
        init: the initial raw weight lambda (a scalar, or an (N_t,) array used for every
            task). With `"sigmoid"` a start of 0 gives m = 1/2; with `"square"` / `"identity"`
            a start of 1 gives m = 1 (the unweighted loss).
        dtype: the weights' dtype (default: that of the task's points).

    Returns:
        {task: (N_t,) array}.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import sa_weights
        >>> weights = sa_weights({"pde": jnp.zeros((100, 2))}, ("pde",), init=0.0)
        >>> weights["pde"].shape, float(weights["pde"].max())
        ((100,), 0.0)
    """
    if isinstance(tasks, str):
        raise ValueError(f"tasks must be a sequence of task names, got the string {tasks!r}")
    if not tasks:
        raise ValueError("sa_weights needs at least one task")
    out = {}
    for task in tasks:
        if task not in batch:
            raise ValueError(f"the batch has no entry {task!r}; it has {sorted(batch)}")
        entry = batch[task]
        n = count_points(entry)
        points = entry[0] if isinstance(entry, tuple | list) else entry
        dt = jnp.result_type(points) if dtype is None else dtype
        value = jnp.asarray(init, dt)
        if value.ndim == 0:
            value = jnp.full((n,), value)
        if value.shape != (n,):
            raise ValueError(f"init for task {task!r} must be a scalar or shape ({n},), got "
                             f"{value.shape}")
        if not bool(jnp.all(jnp.isfinite(value))):
            raise ValueError(f"init for task {task!r} has non-finite values")
        out[task] = value
    return out


class SALosses(eqx.Module):
    """SA-weighted losses of an `SAModel`: `(model, batch) -> {task: scalar}`.

    Built by `sa_losses`; `pointwise(model, batch)` gives the weighted per-point terms
    m(lambda_i) r_i^2.
    """

    losses: Losses
    mask: Mask = eqx.field(static=True)

    def _split(self, model: Any) -> tuple[Any, Mapping[str, Array]]:
        if isinstance(model, SAModel):
            return model.net, model.weights
        if isinstance(model, tuple) and len(model) == 2:
            return model
        raise ValueError(f"SA losses need an SAModel(net, weights) or a (net, weights) pair, "
                         f"got {type(model).__name__}")

    def pointwise(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Array]:
        """{task: (N_t,)}: m(lambda_i) r_i^2 for weighted tasks, r_i^2 for the others."""
        net, weights = self._split(model)
        unknown = sorted(set(weights) - set(self.losses.terms))
        if unknown:
            raise ValueError(f"SA weights for unknown tasks {unknown}; the tasks are "
                             f"{sorted(self.losses.terms)}")
        raw = self.losses.pointwise(net, batch)
        out = {}
        for task, p in raw.items():
            if task not in weights:
                out[task] = p
                continue
            lam = weights[task]
            if jnp.shape(lam) != p.shape:
                raise ValueError(
                    f"task {task!r} has {p.shape[0]} points but {jnp.shape(lam)} SA weights: "
                    "after resampling to a new size, map the weights with "
                    "pinnx.pointwise.sa_transfer"
                )
            out[task] = self.mask(lam).astype(p.dtype) * p
        return out

    def __call__(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Float[Array, ""]]:
        """{task: scalar}: the mean of the (weighted) per-point terms."""
        return {t: jnp.mean(v) for t, v in self.pointwise(model, batch).items()}


def sa_losses(losses: Any, mask: str | Mask = "sigmoid") -> SALosses:
    """Weight the per-point residuals of `losses` by m(lambda), lambda from the model.

    L_t = (1/N_t) sum_i m(lambda_t,i) r_t,i^2 for every task with weights in the model;
    other tasks keep their plain mean. The model is an `SAModel(net, weights)` (or a
    `(net, weights)` pair); shapes are checked at trace time.

    Args:
        losses: the unweighted loss function (it provides the per-point residuals).
        mask: "sigmoid" (default, bounded in (0, 1)), "identity", "square", or any callable
            such as `polynomial_mask(q)`.

    Returns:
        An `SALosses`, usable with `pinnx.task_grads` and `pinnx.fit`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> from pinnx.pointwise import SAModel, sa_losses, sa_weights
        >>> losses = pinnx.residuals.losses(bc=pinnx.residuals.dirichlet(0.0),
        ...                                 pde=pinnx.residuals.pde(lambda u, x: u(x) - 1.0))
        >>> net = pinnx.nn.MLP(2, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"bc": jnp.zeros((3, 2)), "pde": jnp.full((6, 2), 0.5)}
        >>> weighted = sa_losses(losses, mask="square")
        >>> model = SAModel(net, sa_weights(batch, ("pde",)))   # lambda = 1: m = 1
        >>> bool(jnp.allclose(weighted(model, batch)["pde"], losses(net, batch)["pde"]))
        True

        Training: `pinnx.fit(weighted, model, pinnx.sum() | sa_optimizer(optax.adam(1e-3),
        weights_lr=1e-2), batch, steps=1000)`.

    References:
        McClenny, Braga-Neto. "Self-adaptive physics-informed neural networks". J. Comput.
        Phys. 474, 2023. https://arxiv.org/abs/2009.04544
    """
    if not isinstance(losses, Losses):
        raise ValueError("sa_losses needs per-point residuals: a pinnx.residuals.Losses, got "
                         f"{type(losses).__name__}")
    return SALosses(losses, resolve_mask(mask))


def sa_labels(tree: PyTree) -> PyTree[str]:
    """Label every leaf of an `SAModel` (or `(net, weights)` pair) "net" or "sa_weights".

    The label function of `sa_optimizer`'s `optax.partition`; it accepts the parameters
    and the (params-shaped) updates alike, `None` leaves included.
    """
    if isinstance(tree, SAModel):
        def is_weight(key):
            return isinstance(key, GetAttrKey) and key.name == "weights"
    elif isinstance(tree, tuple) and len(tree) == 2:
        def is_weight(key):
            return isinstance(key, SequenceKey) and key.idx == 1
    else:
        raise ValueError(f"sa_optimizer trains an SAModel(net, weights) or a (net, weights) "
                         f"pair, got parameters of type {type(tree).__name__}")
    return jax.tree_util.tree_map_with_path(
        lambda path, _: SA_LABEL if path and is_weight(path[0]) else NET_LABEL, tree)


def sa_optimizer(
    net: optax.GradientTransformation,
    weights_lr: float | optax.Schedule | None = None,
    *,
    weights: optax.GradientTransformation | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Descend the network, ascend the SA weights: the optax piece after the aggregator.

    An `optax.partition` over `sa_labels`: the network's leaves go through `net`; the
    weight leaves through `weights` (default `optax.adam(weights_lr)`) followed by
    `optax.scale(-1)`, so lambda moves *up* its gradient m'(lambda_i) r_i^2 / N: one step
    raises the weights of the points with the largest residuals most (exactly in proportion
    with `weights=optax.sgd(lr)`). Put it after an aggregator that passes each leaf its own
    gradient unchanged, such as `pinnx.sum()`: Gram-based aggregators (PCGrad, MGDA, ...)
    would mix the weight leaves into their projections.

    Args:
        net: the network's optimizer, e.g. `optax.adam(1e-3)`.
        weights_lr: learning rate (or schedule) of the default Adam ascent on the weights.
        weights: the weights' optimizer instead (a descent transform: the sign is flipped
            here); give this or `weights_lr`, not both.

    Returns:
        A `GradientTransformationExtraArgs` (state: `optax.PartitionState` with inner states
        "net" and "sa_weights").

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, optax, pinnx
        >>> from pinnx.pointwise import SAModel, sa_losses, sa_optimizer, sa_weights
        >>> losses = pinnx.residuals.losses(bc=pinnx.residuals.dirichlet(0.0),
        ...                                 pde=pinnx.residuals.pde(lambda u, x: u(x) - 1.0))
        >>> net = pinnx.nn.MLP(2, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"bc": jnp.zeros((3, 2)), "pde": jnp.full((6, 2), 0.5)}
        >>> model = SAModel(net, sa_weights(batch, ("pde",)))
        >>> opt = pinnx.sum() | sa_optimizer(optax.adam(1e-3), weights_lr=1e-2)
        >>> params = eqx.filter(model, eqx.is_inexact_array)
        >>> state = pinnx.init_state(opt, params, tasks=("bc", "pde"))
        >>> values, grads = pinnx.task_grads(sa_losses(losses, mask="square"), model, batch)
        >>> updates, state = opt.update(grads, state, params, losses=values)
        >>> model = eqx.apply_updates(model, updates)
        >>> bool(jnp.all(model.weights["pde"] > 1.0))   # ascended: every weight went up
        True

    References:
        McClenny, Braga-Neto. "Self-adaptive physics-informed neural networks". J. Comput.
        Phys. 474, 2023. https://arxiv.org/abs/2009.04544
    """
    if (weights is None) == (weights_lr is None):
        raise ValueError("sa_optimizer needs exactly one of weights_lr= (Adam ascent at that "
                         "rate) or weights= (an optax transform)")
    for name, tx in (("net", net), ("weights", weights)):
        if tx is not None and not isinstance(tx, optax.GradientTransformation):
            raise ValueError(f"sa_optimizer {name}= must be an optax GradientTransformation, "
                             f"got {type(tx).__name__}")
    if weights is None:
        weights = optax.adam(weights_lr)
    ascent = optax.chain(weights, optax.scale(-1.0))
    return optax.partition({NET_LABEL: net, SA_LABEL: ascent}, sa_labels)


def sa_mask_values(model: SAModel, mask: str | Callable = "sigmoid") -> dict[str, Array]:
    """The effective weights m(lambda) of an `SAModel`, {task: (N_t,)} (for plots, logs).

    Args:
        model: the `SAModel`.
        mask: the mask its losses use (a name or a function, as in `sa_losses`).

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> from pinnx.pointwise import SAModel, sa_mask_values
        >>> net = pinnx.nn.MLP(2, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> model = SAModel(net, {"pde": jnp.array([0.0, 2.0])})
        >>> [round(m, 3) for m in sa_mask_values(model, "sigmoid")["pde"].tolist()]
        [0.5, 0.881]
    """
    m = resolve_mask(mask)
    return {t: m(w) for t, w in model.weights.items()}
