"""The recipe for a regime: pinnx code to paste, and the pieces it builds."""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import optax
from jaxtyping import PRNGKeyArray

from ..combine import lra, route
from ..combine import sum as sum_rows
from ..nn import MLP, PerLossAdapters, adapter_owners
from ..residuals import adapter_losses

__all__ = ["Recommendation", "recommend", "ADAPTER_RANK"]

ADAPTER_RANK = 4  # the recipe's adapter rank (the `PerLossAdapters` default; not tuned)

_ADAPTER_NOTE = (
    "# Persistent directional conflict: give each loss its own parameter subspace.\n"
    "# Per-loss adapters (Kim & N'guessan 2026): a shared trunk (your MLP) plus one low-rank\n"
    "# adapter per loss; loss k runs through trunk + adapter k and trains adapter k alone,\n"
    "# LRA reweights the trunk's gradients. model(x) (trunk + {main} adapter) is the\n"
    "# solution; check pinnx.residuals.cross_losses(losses, model, batch) after training.\n"
)


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """What to do about a regime.

    Attributes:
        regime: the regime it answers.
        summary: one line.
        code: pinnx code to paste (assumes `import jax, optax, pinnx`, and for the adapter
            recipe a `model` (a `pinnx.nn.MLP`) and a `losses` function in scope).
        main: the reference task of the reweighting (None for plain Adam).
        learning_rate: the learning rate in `code`.
        adapters: whether the recipe wraps the model in per-loss adapters.
        tasks: the task names, in row order.
    """

    regime: str
    summary: str
    code: str
    main: str | None
    learning_rate: float
    adapters: bool = False
    tasks: tuple[str, ...] = ()

    def optimizer(self) -> optax.GradientTransformation:
        """The optimizer `code` builds: plain Adam, LRA + Adam, or, with adapters,
        `route(lra | sum, own=adapter_owners) | adam`."""
        if self.main is None:
            return optax.adam(self.learning_rate)
        weighted = lra(main=self.main) | sum_rows()
        if self.adapters:
            return route(weighted, own=adapter_owners) | optax.adam(self.learning_rate)
        return weighted | optax.adam(self.learning_rate)

    def prepare(self, losses: Callable[[Any, Any], Any], model: Any,
                key: PRNGKeyArray | None = None) -> tuple[Callable[[Any, Any], Any], Any]:
        """The `(losses, model)` that `code` trains: unchanged, or, for the adapter recipe,
        `(adapter_losses(losses), PerLossAdapters(model, tasks, rank=4, main=main))`.

        Args:
            losses: the profiled loss function.
            model: the profiled model; the adapter recipe needs a `pinnx.nn.MLP` of plain
                linear layers (it raises a ValueError otherwise: see `can_prepare`).
            key: PRNG key of the adapters' A factors (default `jax.random.key(1)`, as in
                `code`).
        """
        if not self.adapters:
            return losses, model
        key = jax.random.key(1) if key is None else key
        wrapped = PerLossAdapters(model, self.tasks, rank=ADAPTER_RANK, main=self.main,
                                  key=key)
        return adapter_losses(losses), wrapped

    @staticmethod
    def can_prepare(model: Any) -> bool:
        """Whether the adapter recipe can wrap `model` (a `pinnx.nn.MLP` without rwf=)."""
        import equinox as eqx

        return isinstance(model, MLP) and all(isinstance(layer, eqx.nn.Linear)
                                              for layer in model.layers)

    @property
    def needs_check(self) -> bool:
        """False where the recipe is the plain baseline itself."""
        return self.main is not None


def _main_task(tasks: Sequence[str], median_norms: dict[str, float]) -> str:
    """LRA's reference task: "pde" when present, else the task with the largest gradient."""
    if "pde" in tasks:
        return "pde"
    return max(tasks, key=lambda t: median_norms[t])


def recommend(regime: str, tasks: Sequence[str], median_norms: dict[str, float],
              learning_rate: float = 1e-3) -> Recommendation:
    """The recipe for a regime, as code and as pinnx pieces.

    - directional / mixed: per-loss adapters (`pinnx.nn.PerLossAdapters` of rank 4 on the
      user's MLP, `pinnx.residuals.adapter_losses`) with LRA reweighting of the shared trunk and
      Adam: `pinnx.route(pinnx.lra(main=...) | pinnx.sum(), own=pinnx.nn.adapter_owners)
      | optax.adam(lr)`;
    - magnitude: scalar reweighting, `pinnx.lra(main=...) | pinnx.sum() | optax.adam(lr)`
      (grad-norm weights as the alternative, in a comment);
    - benign: plain Adam on the summed loss, `optax.adam(lr)`.

    Args:
        regime: "directional", "magnitude", "mixed" or "benign".
        tasks: task names, in row order.
        median_norms: median gradient norm per task (picks LRA's main task, and the
            adapter model's solution forward, when no task is called "pde").
        learning_rate: Adam's learning rate in the recipe.

    Examples:
        >>> from pinnx.diagnostics import recommend
        >>> rec = recommend("magnitude", ("bc", "pde"), {"bc": 1.0, "pde": 40.0})
        >>> print(rec.code)
        opt = pinnx.lra(main="pde") | pinnx.sum() | optax.adam(0.001)
        # alternative: pinnx.grad_norm_weights(every=100) | pinnx.sum() | optax.adam(0.001)

    References:
        Kim, N'guessan 2026 (per-loss adapters); Wang, Teng, Perdikaris, SISC 2021 (LRA);
        Wang et al. 2023 (grad-norm weights).
    """
    tasks = tuple(tasks)
    if regime == "benign":
        return Recommendation(
            regime, "low or transient conflict: nothing to fix, train plain Adam",
            f"opt = optax.adam({learning_rate!r})", None, learning_rate, False, tasks)
    main = _main_task(tasks, median_norms)
    weighting = f'pinnx.lra(main="{main}") | pinnx.sum()'
    if regime == "magnitude":
        return Recommendation(
            regime, "magnitude imbalance: scalar reweighting (LRA) + Adam",
            f"opt = {weighting} | optax.adam({learning_rate!r})\n"
            "# alternative: pinnx.grad_norm_weights(every=100) | pinnx.sum() | "
            f"optax.adam({learning_rate!r})", main, learning_rate, False, tasks)
    if regime in ("directional", "mixed"):
        main_arg = "" if main == "pde" else f', main="{main}"'
        code = (
            _ADAPTER_NOTE.format(main=main)
            + f"model = pinnx.nn.PerLossAdapters(model, {tasks!r}, rank={ADAPTER_RANK}"
            f"{main_arg}, key=jax.random.key(1))\n"
            "losses = pinnx.residuals.adapter_losses(losses)\n"
            f"opt = pinnx.route({weighting}, own=pinnx.nn.adapter_owners) | "
            f"optax.adam({learning_rate!r})"
        )
        return Recommendation(
            regime, "persistent directional conflict: per-loss adapters + LRA + Adam",
            code, main, learning_rate, True, tasks)
    raise ValueError(f"unknown regime {regime!r}; expected directional, magnitude, mixed or "
                     "benign")
