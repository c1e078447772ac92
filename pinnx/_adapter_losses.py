"""Loss functions for per-loss adapter models: loss k through trunk + adapter k.

`pinnx.nn.PerLossAdapters` is the model (a shared trunk plus one LoRA adapter per loss);
`adapter_losses` evaluates loss k on its forward `model.for_task(k)`, so `pinnx.task_grads`
and `pinnx.fit` work unchanged, and `cross_losses` measures every loss on every forward, a
check from training data alone that the adapters have not pulled the forwards apart (see
`pinnx.nn.PerLossAdapters` for why the main task's forward is the solution). Both are
exported by `pinnx.residuals`.

References:
    Kim, N'guessan. "Per-Loss Adapters for Gradient Conflict in Physics-Informed Neural
    Networks". 2026. https://arxiv.org/abs/2605.10136
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .nn import PerLossAdapters
from .residuals import Losses

__all__ = ["AdapterLosses", "adapter_losses", "cross_losses"]


def _check_model(model: Any, names: Sequence[str], who: str) -> None:
    if not isinstance(model, PerLossAdapters):
        raise ValueError(f"{who} needs a pinnx.nn.PerLossAdapters model, got "
                         f"{type(model).__name__}")
    if tuple(sorted(names)) != model.tasks:
        raise ValueError(f"{who}: the losses have tasks {tuple(sorted(names))} but the model "
                         f"has adapters for {model.tasks}")


class AdapterLosses(eqx.Module):
    """A loss function whose task k is evaluated on `model.for_task(k)`.

    `adapter_losses(losses)(model, batch)` is `{k: losses(model.for_task(k), batch)[k]}`, a
    plain loss dictionary, so `pinnx.task_grads` and `pinnx.fit` use it unchanged. Loss k
    then depends on the trunk and adapter k only: the per-task gradient rows j != k are zero
    on adapter k. A `pinnx.residuals.Losses` is evaluated one term per task; any other loss
    function is called once per task (inside `jax.jit`, XLA drops the unused entries).
    """

    losses: Callable[[Any, Any], Mapping[str, Array]]

    def _terms(self, model: Any, who: str) -> dict:
        if not isinstance(self.losses, Losses):
            raise ValueError(f"AdapterLosses.{who} needs a pinnx.residuals.Losses, got "
                             f"{type(self.losses).__name__}")
        _check_model(model, tuple(self.losses.terms), f"AdapterLosses.{who}")
        return {k: self.losses.terms[k] for k in model.tasks}

    def residuals(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Array]:
        """Raw per-point residuals of each task on its own forward: {task: (N,) or (N, m)}."""
        terms = self._terms(model, "residuals")
        return {k: Losses({k: t}).residuals(model.for_task(k), batch)[k]
                for k, t in terms.items()}

    def pointwise(self, model: Any, batch: Mapping[str, Any]
                  ) -> dict[str, Float[Array, " N"]]:
        """Squared residual per point of each task on its own forward: {task: (N,)}."""
        terms = self._terms(model, "pointwise")
        return {k: Losses({k: t}).pointwise(model.for_task(k), batch)[k]
                for k, t in terms.items()}

    def __call__(self, model: Any, batch: Any) -> dict[str, Float[Array, ""]]:
        """Loss k on forward k, for every task: {task: scalar}."""
        if isinstance(self.losses, Losses):
            return {k: jnp.mean(p) for k, p in self.pointwise(model, batch).items()}
        if not isinstance(model, PerLossAdapters):
            raise ValueError("adapter_losses needs a pinnx.nn.PerLossAdapters model, got "
                             f"{type(model).__name__}")
        out = {}
        for k in model.tasks:
            values = self.losses(model.for_task(k), batch)
            if not isinstance(values, Mapping):
                raise ValueError("the wrapped loss function must return a dict, got "
                                 f"{type(values).__name__}")
            _check_model(model, tuple(values), "adapter_losses")
            out[k] = values[k]
        return out


def adapter_losses(losses: Any) -> AdapterLosses:
    """Wrap a loss function so that loss k runs through trunk + adapter k.

    Args:
        losses: `losses(model, batch) -> dict[str, scalar]` written for a plain field model
            (e.g. `problem.losses`, a `pinnx.residuals.Losses`); its task names must be the
            model's adapter names.

    Returns:
        An `AdapterLosses`: `(PerLossAdapters, batch) -> dict[str, scalar]`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(bc=pinnx.residuals.dirichlet(0.0),
        ...                                 pde=pinnx.residuals.pde(lambda u, x: u(x) - 1.0))
        >>> batch = {"bc": jnp.ones((3, 2)), "pde": jnp.full((4, 2), 0.5)}
        >>> trunk = pinnx.nn.MLP(2, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> model = pinnx.nn.PerLossAdapters(trunk, ("bc", "pde"), key=jax.random.key(1))
        >>> loss = pinnx.residuals.adapter_losses(losses)
        >>> values, grads = pinnx.task_grads(loss, model, batch)
        >>> g = grads.adapters["bc"].b[0]   # rows (bc, pde) on the bc adapter's first B
        >>> bool(jnp.any(g[0] != 0)), bool(jnp.all(g[1] == 0))   # only loss bc reaches it
        (True, True)

    References:
        Kim, N'guessan. "Per-Loss Adapters for Gradient Conflict in Physics-Informed Neural
        Networks". 2026. https://arxiv.org/abs/2605.10136
    """
    if not callable(losses):
        raise ValueError(f"adapter_losses needs a loss function, got {type(losses).__name__}")
    return AdapterLosses(losses)


def cross_losses(
    losses: Callable[[Any, Any], Mapping[str, Array]], model: Any, batch: Any,
) -> tuple[dict[str, Float[Array, ""]], dict[str, dict[str, Float[Array, ""]]]]:
    """Every loss on every forward: the trunk alone's, and {forward k: {task: loss}}.

    A diagnostic that needs training data only: `per_forward[model.main]` holds every loss
    of the solution forward; how far `per_forward[k][j]` (j != k) exceeds
    `per_forward[j][j]` says how far the adapters have pulled the forwards apart.

    Args:
        losses: the plain loss function (not wrapped by `adapter_losses`).
        model: a `PerLossAdapters`.
        batch: the batch `losses` takes.

    Returns:
        `(trunk, per_forward)`: `losses(model.for_task(None), batch)` and
        `{k: losses(model.for_task(k), batch)}` for every task k.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(bc=pinnx.residuals.dirichlet(0.0),
        ...                                 pde=pinnx.residuals.pde(lambda u, x: u(x) - 1.0))
        >>> batch = {"bc": jnp.zeros((3, 2)), "pde": jnp.full((4, 2), 0.5)}
        >>> trunk = pinnx.nn.MLP(2, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> model = pinnx.nn.PerLossAdapters(trunk, ("bc", "pde"), key=jax.random.key(1))
        >>> trunk_losses, per_forward = pinnx.residuals.cross_losses(losses, model, batch)
        >>> sorted(per_forward), sorted(per_forward["pde"])   # forward -> every loss on it
        (['bc', 'pde'], ['bc', 'pde'])
        >>> float(per_forward["pde"]["bc"]) == float(trunk_losses["bc"])   # B = 0 at first
        True
    """
    if not isinstance(model, PerLossAdapters):
        raise ValueError(f"cross_losses needs a pinnx.nn.PerLossAdapters model, got "
                         f"{type(model).__name__}")
    return (dict(losses(model.for_task(None), batch)),
            {k: dict(losses(model.for_task(k), batch)) for k in model.tasks})
