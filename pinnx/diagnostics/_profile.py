"""`profile`: train the unmodified PINN and record its gradient conflict at every step."""

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

from ..combine import sum as sum_rows
from ..residuals import Losses
from ..train import fit, make_step
from ._classify import Classification, Thresholds, classify
from ._modularity import THRESHOLD, per_sample_interaction
from ._recommend import Recommendation, recommend
from ._stats import Summary, summarize

__all__ = ["ConflictReport", "profile", "overhead"]


@dataclasses.dataclass
class ConflictReport:
    """A conflict profile, its statistics, regime and recommendation.

    Attributes:
        name: what was profiled (a problem name, or "").
        tasks: task names, in row order.
        record_steps: the recorded steps, (R,).
        norms: per-task gradient norms at those steps, (R, K).
        cos: pairwise cosines at those steps, (R, K, K).
        losses: per-task loss at every step, (steps, K).
        summary: `summarize` of the records.
        classification: `classify` of the summary.
        recommendation: `recommend` for the regime.
        interaction: `(step, {pair: fraction})` of `per_sample_interaction` at a few
            checkpoints (empty when the loss is not a `pinnx.residuals.Losses`).
        steps, record_every, learning_rate: the profile's settings.
        wall_time: seconds of the profiling run (compilation and checkpoints included).
    """

    name: str
    tasks: tuple[str, ...]
    record_steps: np.ndarray
    norms: np.ndarray
    cos: np.ndarray
    losses: np.ndarray
    summary: Summary
    classification: Classification
    recommendation: Recommendation
    interaction: list[tuple[int, dict[tuple[str, str], float]]]
    steps: int
    record_every: int
    learning_rate: float
    wall_time: float
    setup: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def regime(self) -> str:
        """The regime: "directional", "magnitude", "mixed" or "benign"."""
        return self.classification.regime

    def text(self) -> str:
        """The printed report: regime, evidence, modularity, recommendation."""
        lines = [
            f"pinnx diagnose{' ' + self.name if self.name else ''}: tasks "
            f"{', '.join(self.tasks)}",
            f"  profile: {self.steps} steps of Adam ({self.learning_rate:g}) on the summed "
            f"loss; gradients recorded every {self.record_every} step(s) inside the compiled "
            f"step; {self.wall_time:.1f} s",
            f"  regime: {self.regime.upper()}",
            "  evidence:",
            *(f"    - {e}" for e in self.classification.evidence),
        ]
        if self.interaction:
            lines.append(f"  per-sample gradient pairs with |g_a . g_b| > {THRESHOLD:g} "
                         "(ModSync modularity):")
            for pair in self.interaction[0][1]:
                values = ", ".join(f"{v[pair]:.2f} @ {s}" for s, v in self.interaction)
                lines.append(f"    - {pair[0]}/{pair[1]}: {values}")
        lines += [f"  recommendation: {self.recommendation.summary}",
                  *("    " + c for c in self.recommendation.code.splitlines())]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def plot(self, path: Any = None):
        """Figure: cosine traces per pair, norm ratios, cosine heatmap over time.

        Returns the matplotlib Figure; saves it when `path` (a str or Path) is given.
        """
        from ._plot import plot_report

        return plot_report(self, path)

    def check(self, steps: int = 1000, error_fn: Callable[[Any], float] | None = None):
        """Train the recommended recipe and the plain baseline; report which is ahead.

        See `pinnx.diagnostics.check`.
        """
        from ._check import check

        return check(self, steps=steps, error_fn=error_fn)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready statistics (no traces)."""
        return {
            "name": self.name, "tasks": list(self.tasks), "steps": self.steps,
            "record_every": self.record_every, "learning_rate": self.learning_rate,
            "wall_time_s": self.wall_time, "regime": self.regime,
            "directional_pairs": ["/".join(p) for p in self.classification.directional_pairs],
            "imbalanced_tasks": list(self.classification.imbalanced_tasks),
            "thresholds": dataclasses.asdict(self.classification.thresholds),
            "pairs": {"/".join(p): dataclasses.asdict(s)
                      for p, s in self.summary.pairs.items()},
            "per_task": {t: dataclasses.asdict(s) for t, s in self.summary.per_task.items()},
            "interaction": [{"step": s, **{"/".join(p): v for p, v in d.items()}}
                            for s, d in self.interaction],
            "recommendation": self.recommendation.code,
        }


def _fixed_batch(data, key):
    return data(jax.random.fold_in(key, 7)) if callable(data) else data


def profile(
    losses: Callable[[Any, Any], Mapping[str, Array]],
    model: PyTree,
    data: PyTree | Callable[[PRNGKeyArray], PyTree],
    *,
    steps: int = 1000,
    learning_rate: float = 1e-3,
    record_every: int = 1,
    resample_every: int | None = None,
    key: PRNGKeyArray | None = None,
    thresholds: Thresholds | None = None,
    checkpoints: int = 5,
    interaction_points: int = 32,
    name: str = "",
    progress: bool = False,
) -> ConflictReport:
    """Profile the gradient conflict of the unmodified PINN and classify it.

    Trains `model` for `steps` steps with Adam on the summed loss (`pinnx.sum() |
    optax.adam(learning_rate)` through `pinnx.fit`, the same update as `optax.adam` on the
    sum) and records, every `record_every` steps, the per-task gradient norms and every
    pairwise cosine *inside the compiled step*, from the per-task gradients the step
    computes anyway: no extra backward pass (`fit(record_every=...)`). Then summarises
    (`summarize`), classifies (`classify`) and recommends (`recommend`).

    When `losses` is a `pinnx.residuals.Losses`, the ModSync per-sample interaction
    (`per_sample_interaction`, `interaction_points` points per task on one fixed batch) is
    measured at `checkpoints` evenly spaced steps; that does take per-sample gradients,
    outside the step (set `checkpoints=0` to skip it).

    Args:
        losses: `losses(model, batch) -> dict[str, scalar]` with at least two tasks.
        model: the initial model.
        data: a fixed batch or a jittable `sample(key) -> batch`.
        steps: profile length (default 1000, as in the per-loss-adapter paper).
        learning_rate: Adam's learning rate.
        record_every: record interval in steps.
        resample_every: fresh batch every this many steps (callable `data`).
        key: PRNG key (default `jax.random.key(0)`).
        thresholds: the classification rule (default `Thresholds()`).
        checkpoints: number of per-sample interaction measurements (0: none).
        interaction_points: points per task for those.
        name: a label for the report.
        progress: show `fit`'s progress bar.

    Returns:
        A `ConflictReport`; `print(report)`, `report.plot()`, `report.check()`.

    Examples:
        A 20-step profile of a small network (the paper's profile is 1000 steps):

        >>> import jax, pinnx
        >>> from pinnx.diagnostics import profile
        >>> problem = pinnx.problems.helmholtz(n_pde=16, n_bc=16, n_test=11)
        >>> model = pinnx.nn.MLP(2, "scalar", width=8, depth=2, key=jax.random.key(0))
        >>> report = profile(problem.losses, model, problem.sample, steps=20,
        ...                  resample_every=1, checkpoints=0)
        >>> report.tasks, report.norms.shape   # (steps recorded, K)
        (('bc', 'pde'), (20, 2))

        `print(report)` shows the statistics, the regime and the recommended code;
        `report.plot("conflict.png")` draws the traces.

    References:
        Kim, N'guessan 2026 (per-loss adapters), "Diagnostics": the conflict profile;
        Kong et al. 2026 (ModSync): orthogonality measures.
    """
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"a profile needs steps >= 2, got {steps!r}")
    if checkpoints < 0:
        raise ValueError(f"checkpoints must be >= 0, got {checkpoints}")
    key = jax.random.key(0) if key is None else key
    interaction: list[tuple[int, dict]] = []
    eval_fn = eval_every = None
    if checkpoints and isinstance(losses, Losses):
        batch = _fixed_batch(data, key)
        eval_every = max(1, steps // max(1, checkpoints - 1))
        step_of = iter(range(0, steps + eval_every, eval_every))

        def eval_fn(m):
            s = min(next(step_of), steps)
            interaction.append((s, per_sample_interaction(losses, m, batch,
                                                          points=interaction_points)))
            return {}

    start = time.perf_counter()
    trained, _, history = fit(
        losses, model, sum_rows() | optax.adam(learning_rate), data, steps=steps, key=key,
        resample_every=resample_every, log_every=steps, eval_fn=eval_fn,
        eval_every=eval_every, progress=progress, record_every=record_every,
    )
    wall = time.perf_counter() - start
    tasks = history.tasks
    if len(tasks) < 2:
        raise ValueError(f"a conflict profile needs at least 2 tasks, got {tasks}")
    norms = np.stack([history.step_grad_norms[t] for t in tasks], axis=1)
    k = len(tasks)
    cos = np.ones((len(norms), k, k))
    for (a, b), c in history.step_cosines.items():
        i, j = tasks.index(a), tasks.index(b)
        cos[:, i, j] = cos[:, j, i] = c
    summary = summarize(norms, cos, tasks, record_every)
    classification = classify(summary, thresholds)
    rec = recommend(classification.regime, tasks,
                    {t: s.median_norm for t, s in summary.per_task.items()}, learning_rate)
    return ConflictReport(
        name=name, tasks=tasks, record_steps=history.record_steps, norms=norms, cos=cos,
        losses=np.stack([history.losses[t] for t in tasks], axis=1), summary=summary,
        classification=classification, recommendation=rec, interaction=interaction,
        steps=history.steps, record_every=record_every, learning_rate=learning_rate,
        wall_time=wall,
        setup=dict(losses=losses, model=model, data=data, resample_every=resample_every,
                   key=key),
    )


def overhead(
    losses: Callable[[Any, Any], Mapping[str, Array]],
    model: PyTree,
    data: PyTree | Callable[[PRNGKeyArray], PyTree],
    *,
    steps: int = 200,
    rounds: int = 5,
    learning_rate: float = 1e-3,
    key: PRNGKeyArray | None = None,
) -> dict[str, float]:
    """Seconds per training step of the plain run and of the recording profile step.

    Builds `fit`'s own compiled step (`pinnx.make_step`) for three configurations,
    scans it over `steps` steps on one fixed batch, compiles once, then times `rounds`
    interleaved rounds and keeps each configuration's fastest (compilation excluded; the
    minimum is the least disturbed by other jobs on the machine). Configurations: "adam"
    (`optax.adam` on the summed loss: the plain PINN), "sum_adam" (`pinnx.sum() |
    optax.adam`: per-task gradients, summed) and "profile" (the latter recording norms and
    cosines at every step, as `profile` runs it).

    Returns:
        {configuration: seconds per step}, and "overhead": profile / adam - 1, e.g.
        `overhead(problem.losses, model, problem.sample)["overhead"]` (a timing: not run
        here).
    """
    import jax.numpy as jnp

    key = jax.random.key(0) if key is None else key
    batch = _fixed_batch(data, key)
    configs = {"adam": (optax.adam(learning_rate), None),
               "sum_adam": (sum_rows() | optax.adam(learning_rate), None),
               "profile": (sum_rows() | optax.adam(learning_rate), 1)}
    runners = {}
    for label, (opt, rec) in configs.items():
        step, carry = make_step(losses, model, opt, batch, record_every=rec)
        run = jax.jit(lambda c, s=step: jax.lax.scan(s, c, jnp.arange(steps)))
        jax.block_until_ready(run(carry))
        runners[label] = (run, carry)
    best = dict.fromkeys(configs, float("inf"))
    for _ in range(rounds):
        for label, (run, carry) in runners.items():
            start = time.perf_counter()
            jax.block_until_ready(run(carry))
            best[label] = min(best[label], (time.perf_counter() - start) / steps)
    best["overhead"] = best["profile"] / best["adam"] - 1
    return best
