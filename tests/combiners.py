"""The registry of combiners the shared suite (test_combiner_suite.py) runs on.

Every combiner pinnx ships must appear here. `make(k)` builds it for K tasks and returns a
chain that ends at an aggregator (task transforms are composed with `pinnx.mean()`).
Methods that rescale coordinates per task (per-task Adam) are not expected to stop on the
Pareto set of two quadratics, only inside the box spanned by the two optima: they are listed
in `COORDINATEWISE`.
"""

import optax

import pinnx.combine as pc

CASES = {
    "sum": lambda k: pc.sum(),
    "mean": lambda k: pc.mean(),
    "weighted": lambda k: pc.weighted([float(i + 1) for i in range(k)]),
    "pcgrad": lambda k: pc.pcgrad(seed=3),
    "pcgrad_fixed_order": lambda k: pc.pcgrad(random_order=False),
    "cosine_gate": lambda k: pc.cosine_gate(main=0) | pc.mean(),
    "cosine_gate_threshold": lambda k: pc.cosine_gate(main=k - 1, threshold=0.3) | pc.sum(),
    "per_task_adam": lambda k: pc.per_task(optax.scale_by_adam()) | pc.mean(),
    "per_task_clip": lambda k: pc.per_task(optax.clip_by_global_norm(1.0)) | pc.sum(),
    "gate_then_pcgrad": lambda k: pc.cosine_gate(main=0) | pc.pcgrad(),
}

COORDINATEWISE = {"per_task_adam"}
