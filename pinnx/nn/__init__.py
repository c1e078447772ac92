"""Networks (equinox Modules) for PINNs, and what describes their structure.

Every network maps one unbatched point to its output (`jax.vmap` it for a batch). Besides
the networks, this namespace holds the functions that describe a network's parameters for
the optimizer side: ownership for `pinnx.route` (`adapter_owners`, `modsync_owners`),
`optax.partition` labels (`modsync_labels`), shared-parameter masks for
`pinnx.cosine_gate(where=...)` (`shared_mask`), and the measures of a masked network
(`sparsity`). Loss functions built on these networks are in `pinnx.residuals`
(`adapter_losses`, `cross_losses`, `sparsity_loss`); optimizer pieces wired for them in
`pinnx.recipes` (`modsync_optimizer`, `sparsity_penalty`).
"""

from ._adapters import LoRA, PerLossAdapters, adapter_owners
from ._hard_sharing import HardSharing
from ._lda import LDA
from ._mlp import MLP
from ._mmoe import MMoE
from ._modified_mlp import ModifiedMLP
from ._modsync import (
    MaskedLinear,
    ModSyncMLP,
    binary_step,
    long_tailed_derivative,
    modsync_labels,
    modsync_owners,
    sparsity,
)
from ._multitask import MultiTaskNet, shared_mask
from ._ple import PLE
from ._rwf import FactorizedLinear
from ._soft_sharing import SoftSharing

__all__ = [
    # single-task networks
    "LDA",
    "MLP",
    "FactorizedLinear",
    "ModifiedMLP",
    # multi-task networks (ATL-PINN) and their shared parameters
    "PLE",
    "HardSharing",
    "MMoE",
    "MultiTaskNet",
    "SoftSharing",
    "shared_mask",
    # per-loss adapters and their ownership
    "LoRA",
    "PerLossAdapters",
    "adapter_owners",
    # ModSync masked layers, their ownership, labels and sparsity
    "MaskedLinear",
    "ModSyncMLP",
    "binary_step",
    "long_tailed_derivative",
    "modsync_labels",
    "modsync_owners",
    "sparsity",
]
