"""Combiners: task transforms and aggregators over per-task gradients, composed with `|`."""

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
from ._gate import cosine_gate
from ._linear import mean, sum, weighted
from ._pcgrad import PCGradState, pcgrad, pcgrad_weights
from ._per_task import PerTaskState, per_task

__all__ = [
    "Aggregator",
    "Chain",
    "Combiner",
    "TaskTransform",
    "as_aggregator",
    "as_task_transform",
    "cosine_gate",
    "mean",
    "pcgrad",
    "pcgrad_weights",
    "PCGradState",
    "per_task",
    "PerTaskState",
    "sum",
    "unit_sum",
    "weighted",
    "weighted_sum",
]
