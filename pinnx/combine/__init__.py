"""Combiners: task transforms and aggregators over per-task gradients, composed with `|`."""

from ._aligned import aligned_mtl, aligned_mtl_weights
from ._base import (
    Aggregator,
    Chain,
    Combiner,
    TaskTransform,
    as_aggregator,
    as_task_transform,
    unit_sum,
    weighted_sum,
)
from ._cagrad import CAGradState, cagrad, cagrad_weights
from ._config import config, config_weights
from ._dcgd import DCGDState, dcgd, dcgd_weights
from ._dwa import DWAState, dwa
from ._gate import cosine_gate
from ._grad_norm_weights import GradNormWeightsState, grad_norm_weights
from ._graddrop import GradDropState, graddrop, graddrop_select
from ._gradnorm import GradNormState, gradnorm, gradnorm_objective
from ._gradvac import GradVacState, gradvac, gradvac_rows
from ._imtl import imtl_g, imtl_g_weights
from ._krum import krum, krum_scores, krum_weights
from ._linear import mean, sum, weighted
from ._lra import LRAState, lra
from ._m_config import MConFIGState, m_config
from ._mgda import MGDAState, mgda, mgda_weights
from ._multiadam import multiadam
from ._nash import NashMTLState, nash_mtl, nash_weights
from ._ntk import NTKWeightsState, ntk_traces, ntk_weights
from ._pcgrad import PCGradState, pcgrad, pcgrad_weights
from ._per_task import PerTaskState, per_task
from ._qp import QPInfo, nonneg_qp, simplex_qp
from ._random import RandomState, random, random_weights
from ._relobralo import ReLoBRaLoState, relobralo
from ._route import owners, route
from ._softadapt import SoftAdaptState, softadapt
from ._trimmed_mean import trimmed_mean, trimmed_mean_rows
from ._uncertainty import UncertaintyState, uncertainty
from ._upgrad import (
    DualProjState,
    UPGradState,
    dual_cone_projection,
    dualproj,
    dualproj_weights,
    upgrad,
    upgrad_weights,
)

__all__ = [
    "Aggregator",
    "CAGradState",
    "Chain",
    "Combiner",
    "DCGDState",
    "DWAState",
    "DualProjState",
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
    "QPInfo",
    "RandomState",
    "ReLoBRaLoState",
    "SoftAdaptState",
    "TaskTransform",
    "UPGradState",
    "UncertaintyState",
    "aligned_mtl",
    "aligned_mtl_weights",
    "as_aggregator",
    "as_task_transform",
    "cagrad",
    "cagrad_weights",
    "config",
    "config_weights",
    "cosine_gate",
    "dcgd",
    "dcgd_weights",
    "dual_cone_projection",
    "dualproj",
    "dualproj_weights",
    "dwa",
    "grad_norm_weights",
    "graddrop",
    "graddrop_select",
    "gradnorm",
    "gradnorm_objective",
    "gradvac",
    "gradvac_rows",
    "imtl_g",
    "imtl_g_weights",
    "krum",
    "krum_scores",
    "krum_weights",
    "lra",
    "m_config",
    "mean",
    "mgda",
    "mgda_weights",
    "multiadam",
    "nash_mtl",
    "nash_weights",
    "nonneg_qp",
    "ntk_traces",
    "ntk_weights",
    "pcgrad",
    "pcgrad_weights",
    "per_task",
    "random",
    "random_weights",
    "relobralo",
    "route",
    "owners",
    "simplex_qp",
    "softadapt",
    "sum",
    "trimmed_mean",
    "trimmed_mean_rows",
    "uncertainty",
    "unit_sum",
    "upgrad",
    "upgrad_weights",
    "weighted",
    "weighted_sum",
]
