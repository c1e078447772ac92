"""Per-point gradient-norm weights: w_i = max_j g_j / g_i, g_i = ||d r(x_i) / d theta||.

The per-point form of the learning-rate-annealing idea (Wang, Teng, Perdikaris 2021): points
whose residual barely moves with the parameters get large weights, so that every point's
weighted residual gradient has about the same size. The weights are data, not parameters:
they ride in the batch under `"point_weights"` (`with_point_weights`) and
`point_weighted_losses` applies them with a stop-gradient. Refresh them every few steps
with `grad_norm_point_update` (optionally as a moving average).
"""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..residuals import Losses
from ._sa import count_points

__all__ = ["point_grad_norms", "grad_norm_point_weights", "grad_norm_point_update",
           "point_weighted_losses", "PointWeightedLosses", "with_point_weights"]

WEIGHTS_KEY = "point_weights"


def _check_losses(losses: Any, who: str) -> Losses:
    if not isinstance(losses, Losses):
        raise ValueError(f"{who} needs per-point residuals: a pinnx.residuals.Losses, got "
                         f"{type(losses).__name__}")
    return losses


def point_grad_norms(
    losses: Losses,
    model: Any,
    batch: Mapping[str, Any],
    *,
    tasks: tuple[str, ...] | None = None,
    batch_size: int | None = None,
) -> dict[str, Float[Array, " points"]]:
    """g_i = ||d r(x_i) / d theta|| for every point of every task.

    One reverse-mode Jacobian per point (`jax.jacrev` of the point's residual vector),
    vectorised over the points with `jax.vmap` (or `jax.lax.map` in chunks of `batch_size`
    to bound memory): the cost is about that of one batched backward pass per residual
    component, plus an N x P Jacobian in memory. theta is every inexact-array leaf of the
    model; vector residuals give the Frobenius norm over their components.

    Args:
        losses: the loss function (its terms give the per-point residuals).
        model: the model.
        batch: {task: points or (points, values)}.
        tasks: which tasks (default: all, sorted).
        batch_size: points per chunk (default: all at once).

    Returns:
        {task: (N_t,) norms}.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(pde=pinnx.residuals.pde(lambda u, x: u(x) - 1.0))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 5)[:, None]}
        >>> from pinnx.pointwise import point_grad_norms
        >>> point_grad_norms(losses, net, batch, tasks=("pde",))["pde"].shape
        (5,)
    """
    losses = _check_losses(losses, "point_grad_norms")
    tasks = tuple(sorted(losses.terms)) if tasks is None else tuple(tasks)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    out = {}
    for name in tasks:
        if name not in losses.terms:
            raise ValueError(f"unknown task {name!r}; the tasks are {sorted(losses.terms)}")
        if name not in batch:
            raise ValueError(f"the batch has no entry {name!r} (the points of task {name!r})")
        term = losses.terms[name]

        def residual(p, point, term=term):
            one = jax.tree.map(lambda a: a[None], point)
            return jnp.ravel(term(eqx.combine(p, static), one))

        def norm(point, residual=residual):
            jac = jax.jacrev(residual)(params, point)
            return jnp.sqrt(sum(jnp.sum(j**2) for j in jax.tree.leaves(jac)))

        entry = batch[name]
        if batch_size is None:
            out[name] = jax.vmap(norm)(entry)
        else:
            out[name] = jax.lax.map(norm, entry, batch_size=batch_size)
    return out


def grad_norm_point_weights(
    norms: Float[Array, " points"],
    *,
    floor: float = 1e-6,
    normalize: str | None = None,
) -> Float[Array, " points"]:
    """w_i = max_j g_j / max(g_i, floor * max_j g_j): large where the residual is stiff.

    Guarded: a g_i below `floor` times the largest counts as that floor, so weights are at
    most 1 / floor; if every g_i is zero every weight is 1. Non-finite norms raise (inside
    jit through `eqx.error_if`).

    Args:
        norms: (N,) per-point gradient norms g_i >= 0 (`point_grad_norms`).
        floor: relative floor on g_i, in (0, 1].
        normalize: None (the formula: the smallest weight is 1, at the largest g_i),
            "max" (divided by the largest weight, so max w = 1) or "mean" (mean w = 1).

    Returns:
        (N,) positive, finite weights.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import grad_norm_point_weights
        >>> print(grad_norm_point_weights(jnp.array([1.0, 2.0, 4.0])))
        [4. 2. 1.]

    References:
        Wang, Teng, Perdikaris. "Understanding and mitigating gradient flow pathologies in
        physics-informed neural networks". SIAM J. Sci. Comput. 43, 2021.
        https://arxiv.org/abs/2001.04536
    """
    if not 0 < floor <= 1:
        raise ValueError(f"floor must lie in (0, 1], got {floor}")
    if normalize not in (None, "max", "mean"):
        raise ValueError(f"normalize must be None, 'max' or 'mean', got {normalize!r}")
    norms = jnp.asarray(norms)
    if norms.ndim != 1 or norms.shape[0] == 0:
        raise ValueError(f"expected (N,) per-point norms with N >= 1, got shape {norms.shape}")
    norms = eqx.error_if(norms, ~jnp.all(jnp.isfinite(norms)) | jnp.any(norms < 0),
                         "per-point gradient norms must be finite and non-negative")
    top = jnp.max(norms)
    tiny = jnp.finfo(norms.dtype).tiny
    ok = top >= tiny
    safe_top = jnp.where(ok, top, jnp.ones_like(top))
    # ratios in units of the largest norm: no overflow for any finite scale
    rel = jnp.maximum(norms / safe_top, jnp.asarray(floor, norms.dtype))
    w = jnp.where(ok, 1 / rel, jnp.ones_like(rel))
    if normalize == "max":
        w = w / jnp.max(w)
    elif normalize == "mean":
        w = w / jnp.mean(w)
    return w


