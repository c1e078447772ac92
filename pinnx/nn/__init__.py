"""Networks (equinox Modules) for PINNs."""

from ._adapters import (
    AdapterLosses,
    LoRA,
    PerLossAdapters,
    adapter_losses,
    adapter_owners,
    cross_losses,
)
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
    modsync_optimizer,
    modsync_owners,
    sparsity,
    sparsity_loss,
    sparsity_penalty,
)
from ._multitask import MultiTaskNet, shared_mask
from ._ple import PLE
from ._rwf import FactorizedLinear
from ._soft_sharing import SoftSharing

__all__ = [
    "LDA",
    "MLP",
    "PLE",
    "AdapterLosses",
    "FactorizedLinear",
    "HardSharing",
    "LoRA",
    "MMoE",
    "MaskedLinear",
    "ModSyncMLP",
    "ModifiedMLP",
    "MultiTaskNet",
    "PerLossAdapters",
    "SoftSharing",
    "adapter_losses",
    "adapter_owners",
    "binary_step",
    "cross_losses",
    "long_tailed_derivative",
    "modsync_labels",
    "modsync_optimizer",
    "modsync_owners",
    "shared_mask",
    "sparsity",
    "sparsity_loss",
    "sparsity_penalty",
]
