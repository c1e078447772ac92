"""Combiners: task transforms and aggregators over per-task gradients, composed with `|`.

This namespace holds every combiner factory (also re-exported at `pinnx.<name>`), its
state class, the kinds and the algebra (`Chain`, `as_aggregator`, `init_state`,
`inject_hyperparams`), and the kit for writing new methods (`gram_aggregator`, `Scaled`,
`loss_weighting`, `ema_weighting`, `register`, `registry`). The methods as pure functions
(Gram weightings, row rules, the small-QP solvers) are in `pinnx.combine.functional`.
"""

from . import functional
from ._accumulate import AccumulateState, accumulate
from ._aligned import aligned_mtl
from ._base import (
    Aggregator,
    Chain,
    Combiner,
    TaskTransform,
    Update,
    as_aggregator,
    as_task_transform,
    count_tasks,
    init_state,
    resolve_task,
)
from ._cagrad import CAGradState, cagrad
from ._config import config
from ._dcgd import DCGDState, dcgd
from ._dwa import DWAState, dwa
from ._fairgrad import FairGradState, fairgrad
from ._gate import cosine_gate
from ._grad_norm_weights import GradNormWeightsState, grad_norm_weights
from ._graddrop import GradDropState, graddrop
from ._gradnorm import GradNormState, gradnorm
from ._gradvac import GradVacState, gradvac
from ._gram import Scaled, gram_aggregator
from ._imtl import imtl_g
from ._inject import inject_hyperparams
from ._krum import krum
from ._linear import mean, sum, weighted
from ._loss_weighting import ema_weighting, loss_weighting
from ._lra import LRAState, lra
from ._m_config import MConFIGState, m_config
from ._mgda import MGDAState, mgda
from ._multiadam import multiadam
from ._nash import NashMTLState, nash_mtl
from ._ntk import NTKWeightsState, ntk_traces, ntk_weights
from ._pcgrad import PCGradState, pcgrad
from ._per_task import PerTaskState, per_task
from ._random import RandomState, random
from ._registry import register, registry
from ._relobralo import ReLoBRaLoState, relobralo
from ._route import owners, route
from ._softadapt import SoftAdaptState, softadapt
from ._trimmed_mean import trimmed_mean
from ._uncertainty import UncertaintyState, uncertainty
from ._upgrad import DualProjState, UPGradState, dualproj, upgrad

__all__ = [
    # kinds and algebra
    "Aggregator",
    "Chain",
    "Combiner",
    "TaskTransform",
    "Update",
    "as_aggregator",
    "as_task_transform",
    "init_state",
    "inject_hyperparams",
    # writing a new method
    "Scaled",
    "count_tasks",
    "ema_weighting",
    "gram_aggregator",
    "loss_weighting",
    "register",
    "registry",
    "resolve_task",
    "functional",
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
    "owners",
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
    # per-task NTK traces (the input of ntk_weights; defined in pinnx.tasks)
    "ntk_traces",
    # states
    "AccumulateState",
    "CAGradState",
    "DCGDState",
    "DWAState",
    "DualProjState",
    "FairGradState",
    "GradDropState",
    "GradNormState",
    "GradNormWeightsState",
    "GradVacState",
    "LRAState",
    "MConFIGState",
    "MGDAState",
    "NTKWeightsState",
    "NashMTLState",
    "PCGradState",
    "PerTaskState",
    "RandomState",
    "ReLoBRaLoState",
    "SoftAdaptState",
    "UPGradState",
    "UncertaintyState",
]
