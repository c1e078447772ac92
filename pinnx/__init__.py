"""pinnx: physics-informed neural networks as the multi-objective problems they are.

Three layers, data flowing one way (see docs/concepts.md):

1. physics -> losses: `pinnx.residuals` builds `losses(model, batch) -> dict[str, scalar]`
   from residuals written with `pinnx.operators` on domains of `pinnx.geometry`, for the
   networks of `pinnx.nn`;
2. losses -> per-task gradients: `pinnx.task_grads` (one row per task);
3. per-task gradients -> one update: combiners composed with `|`, e.g.
   `pinnx.cosine_gate(main="pde") | pinnx.pcgrad() | optax.adam(1e-3)`.

Every combiner factory is here (`pinnx.pcgrad`, ...) and in `pinnx.combine`, with its state
class, the kit for new methods and the methods as pure functions (`pinnx.combine.functional`).
`pinnx.fit` runs the loop (`pinnx.make_step` is its compiled step); `pinnx.pointwise` weights
and resamples collocation points; `pinnx.recipes` holds the published recipes;
`pinnx.problems` the benchmarks with reference solutions; `pinnx.diagnostics` the conflict
profile; `pinnx.testing` the combiner test suite and strategies.
"""

from . import combine, geometry, nn, operators, pointwise, recipes, residuals
from .combine import (
    Aggregator,
    Chain,
    Combiner,
    TaskTransform,
    accumulate,
    aligned_mtl,
    as_aggregator,
    as_task_transform,
    cagrad,
    config,
    cosine_gate,
    dcgd,
    dualproj,
    dwa,
    fairgrad,
    grad_norm_weights,
    graddrop,
    gradnorm,
    gradvac,
    imtl_g,
    init_state,
    inject_hyperparams,
    krum,
    lra,
    m_config,
    mean,
    mgda,
    multiadam,
    nash_mtl,
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
from .sampling import ModelSampler
from .tasks import cosines, gram, ntk_traces, num_tasks, task_grads, task_names, task_norms
from .train import History, NonFinite, StepCarry, TrainStep, fit, make_step

__version__ = "0.1.0.dev0"

# `sum` and `random` shadow Python builtins here, as `jnp.sum` does: they are the methods'
# names (the plain sum of the task rows; random loss weighting, RLW). Use them qualified,
# `pinnx.sum()`, and do not `from pinnx import *`.
__all__ = [
    # layers 1 and 2: modules, per-task gradients
    "combine",
    "geometry",
    "nn",
    "operators",
    "pointwise",
    "recipes",
    "residuals",
    "problems",
    "atl",
    "diagnostics",
    "testing",
    "cosines",
    "gram",
    "ntk_traces",
    "num_tasks",
    "task_grads",
    "task_names",
    "task_norms",
    # layer 3: the algebra
    "Aggregator",
    "Chain",
    "Combiner",
    "TaskTransform",
    "as_aggregator",
    "as_task_transform",
    "init_state",
    "inject_hyperparams",
    # aggregators
    "accumulate",
    "aligned_mtl",
    "cagrad",
    "config",
    "dcgd",
    "dualproj",
    "fairgrad",
    "graddrop",
    "gradvac",
    "imtl_g",
    "krum",
    "m_config",
    "mean",
    "mgda",
    "nash_mtl",
    "pcgrad",
    "random",
    "route",
    "sum",
    "trimmed_mean",
    "upgrad",
    "weighted",
    # task transforms
    "cosine_gate",
    "dwa",
    "grad_norm_weights",
    "gradnorm",
    "lra",
    "multiadam",
    "ntk_weights",
    "per_task",
    "relobralo",
    "softadapt",
    "uncertainty",
    # training
    "History",
    "ModelSampler",
    "NonFinite",
    "StepCarry",
    "TrainStep",
    "fit",
    "make_step",
]


def __getattr__(name: str):
    # `pinnx.problems` imports diffrax and scipy (and `atl` and `diagnostics` import
    # problems), `pinnx.testing` imports hypothesis: load them on first use only
    if name in ("problems", "atl", "diagnostics", "testing"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pinnx' has no attribute {name!r}")
