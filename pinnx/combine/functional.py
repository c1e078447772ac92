"""The methods as pure functions: weightings of the Gram matrix, row rules and solvers.

Each aggregator of `pinnx.combine` is built from one of these (and a weighted sum of the
task rows); they are exported for analysis, testing against references and building new
methods. The Gram weightings take the (K,) task norms and the (K, K) cosine matrix
(`pinnx.tasks.normalized_gram`) and return coefficients on the unit directions
u_k = g_k / ||g_k||; `pinnx.combine.gram_aggregator` turns such a function into an
aggregator.
"""

from ._aligned import aligned_mtl_weights, balance_transform
from ._cagrad import cagrad_weights
from ._config import config_weights
from ._dcgd import dcgd_weights
from ._fairgrad import fairgrad_weights
from ._graddrop import graddrop_select
from ._gradnorm import gradnorm_objective
from ._gradvac import gradvac_rows
from ._gram import unit_combination, weighted_sum
from ._imtl import imtl_g_weights
from ._krum import krum_scores, krum_weights
from ._lra import lra_estimates
from ._mgda import mgda_weights
from ._nash import nash_weights
from ._pcgrad import pcgrad_weights
from ._qp import QPInfo, nonneg_qp, psd_solve, simplex_qp
from ._random import random_weights
from ._trimmed_mean import trimmed_mean_rows
from ._upgrad import dual_cone_projection, dualproj_weights, upgrad_weights

__all__ = [
    "QPInfo",
    "aligned_mtl_weights",
    "balance_transform",
    "cagrad_weights",
    "config_weights",
    "dcgd_weights",
    "dual_cone_projection",
    "dualproj_weights",
    "fairgrad_weights",
    "graddrop_select",
    "gradnorm_objective",
    "gradvac_rows",
    "imtl_g_weights",
    "krum_scores",
    "krum_weights",
    "lra_estimates",
    "mgda_weights",
    "nash_weights",
    "nonneg_qp",
    "pcgrad_weights",
    "psd_solve",
    "random_weights",
    "simplex_qp",
    "trimmed_mean_rows",
    "unit_combination",
    "upgrad_weights",
    "weighted_sum",
]
