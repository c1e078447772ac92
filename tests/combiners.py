"""The registry of combiners the shared suite (test_combiner_suite.py) runs on.

Every combiner pinnx ships must appear here. `make(k)` builds it for K tasks and returns a
chain that ends at an aggregator (task transforms are composed with `pinnx.mean()`).
Methods that rescale coordinates per task (per-task Adam) are not expected to stop on the
Pareto set of two quadratics, only inside the box spanned by the two optima: they are listed
in `COORDINATEWISE`. Methods whose fixed points are not Pareto-stationary by design (random
or robust aggregation) are listed in `NOT_PARETO` with the reason, and skip that check.

Each family of methods keeps its own registry module (combiners_<family>.py) with the same
three names; they are merged here.
"""

import combiners_closed
import combiners_qp
import combiners_robust
import combiners_route
import combiners_weightings
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
    "fairgrad": lambda k: pc.fairgrad(),
    "fairgrad_alpha_2": lambda k: pc.fairgrad(alpha=2.0),
    "fairgrad_alpha_half": lambda k: pc.fairgrad(alpha=0.5),
    "accumulate_upgrad": lambda k: pc.accumulate(pc.upgrad(), every=1),
    "accumulate_lra_sum_two": lambda k: pc.accumulate(pc.lra(main=0) | pc.sum(), every=2),
    "inject_cagrad": lambda k: pc.inject_hyperparams(pc.cagrad)(c=0.4),
}

COORDINATEWISE = {"per_task_adam"}
NOT_PARETO: dict[str, str] = {}

for _family in (combiners_qp, combiners_closed, combiners_robust, combiners_weightings,
                combiners_route):
    CASES.update(_family.CASES)
    COORDINATEWISE |= set(getattr(_family, "COORDINATEWISE", ()))
    NOT_PARETO.update(getattr(_family, "NOT_PARETO", {}))
