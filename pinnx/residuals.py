"""Loss-dictionary builders: layer 1 of pinnx (physics -> losses).

A *term* turns the model and one batch entry into per-point residuals; `losses(...)` names
the terms (the names are the task names) and gives the loss function every other part of
pinnx consumes:

    losses = pinnx.residuals.losses(
        pde=pinnx.residuals.pde(burgers_residual),
        ic=pinnx.residuals.initial(lambda x: -jnp.sin(jnp.pi * x[0])),
        bc=pinnx.residuals.dirichlet(0.0),
    )
    losses(model, batch)            # {"bc": L_bc, "ic": L_ic, "pde": L_pde}, scalars
    losses.pointwise(model, batch)  # {"bc": (N_bc,), ...}: squared residual per point
    losses.residuals(model, batch)  # {"bc": (N_bc,) or (N_bc, m), ...}: raw residuals

The batch is a dict with one entry per task, under the task's name: an (N, d) array of
points (time last in space-time problems), or for `data` a pair (points, values). Each
loss is the mean over points of the squared residual, summed over components for vector
residuals. Functions given to the terms (`residual`, boundary and initial values) receive
one unbatched point x of shape (d,) — the full point, time included — and the field `u`
(the model, callable on one point); terms vmap them over the batch.

Loss functions of the method-specific networks of `pinnx.nn` live here too:
`adapter_losses` and `cross_losses` (per-loss adapters) and `sparsity_loss` (ModSync).
"""

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from . import operators
from ._modsync_training import sparsity_loss

__all__ = [
    "Losses",
    "Term",
    "losses",
    "pde",
    "dirichlet",
    "neumann",
    "periodic",
    "initial",
    "initial_velocity",
    "data",
    # loss functions of the method-specific networks of `pinnx.nn`
    "AdapterLosses",
    "adapter_losses",
    "cross_losses",
    "sparsity_loss",
]

Field = Callable[[Float[Array, " d"]], Float[Array, "..."]]
Value = float | Callable[[Float[Array, " d"]], Any]


class Term(eqx.Module):
    """Per-point residuals of one task: `term(model, points) -> (N,) or (N, m)`.

    Build terms with `pde`, `dirichlet`, `neumann`, `periodic`, `initial`,
    `initial_velocity` and `data`; or wrap your own `fn(model, x) -> () or (m,)` for one
    point as `Term(fn)`.
    """

    fn: Callable[[Any, Any], Array]
    paired: bool = eqx.field(static=True, default=False)

    def __call__(self, model: Any, points: Any) -> Float[Array, "points ..."]:
        if self.paired:
            x, y = points
            _check_points(x)
            r = jax.vmap(lambda p, v: self.fn(model, (p, v)))(x, y)
        else:
            _check_points(points)
            r = jax.vmap(lambda p: self.fn(model, p))(points)
        if r.ndim > 2:
            raise ValueError(
                f"a residual must be a scalar or a vector at each point, got shape "
                f"{r.shape[1:]} per point (did the residual function receive a batch "
                "instead of one point?)"
            )
        return r


def _check_points(points: Any) -> None:
    if jnp.ndim(points) != 2:
        raise ValueError(
            f"a batch entry must be an (N, d) array of points, got shape {jnp.shape(points)}"
        )


def _value(value: Value, x: Array) -> Any:
    return value(x) if callable(value) else value


def _scalar_or_vector(r: Array, what: str) -> Array:
    if jnp.ndim(r) > 1:
        raise ValueError(f"{what} must return a scalar or a vector per point, got shape "
                         f"{jnp.shape(r)}")
    return r


def pde(residual: Callable[[Field, Float[Array, " d"]], Array]) -> Term:
    """The residual of a differential equation, r(u, x), at interior points.

    Args:
        residual: `residual(u, x)` for one point x (d,), with `u` the field (call it, and
            differentiate it with `pinnx.operators`); returns () or (m,).

    Examples:
        >>> import jax.numpy as jnp, pinnx
        >>> def burgers(u, x):   # x = (x, t), time last
        ...     u0, ux, uxx = pinnx.operators.derivatives(u, x, 0, 2)
        ...     ut = pinnx.operators.time_derivative(u, x)
        ...     return ut + u0 * ux - (0.01 / jnp.pi) * uxx
        >>> term = pinnx.residuals.pde(burgers)
        >>> u = lambda x: x[0] * x[1]   # u = x t: residual x + x t^2
        >>> term(u, jnp.array([[1.0, 1.0], [2.0, 0.0]])).tolist()   # (N, d) points in
        [2.0, 2.0]
    """
    return Term(lambda model, x: _scalar_or_vector(residual(model, x), "the PDE residual"))


def dirichlet(value: Value = 0.0) -> Term:
    """Dirichlet condition u(x) = g(x): residual u(x) - g(x).

    Args:
        value: g, a constant or a function of the point x (d,).
    """
    return Term(lambda model, x: model(x) - _value(value, x))


