"""pinnx: physics-informed neural networks as the multi-objective problems they are.

Three layers, data flowing one way (see docs/concepts.md):

1. physics -> losses: `pinnx.residuals` builds `losses(model, batch) -> dict[str, scalar]`
   from residuals written with `pinnx.operators` on domains of `pinnx.geometry`;
2. losses -> per-task gradients: `pinnx.task_grads` (one row per task);
3. per-task gradients -> one update: combiners composed with `|`, e.g.
   `pinnx.cosine_gate(main="pde") | pinnx.pcgrad() | optax.adam(1e-3)`.

`pinnx.fit` runs the loop; `pinnx.problems` holds benchmarks with reference solutions.
"""

from . import geometry, nn, operators, pointwise, recipes, residuals
from .combine import (
    Aggregator,
    Chain,
    Combiner,
    PCGradState,
    PerTaskState,
    TaskTransform,
    aligned_mtl,
    as_aggregator,
    as_task_transform,
    cagrad,
    config,
    cosine_gate,
    dcgd,
    dualproj,
    dwa,
    grad_norm_weights,
    graddrop,
    gradnorm,
    gradvac,
    imtl_g,
    krum,
    lra,
    m_config,
    mean,
    mgda,
    multiadam,
    nash_mtl,
    ntk_traces,
    ntk_weights,
    pcgrad,
    per_task,
    random,
    relobralo,
    route,
    softadapt,
    sum,
    trimmed_mean,
    uncertainty,
    upgrad,
    weighted,
)
from .tasks import cosines, gram, num_tasks, task_grads, task_names, task_norms
from .train import History, ModelSampler, NonFinite, fit

__version__ = "0.1.0.dev0"

__all__ = [
    "Aggregator",
    "Chain",
    "Combiner",
    "History",
    "ModelSampler",
    "NonFinite",
    "PCGradState",
    "PerTaskState",
    "TaskTransform",
    "aligned_mtl",
    "as_aggregator",
    "as_task_transform",
    "atl",
    "cagrad",
    "config",
    "cosine_gate",
    "cosines",
    "dcgd",
    "diagnostics",
    "dualproj",
    "dwa",
    "fit",
    "geometry",
    "grad_norm_weights",
    "graddrop",
    "gradnorm",
    "gradvac",
    "gram",
    "imtl_g",
    "krum",
    "lra",
    "m_config",
    "mean",
    "mgda",
    "multiadam",
    "nash_mtl",
    "nn",
    "ntk_traces",
    "ntk_weights",
    "num_tasks",
    "operators",
    "pcgrad",
    "per_task",
    "pointwise",
    "random",
    "recipes",
    "relobralo",
    "residuals",
    "route",
    "softadapt",
    "sum",
    "task_grads",
    "task_names",
    "task_norms",
    "trimmed_mean",
    "uncertainty",
    "upgrad",
    "weighted",
]


def __getattr__(name: str):
    # `pinnx.problems` imports diffrax and scipy (and `atl` and `diagnostics` import
    # problems): load them on first use only
    if name in ("problems", "atl", "diagnostics"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pinnx' has no attribute {name!r}")
