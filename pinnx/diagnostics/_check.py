"""Check mode: train the recommended recipe and the plain baseline, report which is ahead."""

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import optax

from ..combine import lra
from ..combine import sum as sum_rows
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
        trained: what the recommended run trained (the recipe, or the part of it that
            applies to the profiled model).
    """

    steps: int
    metric: str
    baseline: float
    recommended: float
    ahead: str
    recipe: str
    wall_time: tuple[float, float]
    trained: str = ""

    def __str__(self) -> str:
        if self.ahead == "same recipe":
            return (f"check: the recipe is plain Adam; baseline {self.metric} "
                    f"{self.baseline:.3e} after {self.steps} steps")
        ratio = self.recommended / self.baseline if self.baseline else float("nan")
        return (f"check ({self.steps} steps each, {self.metric}, lower is better): "
                f"baseline Adam {self.baseline:.3e}, recommended {self.recommended:.3e} "
                f"(ratio {ratio:.2f}) -> {self.ahead} ahead"
                + (f"\n  recommended run: {self.trained}" if self.trained else ""))


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

    For directional conflict the recommended run wraps the profiled model in per-loss
    adapters (`Recommendation.prepare`: `PerLossAdapters` of rank 4, `adapter_losses`) and
    trains `route(lra | sum, own=adapter_owners) | adam`; its metric is that of `model(x)`,
    the main task's forward (trunk + its adapter). A model the adapters cannot wrap (not a
    `pinnx.nn.MLP` of plain linear layers) gets the LRA reweighting alone, and
    `CheckResult.trained` says so.

    Args:
        report: a `ConflictReport` from `profile`.
        steps: training steps of each run.
        error_fn: `error_fn(model) -> float`, e.g. `problem.relative_l2`; default: the mean
            summed training loss over the last 10% of steps.

    Returns:
        A `CheckResult` (print it), e.g.
        `print(report.check(steps=2000, error_fn=problem.relative_l2))` after
        `report = pinnx.diagnostics.profile(...)` (two training runs: not run here).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not report.setup:
        raise ValueError("this report has no training set-up (was it built by profile()?)")
    s = report.setup
    rec = report.recommendation
    metric = "relative L2 error" if error_fn is not None else "summed loss (last 10%)"

    def train(opt, losses, model):
        model, _, h = fit(losses, model, opt, s["data"], steps=steps, key=s["key"],
                          resample_every=s["resample_every"], log_every=steps,
                          progress=False)
        return _metric(model, h, error_fn), h.wall_time

    base, t_base = train(optax.adam(rec.learning_rate), s["losses"], s["model"])
    if not rec.needs_check:
        return CheckResult(steps, metric, base, base, "same recipe", rec.code, (t_base, 0.0),
                           "plain Adam")
    if rec.adapters and rec.can_prepare(s["model"]):
        losses, model = rec.prepare(s["losses"], s["model"])
        trained = (f"per-loss adapters (rank {model.rank}) + LRA + Adam; metric of model(x) "
                   f"= trunk + {model.main} adapter")
        opt = rec.optimizer()
    else:
        losses, model = s["losses"], s["model"]
        trained = "LRA + Adam"
        if rec.adapters:
            trained += (f" only: per-loss adapters need a pinnx.nn.MLP of plain linear "
                        f"layers, not {type(model).__name__}")
        opt = lra(main=rec.main) | sum_rows() | optax.adam(rec.learning_rate)
    ours, t_ours = train(opt, losses, model)
    ahead = "recommended" if ours < base else "baseline"
    return CheckResult(steps, metric, base, ours, ahead, rec.code, (t_base, t_ours),
                       trained)
