"""`Problem`: a PINN benchmark bundled with its sampler, test points and reference solution."""

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
from ._recipe import Recipe

__all__ = ["Grid", "Problem", "relative_l2"]


def relative_l2(prediction: np.ndarray, reference: np.ndarray) -> float:
    """||prediction - reference||_2 / ||reference||_2 over all points (and components)."""
    prediction = np.asarray(prediction, np.float64)
    reference = np.asarray(reference, np.float64)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} != reference shape "
                         f"{reference.shape}")
    return float(np.linalg.norm(prediction - reference) / np.linalg.norm(reference))


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
    """A tensor-product test grid of two axes, for problems whose test points form one.

    The points are row-major over the grid with the horizontal axis as coordinate 0: point
    i * len(horizontal) + j is (horizontal[j], vertical[i]). `reshape` turns values at the
    points into the grid picture, `flatten` goes back.

    Attributes:
        axes: the two 1-D coordinate arrays (horizontal, vertical), e.g. (x, t).
        names: their names, e.g. ("x", "t").

    Examples:
        >>> import numpy as np
        >>> from pinnx.problems import Grid
        >>> grid = Grid((np.linspace(-1, 1, 3), np.linspace(0, 1, 2)), ("x", "t"))
        >>> grid.points.shape, grid.shape
        ((6, 2), (2, 3))
        >>> grid.reshape(np.arange(6.0)).shape
        (2, 3)
    """

    axes: tuple[np.ndarray, np.ndarray]
    names: tuple[str, str] = ("x", "t")

    def __post_init__(self):
        axes = tuple(np.asarray(a) for a in self.axes)
        if len(axes) != 2 or any(a.ndim != 1 or a.size == 0 for a in axes):
            raise ValueError(f"Grid needs two non-empty 1-D axes, got shapes "
                             f"{[a.shape for a in axes]}")
        if len(self.names) != 2:
            raise ValueError(f"Grid needs two axis names, got {self.names!r}")
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def shape(self) -> tuple[int, int]:
        """(len(vertical), len(horizontal)): the shape of a scalar field on the grid."""
        return len(self.axes[1]), len(self.axes[0])

    @property
    def points(self) -> np.ndarray:
        """(M, 2) points, M = len(horizontal) * len(vertical), row-major over the grid."""
        h, v = np.meshgrid(*self.axes, indexing="xy")
        return np.stack([h.ravel(), v.ravel()], axis=1)

    def reshape(self, values: np.ndarray) -> np.ndarray:
        """Values at the points, (M,) or (M, m), as the grid picture (V, H) or (V, H, m)."""
        values = np.asarray(values)
        size = self.shape[0] * self.shape[1]
        if values.ndim not in (1, 2) or values.shape[0] != size:
            raise ValueError(f"expected values of shape ({size},) or ({size}, m) on the "
                             f"{self.shape} grid, got {values.shape}")
        return values.reshape(self.shape + values.shape[1:])

    def flatten(self, values: np.ndarray) -> np.ndarray:
        """The inverse of `reshape`: (V, H) or (V, H, m) -> (M,) or (M, m)."""
        values = np.asarray(values)
        if values.shape[:2] != self.shape or values.ndim not in (2, 3):
            raise ValueError(f"expected values of shape {self.shape} or {self.shape} + (m,), "
                             f"got {values.shape}")
        return values.reshape((-1,) + values.shape[2:])


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A benchmark PDE: its loss, a jittable sampler, and a reference at test points.

    The test points are any (N, d) set; the reference holds the solution there, (N,) for a
    scalar output and (N, m) for m outputs. Problems whose points form a 2-D tensor grid
    also carry the `grid`, used by `plot` and by `problem.grid.reshape(values)` for the grid
    picture of `predict`'s or `reference`'s values.

    Attributes:
        name: short name (as on the command line).
        losses: the loss function, `losses(model, batch) -> dict[str, scalar]`.
        sample: `sample(key) -> batch`, jittable (used for resampling inside `pinnx.fit`).
        in_size, out_size: the network's input dimension d and output ("scalar" or m).
        test_points: (N, d) points where the model is compared with the reference.
        reference: the reference solution at the test points, (N,) or (N, m).
        recipe: the default training set-up (`pinnx run` and `pinnx diagnose` use it).
        grid: the test points' 2-D grid, or None when they form none.
        description: one line for `pinnx run --help` and reports.
    """

    name: str
    losses: Losses
    sample: Callable[[PRNGKeyArray], dict[str, Any]]
    in_size: int
    out_size: int | str
    test_points: np.ndarray
    reference: np.ndarray
    recipe: Recipe
    grid: Grid | None = None
    description: str = ""

    def __post_init__(self):
        points, reference = np.asarray(self.test_points), np.asarray(self.reference)
        if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] != self.in_size:
            raise ValueError(f"expected test_points of shape (N, {self.in_size}), got "
                             f"{points.shape}")
        n = points.shape[0]
        expected = (n,) if self.out_size == "scalar" else (n, self.out_size)
        if reference.shape != expected:
            raise ValueError(f"expected a reference of shape {expected} for out_size "
                             f"{self.out_size!r}, got {reference.shape}")
        if not isinstance(self.recipe, Recipe):
            raise ValueError(f"expected a pinnx.problems.Recipe, got {type(self.recipe)}")
        if self.grid is not None and not (
                self.grid.points.shape == points.shape
                and np.array_equal(self.grid.points, points)):
            raise ValueError("test_points must be grid.points when a grid is given")
        object.__setattr__(self, "test_points", points)
        object.__setattr__(self, "reference", reference)

    def predict(self, model: Any) -> np.ndarray:
        """The model at the test points, shaped like `reference`: (N,) or (N, m).

        For the grid picture: `problem.grid.reshape(problem.predict(model))`.
        """
        leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
        dtype = leaves[0].dtype if leaves else jnp.zeros(()).dtype
        u = _predict(model, jnp.asarray(self.test_points, dtype))
        return np.asarray(u).reshape(self.reference.shape)

    def relative_l2(self, model: Any) -> float:
        """Relative L2 error of the model against the reference at the test points."""
        return relative_l2(self.predict(model), self.reference)

    def plot(self, model: Any, history: Any = None, path: str | Path | None = None):
        """Figure: the model against the reference, its error, and per-task loss curves.

        With a grid: prediction, reference and |error| as images over the grid (the first
        component for vector outputs). Without one: for d = 1, prediction and reference
        against x and |error| against x; otherwise a histogram of the pointwise error
        (the norm over components for vector outputs).

        Returns the matplotlib Figure; saves it when `path` is given.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        pred = self.predict(model)
        diff = np.abs(pred - self.reference)
        err = diff if diff.ndim == 1 else np.linalg.norm(diff, axis=1)
        err_title = f"|error|, relative L2 = {relative_l2(pred, self.reference):.2e}"

        def first(values):  # the first component of vector outputs
            return values if values.ndim == 1 else values[:, 0]

        if self.grid is not None:
            fig, axs = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
            self._plot_grid(fig, axs.ravel()[:3], first(pred), first(self.reference), err,
                            err_title)
            loss_ax = axs[1, 1]
        else:
            panels = 3 if self.in_size == 1 else 2
            fig, axs = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2),
                                    constrained_layout=True)
            if self.in_size == 1:
                x = self.test_points[:, 0]
                order = np.argsort(x)
                axs[0].plot(x[order], first(self.reference)[order], "k", lw=2,
                            label="reference")
                axs[0].plot(x[order], first(pred)[order], "C1--", lw=1.5, label="prediction")
                axs[0].set(xlabel="x", title="prediction and reference")
                axs[0].legend()
                axs[1].plot(x[order], err[order], "C3", lw=1)
                axs[1].set(xlabel="x", title=err_title)
            else:
                axs[0].hist(err, bins=50, color="C3")
                axs[0].set(xlabel="|error| at a test point", ylabel="test points",
                           title=err_title)
            loss_ax = axs[-1]
        if history is not None and history.steps:
            for task in history.tasks:
                loss_ax.semilogy(history.losses[task], label=task, lw=1)
            loss_ax.set(title="per-task loss", xlabel="step")
            loss_ax.legend()
        else:
            loss_ax.axis("off")
        fig.suptitle(self.description or self.name)
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig

    def _plot_grid(self, fig, axs, pred, reference, err, err_title):
        h, v = self.grid.axes
        vmin, vmax = reference.min(), reference.max()
        for ax, values, title, kw in (
            (axs[0], pred, "prediction", dict(vmin=vmin, vmax=vmax, cmap="RdBu_r")),
            (axs[1], reference, "reference", dict(vmin=vmin, vmax=vmax, cmap="RdBu_r")),
            (axs[2], err, err_title, dict(cmap="magma")),
        ):
            mesh = ax.pcolormesh(h, v, self.grid.reshape(values), shading="auto", **kw)
            fig.colorbar(mesh, ax=ax)
            ax.set(title=title, xlabel=self.grid.names[0], ylabel=self.grid.names[1])


@eqx.filter_jit
def _predict(model, points):
    return jax.vmap(model)(points)