def grad_norm_point_update(
    losses: Losses,
    model: Any,
    batch: Mapping[str, Any],
    previous: Mapping[str, Array] | None = None,
    *,
    tasks: tuple[str, ...],
    alpha: float = 1.0,
    floor: float = 1e-6,
    normalize: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Float[Array, " points"]]:
    """New per-point weights, {task: (N_t,)}, as a moving average of the estimate.

    w <- (1 - alpha) w_prev + alpha w_hat, with w_hat = `grad_norm_point_weights` of
    `point_grad_norms`; without `previous` (or with alpha = 1) the estimate itself.

    Args:
        losses: as for `point_grad_norms`.
        model: as for `point_grad_norms`.
        batch: as for `point_grad_norms`.
        previous: the current weights {task: (N_t,)}, or None.
        tasks: the weighted tasks.
        alpha: weight of the new estimate, in (0, 1].
        floor: as for `grad_norm_point_weights`.
        normalize: as for `grad_norm_point_weights`.
        batch_size: as for `point_grad_norms`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(pde=pinnx.residuals.pde(lambda u, x: u(x) - 1.0))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 5)[:, None]}
        >>> from pinnx.pointwise import grad_norm_point_update, with_point_weights
        >>> w = grad_norm_point_update(losses, net, batch, tasks=("pde",))
        >>> w["pde"].shape, float(w["pde"].min())   # weight 1 at the largest norm
        ((5,), 1.0)
        >>> batch = with_point_weights(batch, w)
        >>> w = grad_norm_point_update(losses, net, batch, w, tasks=("pde",), alpha=0.1)
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
    norms = point_grad_norms(losses, model, batch, tasks=tasks, batch_size=batch_size)
    out = {}
    for task, g in norms.items():
        w_hat = grad_norm_point_weights(g, floor=floor, normalize=normalize)
        if previous is None or task not in previous:
            out[task] = w_hat
        else:
            prev = jnp.asarray(previous[task])
            if prev.shape != w_hat.shape:
                raise ValueError(f"previous weights of task {task!r} have shape {prev.shape}, "
                                 f"the task has {w_hat.shape[0]} points")
            a = jnp.asarray(alpha, w_hat.dtype)
            out[task] = (1 - a) * prev.astype(w_hat.dtype) + a * w_hat
    return out


def with_point_weights(batch: Mapping[str, Any], weights: Mapping[str, Array]
                       ) -> dict[str, Any]:
    """The batch with `weights` ({task: (N_t,)}) stored under "point_weights".

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import with_point_weights
        >>> batch = with_point_weights({"pde": jnp.zeros((3, 1))},
        ...                            {"pde": jnp.array([1.0, 2.0, 1.0])})
        >>> sorted(batch)
        ['pde', 'point_weights']
    """
    for task, w in weights.items():
        if task not in batch:
            raise ValueError(f"weights for task {task!r}, which the batch does not hold")
        n = count_points(batch[task])
        if jnp.shape(w) != (n,):
            raise ValueError(f"task {task!r} has {n} points but weights of shape "
                             f"{jnp.shape(w)}")
    return dict(batch) | {WEIGHTS_KEY: dict(weights)}


class PointWeightedLosses(eqx.Module):
    """Losses weighted per point by fixed weights carried in the batch (see
    `point_weighted_losses`)."""

    losses: Losses

    def pointwise(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Array]:
        """{task: (N_t,)}: w_i r_i^2 (w from the batch, no gradient) or r_i^2."""
        weights = batch.get(WEIGHTS_KEY, {})
        unknown = sorted(set(weights) - set(self.losses.terms))
        if unknown:
            raise ValueError(f"point weights for unknown tasks {unknown}")
        out = {}
        for task, p in self.losses.pointwise(model, batch).items():
            if task in weights:
                w = jax.lax.stop_gradient(jnp.asarray(weights[task]))
                if w.shape != p.shape:
                    raise ValueError(f"task {task!r} has {p.shape[0]} points but weights of "
                                     f"shape {w.shape}")
                p = w.astype(p.dtype) * p
            out[task] = p
        return out

    def __call__(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Float[Array, ""]]:
        """{task: scalar}: the mean of the weighted per-point terms."""
        return {t: jnp.mean(v) for t, v in self.pointwise(model, batch).items()}


def point_weighted_losses(losses: Any) -> PointWeightedLosses:
    """L_t = (1/N_t) sum_i w_i r_i^2 with fixed weights w from `batch["point_weights"][t]`.

    Tasks without weights keep their plain mean; the weights get no gradient. Works with
    `pinnx.fit` (the weights are part of the batch) and with any per-point weights, such
    as those of `grad_norm_point_update`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(pde=pinnx.residuals.pde(lambda u, x: u(x) - 1.0))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 5)[:, None]}
        >>> from pinnx.pointwise import point_weighted_losses, with_point_weights
        >>> weighted = point_weighted_losses(losses)
        >>> doubled = with_point_weights(batch, {"pde": jnp.full(5, 2.0)})
        >>> bool(jnp.allclose(weighted(net, doubled)["pde"], 2 * losses(net, batch)["pde"]))
        True

        With refreshed gradient-norm weights: `with_point_weights(batch,
        grad_norm_point_update(losses, net, batch, tasks=("pde",)))`.
    """
    return PointWeightedLosses(_check_losses(losses, "point_weighted_losses"))
