"""The diagnose figure: cosine traces, norm ratios, cosine heatmap over time."""

import numpy as np

from ._stats import imbalance

__all__ = ["plot_report"]


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    n = max(1, min(n, len(x)))
    return np.convolve(x, np.ones(n) / n, mode="valid")


def plot_report(report, path=None, bins: int = 50):
    """Three panels for a `ConflictReport`: pairwise cosines (raw and a moving mean), the
    norm ratio max_j ||g_j|| / ||g_k|| per task (log scale), and each pair's cosine averaged
    over `bins` windows as a heatmap (pairs x time). Returns the Figure; saves it at `path`.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    steps = report.record_steps
    tasks = report.tasks
    pairs = list(report.summary.pairs)
    idx = {t: i for i, t in enumerate(tasks)}
    fig, axs = plt.subplots(3, 1, figsize=(10, 10), constrained_layout=True)
    window = max(1, len(steps) // 50)
    ax = axs[0]
    for a, b in pairs:
        c = report.cos[:, idx[a], idx[b]]
        (line,) = ax.plot(steps, c, lw=0.4, alpha=0.35)
        ax.plot(steps[window - 1:], _smooth(c, window), color=line.get_color(), lw=1.5,
                label=f"{a}/{b}")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(title=f"pairwise cosine (moving mean over {window} records)", xlabel="step",
           ylabel="cos", ylim=(-1.05, 1.05))
    ax.legend(loc="upper right", fontsize=8)
    ax = axs[1]
    ratio = imbalance(report.norms)
    for i, t in enumerate(tasks):
        ax.semilogy(steps, ratio[:, i], lw=0.8, label=t)
    th = report.classification.thresholds.imbalance
    ax.axhline(th, color="k", ls="--", lw=0.8, label=f"threshold {th:g}")
    ax.set(title="norm ratio max_j ||g_j|| / ||g_k||", xlabel="step", ylabel="ratio")
    ax.legend(loc="upper right", fontsize=8)
    ax = axs[2]
    nb = max(1, min(bins, len(steps)))
    edges = np.linspace(0, len(steps), nb + 1).astype(int)
    heat = np.array([[np.mean(report.cos[lo:hi, idx[a], idx[b]])
                      for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
                     for a, b in pairs])
    mesh = ax.imshow(heat, aspect="auto", cmap="RdBu", vmin=-1, vmax=1,
                     extent=(steps[0], steps[-1] + report.record_every, len(pairs) - 0.5,
                             -0.5), interpolation="nearest")
    ax.set_yticks(range(len(pairs)), [f"{a}/{b}" for a, b in pairs])
    ax.set(title=f"cosine over time ({nb} windows)", xlabel="step")
    fig.colorbar(mesh, ax=ax, label="mean cos")
    fig.suptitle(f"{report.name or 'conflict profile'}: regime {report.regime}")
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
