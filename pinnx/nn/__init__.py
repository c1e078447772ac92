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
    "ModifiedMLP",
    "MultiTaskNet",
    "PerLossAdapters",
    "SoftSharing",
    "adapter_losses",
    "adapter_owners",
    "cross_losses",
    "shared_mask",
]
