"""Regime of a conflict profile: directional, magnitude, mixed or benign.

The per-loss-adapter paper's diagnostic sorts conflict into persistent directional conflict
(cure: loss-indexed parameter subspaces, plus reweighting), magnitude imbalance (cure:
scalar reweighting) and low or transient conflict (cure: none). Its thresholds are not
public; the ones here are pinnx's own, stated in `Thresholds` and justified by the
measurements in docs/diagnostics.md.
"""

import dataclasses

from ._stats import Summary

__all__ = ["Thresholds", "Classification", "classify", "REGIMES"]

REGIMES = ("directional", "magnitude", "mixed", "benign")
"""The regimes `classify` returns."""


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The decision rule of `classify` (pinnx's choice, see docs/diagnostics.md).

    A pair of tasks is in *persistent directional conflict* when its cosine is negative on
    at least `conflict_fraction` of the recorded steps AND it stays negative for a run of
    at least `run_fraction` of the window (and more than one record): conflict that comes
    back every other step but never lasts (alternating signs) is transient, not persistent.
    A task is *magnitude-imbalanced* when the median of max_j ||g_j|| / ||g_k|| is at
    least `imbalance` (its gradient is an order of magnitude weaker than the strongest).

    Attributes:
        conflict_fraction: minimum fraction of steps with negative cosine (default 0.3).
        run_fraction: minimum longest conflicting run, as a fraction of the window
            (default 0.05, i.e. 50 steps of a 1000-step profile).
        imbalance: minimum median norm ratio to the largest task (default 10).
    """

    conflict_fraction: float = 0.3
    run_fraction: float = 0.05
    imbalance: float = 10.0

    def __post_init__(self):
        if not 0 < self.conflict_fraction <= 1 or not 0 < self.run_fraction <= 1:
            raise ValueError("conflict_fraction and run_fraction must lie in (0, 1], got "
                             f"{self.conflict_fraction} and {self.run_fraction}")
        if not self.imbalance > 1:
            raise ValueError(f"imbalance must be > 1, got {self.imbalance}")


@dataclasses.dataclass(frozen=True)
class Classification:
    """The regime and the statistics that put the profile there.

    Attributes:
        regime: one of `REGIMES`.
        directional_pairs: pairs in persistent directional conflict.
        imbalanced_tasks: tasks whose median norm ratio reaches the threshold.
        evidence: one line per deciding statistic (met or not), for the report.
        thresholds: the rule applied.
    """

    regime: str
    directional_pairs: tuple[tuple[str, str], ...]
    imbalanced_tasks: tuple[str, ...]
    evidence: tuple[str, ...]
    thresholds: Thresholds


def classify(summary: Summary, thresholds: Thresholds | None = None) -> Classification:
    """Classify a profile summary as directional, magnitude, mixed (both) or benign.

    Args:
        summary: from `summarize` (or `ConflictReport.summary`).
        thresholds: the rule; default `Thresholds()`.

    Returns:
        A `Classification`.

    Examples:
        Orthogonal rows, the "pde" gradient 40 times the "bc" one at every record:

        >>> import numpy as np
        >>> from pinnx.diagnostics import classify, summarize
        >>> norms, cos = np.tile([1.0, 40.0], (100, 1)), np.tile(np.eye(2), (100, 1, 1))
        >>> classify(summarize(norms, cos, ("bc", "pde"))).regime
        'magnitude'

    References:
        Kim, N'guessan. Per-loss adapters for PINNs (2026), "Diagnostics": persistent
        directional conflict -> adapters (+ reweighting); magnitude imbalance -> scalar
        reweighting; low/transient -> nothing.
    """
    th = thresholds or Thresholds()
    min_run = th.run_fraction * summary.window
    evidence, directional = [], []
    for (a, b), p in summary.pairs.items():
        persistent = (p.frac_negative >= th.conflict_fraction and p.longest_run >= min_run
                      and p.longest_run > summary.record_every)
        if persistent:
            directional.append((a, b))
        evidence.append(
            f"{a}/{b}: cos < 0 on {p.frac_negative:.0%} of steps "
            f"({'>=' if p.frac_negative >= th.conflict_fraction else '<'} "
            f"{th.conflict_fraction:.0%}), longest run {p.longest_run} steps "
            f"({'>=' if p.longest_run >= min_run else '<'} {min_run:g}), "
            f"median cos {p.median_cos:+.2f}, trend {p.cos_trend:+.2f}"
            + (" -> persistent" if persistent else ""))
    imbalanced = []
    for name, s in summary.per_task.items():
        if s.median_ratio == 1.0 and s.p90_ratio == 1.0:
            continue  # always the largest gradient: the reference, not a candidate
        hit = s.median_ratio >= th.imbalance
        if hit:
            imbalanced.append(name)
        evidence.append(
            f"{name}: max norm / own norm median {s.median_ratio:.3g} "
            f"({'>=' if hit else '<'} {th.imbalance:g}), p90 {s.p90_ratio:.3g}, "
            f"log10 trend {s.log10_ratio_trend:+.2f}" + (" -> imbalanced" if hit else ""))
    regime = {(True, True): "mixed", (True, False): "directional",
              (False, True): "magnitude", (False, False): "benign"}[
        (bool(directional), bool(imbalanced))]
    return Classification(regime, tuple(directional), tuple(imbalanced), tuple(evidence), th)
