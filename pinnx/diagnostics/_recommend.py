"""The recipe for a regime: pinnx code to paste, and the optimizer it builds."""

import dataclasses
from collections.abc import Sequence

import optax

from ..combine import lra
from ..combine import sum as sum_rows

__all__ = ["Recommendation", "recommend"]

_ADAPTER_NOTE = (
    "# Persistent directional conflict: give each loss its own parameter subspace.\n"
    "# Per-loss adapters (a shared trunk plus one low-rank adapter per loss, Kim & N'guessan\n"
    "# 2026) are being added to pinnx (pinnx.nn adapters + a routing transform) and are not\n"
    "# available yet: once they are, wrap the model in them and keep the chain below.\n"
)


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """What to do about a regime.

    Attributes:
        regime: the regime it answers.
        summary: one line.
        code: pinnx code to paste (assumes `import optax, pinnx`).
        main: the reference task of the reweighting (None for plain Adam).
        learning_rate: the learning rate in `code`.
    """

    regime: str
    summary: str
    code: str
    main: str | None
    learning_rate: float

    def optimizer(self) -> optax.GradientTransformation:
        """The optimizer `code` builds (the runnable part: without adapters)."""
        if self.main is None:
            return optax.adam(self.learning_rate)
        return lra(main=self.main) | sum_rows() | optax.adam(self.learning_rate)

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
    """The recipe for a regime, as code and as an optimizer.

    - directional / mixed: per-loss adapters (not in pinnx yet: named in a comment) with
      LRA reweighting and Adam: `pinnx.lra(main=...) | pinnx.sum() | optax.adam(lr)`;
    - magnitude: scalar reweighting, the same LRA chain (grad-norm weights as the
      alternative, in a comment);
    - benign: plain Adam on the summed loss, `optax.adam(lr)`.

    Args:
        regime: "directional", "magnitude", "mixed" or "benign".
        tasks: task names, in row order.
        median_norms: median gradient norm per task (picks LRA's main task when no task
            is called "pde").
        learning_rate: Adam's learning rate in the recipe.

    Example:
        >>> rec = recommend("magnitude", ("bc", "pde"), {"bc": 1.0, "pde": 40.0})
        >>> print(rec.code)
        opt = pinnx.lra(main="pde") | pinnx.sum() | optax.adam(0.001)

    References:
        Kim, N'guessan 2026 (per-loss adapters); Wang, Teng, Perdikaris, SISC 2021 (LRA);
        Wang et al. 2023 (grad-norm weights).
    """
    if regime == "benign":
        return Recommendation(
            regime, "low or transient conflict: nothing to fix, train plain Adam",
            f"opt = optax.adam({learning_rate!r})", None, learning_rate)
    main = _main_task(tasks, median_norms)
    chain = f'opt = pinnx.lra(main="{main}") | pinnx.sum() | optax.adam({learning_rate!r})'
    if regime == "magnitude":
        return Recommendation(
            regime, "magnitude imbalance: scalar reweighting (LRA) + Adam",
            chain + "\n# alternative: pinnx.grad_norm_weights(every=100) | pinnx.sum() | "
            f"optax.adam({learning_rate!r})", main, learning_rate)
    if regime in ("directional", "mixed"):
        return Recommendation(
            regime, "persistent directional conflict: per-loss adapters + LRA + Adam",
            _ADAPTER_NOTE + chain, main, learning_rate)
    raise ValueError(f"unknown regime {regime!r}; expected directional, magnitude, mixed or "
                     "benign")
