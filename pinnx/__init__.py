"""pinnx: physics-informed neural networks as the multi-objective problems they are.

Three layers, data flowing one way (see docs/concepts.md):

1. physics -> losses: `pinnx.residuals` builds `losses(model, batch) -> dict[str, scalar]`
   from residuals written with `pinnx.operators` on domains of `pinnx.geometry`;
2. losses -> per-task gradients: `pinnx.task_grads` (one row per task);
3. per-task gradients -> one update: combiners composed with `|`, e.g.
   `pinnx.cosine_gate(main="pde") | pinnx.pcgrad() | optax.adam(1e-3)`.

`pinnx.fit` runs the loop; `pinnx.problems` holds benchmarks with reference solutions.
"""

from . import geometry, nn, operators, residuals
from .combine import (
    Aggregator,
    Chain,
    Combiner,
    PCGradState,
    PerTaskState,
    TaskTransform,
    as_aggregator,
    as_task_transform,
    cosine_gate,
    mean,
    pcgrad,
    per_task,
    sum,
    weighted,
)
from .tasks import cosines, gram, num_tasks, task_grads, task_names, task_norms
from .train import History, NonFinite, fit

__version__ = "0.1.0.dev0"

__all__ = [
    "Aggregator",
    "Chain",
    "Combiner",
    "History",
    "NonFinite",
    "PCGradState",
    "PerTaskState",
    "TaskTransform",
    "as_aggregator",
    "as_task_transform",
    "cosine_gate",
    "cosines",
    "fit",
    "geometry",
    "gram",
    "mean",
    "nn",
    "num_tasks",
    "operators",
    "pcgrad",
    "per_task",
    "residuals",
    "sum",
    "task_grads",
    "task_names",
    "task_norms",
    "weighted",
]


def __getattr__(name: str):
    # `pinnx.problems` imports diffrax and scipy: load it on first use only
    if name == "problems":
        import importlib

        return importlib.import_module(".problems", __name__)
    raise AttributeError(f"module 'pinnx' has no attribute {name!r}")
