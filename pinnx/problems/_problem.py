"""`Problem`: a PINN benchmark bundled with its sampler and reference solution."""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ..residuals import Losses

__all__ = ["Problem", "relative_l2"]


def relative_l2(prediction: np.ndarray, reference: np.ndarray) -> float:
    """||prediction - reference||_2 / ||reference||_2 over all points."""
    prediction = np.asarray(prediction, np.float64)
    reference = np.asarray(reference, np.float64)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} != reference shape "
                         f"{reference.shape}")
    return float(np.linalg.norm(prediction - reference) / np.linalg.norm(reference))


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A benchmark PDE: its loss, a jittable sampler, and a reference on a test grid.

    Attributes:
        name: short name (as on the command line).
        losses: the loss function, `losses(model, batch) -> dict[str, scalar]`.
        sample: `sample(key) -> batch`, jittable (used for resampling inside `pinnx.fit`).
        in_size, out_size: the network's input dimension and output ("scalar" or m).
        axes: the test grid's two 1-D coordinate arrays (horizontal, vertical), e.g. (x, t).
        axis_names: their names.
        reference: the reference solution on the grid, shape (len(vertical), len(horizontal)).
        description: one line for `pinnx run --help` and reports.
    """

    name: str
    losses: Losses
    sample: Callable[[PRNGKeyArray], dict[str, Any]]
    in_size: int
    out_size: int | str
    axes: tuple[np.ndarray, np.ndarray]
    axis_names: tuple[str, str]
    reference: np.ndarray
    description: str = ""

    @property
    def test_points(self) -> np.ndarray:
        """(M, 2) test points, the horizontal axis as coordinate 0 (row-major over the grid)."""
        h, v = np.meshgrid(*self.axes, indexing="xy")
        return np.stack([h.ravel(), v.ravel()], axis=1)

    def predict(self, model: Any) -> np.ndarray:
        """The model on the test grid, shape like `reference`."""
        leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
        dtype = leaves[0].dtype if leaves else jnp.zeros(()).dtype
        u = _predict(model, jnp.asarray(self.test_points, dtype))
        return np.asarray(u).reshape(self.reference.shape)

    def relative_l2(self, model: Any) -> float:
        """Relative L2 error of the model against the reference on the test grid."""
        return relative_l2(self.predict(model), self.reference)

    def plot(self, model: Any, history: Any = None, path: str | Path | None = None):
        """Figure: prediction, reference, absolute error, and per-task loss curves.

        Returns the matplotlib Figure; saves it when `path` is given.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        pred = self.predict(model)
        err = np.abs(pred - self.reference)
        fig, axs = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
        h, v = self.axes
        vmin, vmax = self.reference.min(), self.reference.max()
        for ax, values, title, kw in (
            (axs[0, 0], pred, "prediction", dict(vmin=vmin, vmax=vmax, cmap="RdBu_r")),
            (axs[0, 1], self.reference, "reference", dict(vmin=vmin, vmax=vmax, cmap="RdBu_r")),
            (axs[1, 0], err, f"|error|, relative L2 = {relative_l2(pred, self.reference):.2e}",
             dict(cmap="magma")),
        ):
            mesh = ax.pcolormesh(h, v, values, shading="auto", **kw)
            fig.colorbar(mesh, ax=ax)
            ax.set(title=title, xlabel=self.axis_names[0], ylabel=self.axis_names[1])
        ax = axs[1, 1]
        if history is not None and history.steps:
            for task in history.tasks:
                ax.semilogy(history.losses[task], label=task, lw=1)
            ax.set(title="per-task loss", xlabel="step")
            ax.legend()
        else:
            ax.axis("off")
        fig.suptitle(self.description or self.name)
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


@eqx.filter_jit
def _predict(model, points):
    return jax.vmap(model)(points)
