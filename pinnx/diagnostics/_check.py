"""Check mode: train the recommended recipe and the plain baseline, report which is ahead."""

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import optax

from ..train import fit

__all__ = ["CheckResult", "check"]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Outcome of `check`.

    Attributes:
        steps: training steps of each run.
        metric: what was compared ("relative L2 error" from `error_fn`, or "summed loss":
            the mean raw summed loss over the last 10% of steps); lower is better.
        baseline, recommended: the metric of plain Adam and of the recipe (equal and not
            trained twice when the recipe is plain Adam).
        ahead: "recommended", "baseline" or "same recipe".
        recipe: the recommended code.
        wall_time: seconds of (baseline, recommended) training.
    """

    steps: int
    metric: str
    baseline: float
    recommended: float
    ahead: str
    recipe: str
    wall_time: tuple[float, float]

    def __str__(self) -> str:
        if self.ahead == "same recipe":
            return (f"check: the recipe is plain Adam; baseline {self.metric} "
                    f"{self.baseline:.3e} after {self.steps} steps")
        ratio = self.recommended / self.baseline if self.baseline else float("nan")
        return (f"check ({self.steps} steps each, {self.metric}, lower is better): "
                f"baseline Adam {self.baseline:.3e}, recommended {self.recommended:.3e} "
                f"(ratio {ratio:.2f}) -> {self.ahead} ahead")


def _metric(model, history, error_fn) -> float:
    if error_fn is not None:
        return float(error_fn(model))
    total = history.total_loss
    tail = total[-max(1, len(total) // 10):]
    return float(np.mean(tail))


def check(report: Any, steps: int = 1000,
          error_fn: Callable[[Any], float] | None = None) -> CheckResult:
    """Train the recommended recipe and plain Adam for a short budget from the profile's
    initial model, key and data; report which is ahead.

    Only the runnable part of the recipe is trained: per-loss adapters are not in pinnx
    yet, so for directional conflict this checks the LRA reweighting alone.

    Args:
        report: a `ConflictReport` from `profile`.
        steps: training steps of each run.
        error_fn: `error_fn(model) -> float`, e.g. `problem.relative_l2`; default: the mean
            summed training loss over the last 10% of steps.

    Returns:
        A `CheckResult` (print it).

    Example:
        >>> print(report.check(steps=2000, error_fn=problem.relative_l2))
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not report.setup:
        raise ValueError("this report has no training set-up (was it built by profile()?)")
    s = report.setup
    rec = report.recommendation
    metric = "relative L2 error" if error_fn is not None else "summed loss (last 10%)"

    def train(opt):
        model, _, h = fit(s["losses"], s["model"], opt, s["data"], steps=steps, key=s["key"],
                          resample_every=s["resample_every"], log_every=steps,
                          progress=False)
        return _metric(model, h, error_fn), h.wall_time

    base, t_base = train(optax.adam(rec.learning_rate))
    if not rec.needs_check:
        return CheckResult(steps, metric, base, base, "same recipe", rec.code, (t_base, 0.0))
    ours, t_ours = train(rec.optimizer())
    ahead = "recommended" if ours < base else "baseline"
    return CheckResult(steps, metric, base, ours, ahead, rec.code, (t_base, t_ours))
