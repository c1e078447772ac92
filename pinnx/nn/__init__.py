"""Networks (equinox Modules) for PINNs."""

from ._mlp import MLP

__all__ = ["MLP"]
