"""Conflict diagnostics: profile the plain PINN, classify its conflict, recommend a recipe.

The diagnostic-first workflow of the per-loss-adapter paper (Kim & N'guessan 2026):

1. `profile` trains the unmodified PINN (summed loss, Adam) and records per-task gradient
   norms and pairwise cosines at every step, inside the compiled step;
2. `summarize` computes persistence (fraction of conflicting steps, run lengths),
   magnitude imbalance (norm ratios) and trends, plus ModSync's orthogonality measures;
3. `classify` names the regime: directional, magnitude, mixed or benign (`Thresholds`);
4. `recommend` gives the recipe as pinnx code; `check` trains it against plain Adam.

`pinnx diagnose <problem>` runs all of it from the command line.
"""

from ._check import CheckResult, check
from ._classify import REGIMES, Classification, Thresholds, classify
from ._modularity import per_sample_interaction
from ._plot import plot_report
from ._profile import ConflictReport, overhead, profile
from ._recommend import Recommendation, recommend
from ._stats import PairStats, Summary, TaskStats, imbalance, runs, summarize, trend

__all__ = [
    "REGIMES",
    "CheckResult",
    "Classification",
    "ConflictReport",
    "PairStats",
    "Recommendation",
    "Summary",
    "TaskStats",
    "Thresholds",
    "check",
    "classify",
    "imbalance",
    "overhead",
    "per_sample_interaction",
    "plot_report",
    "profile",
    "recommend",
    "runs",
    "summarize",
    "trend",
]
