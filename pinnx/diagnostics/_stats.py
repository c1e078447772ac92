"""Summary statistics of a conflict profile: persistence, magnitude imbalance, trends.

Everything here is plain NumPy on recorded traces (host side, after training):
`cos` is (T, K, K) pairwise cosines and `norms` is (T, K) per-task gradient norms at the T
recorded steps. Non-finite records (a stopped run) are dropped before summarising.
"""

import dataclasses

import numpy as np

__all__ = ["PairStats", "TaskStats", "Summary", "summarize", "runs", "trend", "imbalance"]

NEAR_ZERO = 0.1
"""|cos| below this counts as "near zero" (gradient orthogonality, as ModSync measures it)."""


def runs(flags: np.ndarray) -> np.ndarray:
    """Lengths of the maximal runs of consecutive True entries of a 1-D boolean array.

    Examples:
        >>> import numpy as np
        >>> from pinnx.diagnostics import runs
        >>> runs(np.array([True, True, False, True]))
        array([2, 1])
    """
    flags = np.asarray(flags, bool)
    if flags.ndim != 1:
        raise ValueError(f"runs expects a 1-D array of flags, got shape {flags.shape}")
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def trend(steps: np.ndarray, values: np.ndarray) -> float:
    """Least-squares change of `values` across the window: slope * (last step - first step).

    0 for fewer than two points. Positive: rising over training.
    """
    steps = np.asarray(steps, np.float64)
    values = np.asarray(values, np.float64)
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(f"trend needs two 1-D arrays of one length, got {steps.shape} and "
                         f"{values.shape}")
    if len(steps) < 2 or np.ptp(steps) == 0:
        return 0.0
    slope = np.polyfit(steps, values, 1)[0]
    return float(slope * (steps[-1] - steps[0]))


@dataclasses.dataclass(frozen=True)
class PairStats:
    """Directional statistics of one pair of tasks over the recorded window.

    Attributes:
        frac_negative: fraction of recorded steps with cos < 0.
        longest_run: longest run of consecutive recorded steps with cos < 0, in steps
            (records times the recording interval).
        mean_run: mean length of those runs, in steps (0 if none).
        mean_cos, median_cos: over the window.
        cos_trend: fitted change of the cosine across the window (`trend`).
        frac_near_zero: fraction of steps with |cos| < `NEAR_ZERO` (orthogonality).
        mean_abs_cos: mean |cos| (ModSync's "cosine near zero over training").
    """

    frac_negative: float
    longest_run: int
    mean_run: float
    mean_cos: float
    median_cos: float
    cos_trend: float
    frac_near_zero: float
    mean_abs_cos: float


@dataclasses.dataclass(frozen=True)
class TaskStats:
    """Magnitude statistics of one task: its imbalance ratio max_j ||g_j|| / ||g_k||.

    The ratio is >= 1 (1 at steps where this task has the largest gradient).

    Attributes:
        median_ratio, p90_ratio: median and 90th percentile of the ratio over the window.
        log10_ratio_trend: fitted change of log10(ratio) across the window.
        median_norm: median gradient norm.
    """

    median_ratio: float
    p90_ratio: float
    log10_ratio_trend: float
    median_norm: float


@dataclasses.dataclass(frozen=True)
class Summary:
    """The statistics `classify` reads: per pair, per task, and the window they cover."""

    tasks: tuple[str, ...]
    pairs: dict[tuple[str, str], PairStats]
    per_task: dict[str, TaskStats]
    records: int
    window: int
    record_every: int


def _check(norms: np.ndarray, cos: np.ndarray, tasks: tuple[str, ...]) -> None:
    k = len(tasks)
    if norms.ndim != 2 or norms.shape[1] != k:
        raise ValueError(f"norms must be (steps, {k}) for {k} tasks, got {norms.shape}")
    if cos.shape != (norms.shape[0], k, k):
        raise ValueError(f"cos must be ({norms.shape[0]}, {k}, {k}) to match norms, got "
                         f"{cos.shape}")
    if k < 2:
        raise ValueError(f"a conflict profile needs at least 2 tasks, got {k}")


def summarize(
    norms: np.ndarray, cos: np.ndarray, tasks: tuple[str, ...], record_every: int = 1
) -> Summary:
    """Per-pair and per-task statistics of recorded gradient norms and cosines.

    Args:
        norms: (T, K) per-task gradient norms at T recorded steps.
        cos: (T, K, K) pairwise cosines at the same steps.
        tasks: the K task names, in row order.
        record_every: steps between records (run lengths and the window are in steps).

    Returns:
        A `Summary`. Records with any non-finite value are dropped first.

    Examples:
        100 records of orthogonal rows, the "pde" gradient 40 times the "bc" one:

        >>> import numpy as np
        >>> from pinnx.diagnostics import summarize
        >>> norms = np.tile([1.0, 40.0], (100, 1))      # (T, K)
        >>> cos = np.tile(np.eye(2), (100, 1, 1))       # (T, K, K)
        >>> s = summarize(norms, cos, ("bc", "pde"))
        >>> s.pairs["bc", "pde"].frac_negative, s.per_task["bc"].median_ratio
        (0.0, 40.0)

    References:
        Persistence statistics: the conflict profile of the per-loss-adapter paper
        (Kim & N'guessan 2026, "Diagnostics"); orthogonality: ModSync (Kong et al. 2026).
    """
    norms = np.asarray(norms, np.float64)
    cos = np.asarray(cos, np.float64)
    tasks = tuple(tasks)
    _check(norms, cos, tasks)
    finite = np.all(np.isfinite(norms), axis=1) & np.all(np.isfinite(cos), axis=(1, 2))
    norms, cos = norms[finite], cos[finite]
    t = len(norms)
    if t == 0:
        raise ValueError("no finite records to summarise")
    steps = np.arange(t, dtype=np.float64) * record_every
    pairs = {}
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            if i >= j:
                continue
            c = cos[:, i, j]
            r = runs(c < 0) * record_every
            pairs[a, b] = PairStats(
                frac_negative=float(np.mean(c < 0)),
                longest_run=int(r.max()) if len(r) else 0,
                mean_run=float(r.mean()) if len(r) else 0.0,
                mean_cos=float(np.mean(c)),
                median_cos=float(np.median(c)),
                cos_trend=trend(steps, c),
                frac_near_zero=float(np.mean(np.abs(c) < NEAR_ZERO)),
                mean_abs_cos=float(np.mean(np.abs(c))),
            )
    ratio = imbalance(norms)
    per_task = {
        name: TaskStats(
            median_ratio=float(np.median(ratio[:, i])),
            p90_ratio=float(np.percentile(ratio[:, i], 90)),
            log10_ratio_trend=trend(steps, np.log10(ratio[:, i])),
            median_norm=float(np.median(norms[:, i])),
        )
        for i, name in enumerate(tasks)
    }
    return Summary(tasks, pairs, per_task, t, t * record_every, record_every)


def imbalance(norms: np.ndarray) -> np.ndarray:
    """Per step and task, max_j ||g_j|| / ||g_k||: (T, K) -> (T, K), >= 1.

    A zero-norm task gets +inf (an infinitely weak gradient); an all-zero step gets 1.
    """
    norms = np.asarray(norms, np.float64)
    peak = norms.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(norms > 0, peak / np.where(norms > 0, norms, 1), np.inf)
    return np.where(peak > 0, ratio, 1.0)