def neumann(normal: Float[Array, " d"] | Callable[[Array], Array], value: Value = 0.0
            ) -> Term:
    """Neumann condition du/dn(x) = g(x): residual (grad u . n)(x) - g(x).

    The normal derivative is one forward-mode directional derivative (a `jax.jvp`).

    Args:
        normal: the outward normal: a fixed (d,) vector (e.g. `Box.normal(side)`) or a
            function of the point.
        value: g, a constant or a function of the point.
    """

    def fn(model, x):
        n = normal(x) if callable(normal) else jnp.asarray(normal, x.dtype)
        _, dudn = jax.jvp(model, (x,), (n,))
        return dudn - _value(value, x)

    return Term(fn)


def periodic(dim: int, period: float, derivatives: int = 0) -> Term:
    """Periodic condition along coordinate `dim`: u and its first `derivatives` derivatives
    along `dim` agree at x and x + period e_dim.

    Its batch entry holds points on the low face of the axis (e.g.
    `box.sample_boundary(key, n, sides="x-")`); the partner points are formed here.

    Args:
        dim: the periodic coordinate.
        period: the domain length along `dim`.
        derivatives: highest derivative order matched (0: values only).
    """
    if derivatives < 0:
        raise ValueError(f"derivatives must be >= 0, got {derivatives}")

    def fn(model, x):
        shift = jnp.zeros_like(x).at[dim].set(period)
        lo = operators.derivatives(model, x, dim, derivatives)
        hi = operators.derivatives(model, x + shift, dim, derivatives)
        return jnp.concatenate([jnp.ravel(a - b) for a, b in zip(lo, hi, strict=True)])

    return Term(fn)


def initial(value: Value) -> Term:
    """Initial condition u(x, t0) = u0(x): residual u(x) - u0(x) at points with t = t0.

    Args:
        value: u0, a constant or a function of the full point (space and time).
    """
    return Term(lambda model, x: model(x) - _value(value, x))


def initial_velocity(value: Value, time_dim: int = -1) -> Term:
    """Initial velocity u_t(x, t0) = v0(x): residual u_t(x) - v0(x) at points with t = t0.

    Args:
        value: v0, a constant or a function of the full point.
        time_dim: the time coordinate (last by pinnx convention).
    """
    return Term(
        lambda model, x: operators.time_derivative(model, x, time_dim=time_dim)
        - _value(value, x)
    )


def data() -> Term:
    """Data misfit u(x_i) - y_i; its batch entry is the pair (points (N, d), values (N,) or
    (N, m))."""
    return Term(lambda model, xy: model(xy[0]) - xy[1], paired=True)


class Losses(eqx.Module):
    """A PINN loss function: named terms, each evaluated on its own batch entry.

    Calling it gives `dict[str, scalar]` (mean squared residual per task), the form
    `pinnx.task_grads` and `pinnx.fit` consume.
    """

    terms: dict[str, Term]

    def residuals(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Array]:
        """Raw per-point residuals: {task: (N,) or (N, m)}."""
        out = {}
        for name, term in self.terms.items():
            if name not in batch:
                raise ValueError(
                    f"the batch has no entry {name!r} (the points of task {name!r}); it has "
                    f"{sorted(batch)}"
                )
            out[name] = term(model, batch[name])
        return out

    def pointwise(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Float[Array, " N"]]:
        """Squared residual per point, summed over components: {task: (N,)}."""
        return {
            name: jnp.sum(jnp.reshape(r**2, (r.shape[0], -1)), axis=1)
            for name, r in self.residuals(model, batch).items()
        }

    def __call__(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Float[Array, ""]]:
        """Mean squared residual per task: {task: scalar}."""
        return {name: jnp.mean(p) for name, p in self.pointwise(model, batch).items()}


def losses(terms: Mapping[str, Term] | None = None, **named: Term) -> Losses:
    """Name the terms of a PINN loss; the names are the task names.

    Args:
        terms: a dict from task name to `Term` (or give them as keyword arguments).

    Returns:
        A `Losses`: `losses(model, batch) -> dict[str, scalar]`.
    """
    all_terms = dict(terms or {}) | named
    if not all_terms:
        raise ValueError("losses() needs at least one term")
    for name, term in all_terms.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"task names must be non-empty strings, got {name!r}")
        if not isinstance(term, Term):
            raise ValueError(
                f"term {name!r} must be a pinnx.residuals.Term (e.g. pinnx.residuals.pde(f)), "
                f"got {type(term).__name__}"
            )
    return Losses(all_terms)


# The per-loss adapters' loss functions wrap a `Losses`: their module imports this one, so it
# is imported once `Losses` exists.
from ._adapter_losses import AdapterLosses, adapter_losses, cross_losses  # noqa: E402
