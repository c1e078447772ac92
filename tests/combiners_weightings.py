"""Shared-suite registry of the loss weightings (task transforms) and their recipes (merged in
combiners.py).

Every weighting is followed by an aggregator. Most of the shared suite calls `update` without
`losses=` (and without `ntk_traces=`), which the loss-based weightings and `ntk_weights`
refuse by design; `_feed` wraps such a chain so that a missing input is replaced by a
stand-in computed from the rows themselves: losses L_k = ||g_k|| named t0, t1, ... and
traces ||g_k||^2 (scale-safe norms). The stand-ins exercise the weighting on every input the
suite draws, zero rows (zero losses: the skip path) included; the convergence check passes
the true losses, which are then used unchanged.
"""

import pinnx.combine as pc
from pinnx.combine._dwa import dwa
from pinnx.combine._grad_norm_weights import grad_norm_weights
from pinnx.combine._gradnorm import gradnorm
from pinnx.combine._lra import lra
from pinnx.combine._multiadam import multiadam
from pinnx.combine._ntk import ntk_weights
from pinnx.combine._relobralo import relobralo
from pinnx.combine._softadapt import softadapt
from pinnx.combine._uncertainty import uncertainty
from pinnx.tasks import task_norms


def _feed(chain: pc.Chain, label: str) -> pc.Aggregator:
    """`chain` with stand-in `losses=` / `ntk_traces=` where the caller passes none."""

    def update(updates, state, params=None, **extra_args):
        norms = task_norms(updates)
        if extra_args.get("losses") is None:  # named t0, t1, ... as in the quadratic test
            extra_args["losses"] = {f"t{i}": n for i, n in enumerate(norms)}
        if extra_args.get("ntk_traces") is None:
            extra_args["ntk_traces"] = lambda: norms**2
        return chain.update(updates, state, params, **extra_args)

    return pc.Aggregator(chain.init, update, label)


CASES = {
    "lra": lambda k: lra(alpha=0.1, every=5, main=0) | pc.sum(),
    "lra_by_name": lambda k: _feed(lra(main="t1" if k > 1 else "t0", every=1) | pc.mean(),
                                   "lra_by_name"),
    "grad_norm_weights": lambda k: grad_norm_weights(alpha=0.1, every=1) | pc.mean(),
    "ntk_weights": lambda k: _feed(ntk_weights(alpha=0.5, every=3) | pc.sum(), "ntk_weights"),
    "gradnorm": lambda k: _feed(gradnorm(alpha=1.5, learning_rate=0.01) | pc.sum(),
                                "gradnorm"),
    "relobralo": lambda k: _feed(relobralo(alpha=0.9, tau=1.0, rho=1.0) | pc.mean(),
                                 "relobralo"),
    "relobralo_random_lookback": lambda k: _feed(
        relobralo(alpha=0.9, tau=1.0, rho=0.9, seed=1) | pc.mean(),
        "relobralo_random_lookback"),
    "softadapt": lambda k: _feed(softadapt(beta=1.0, normalized=True, loss_weighted=True)
                                 | pc.sum(), "softadapt"),
    "dwa": lambda k: _feed(dwa(temperature=2.0) | pc.sum(), "dwa"),
    "uncertainty": lambda k: _feed(uncertainty(learning_rate=0.05) | pc.sum(), "uncertainty"),
    "multiadam": lambda k: multiadam(),
}

# per-task Adam rescales every coordinate of every row: it settles inside the box of the
# two optima, not on the segment between them (as "per_task_adam" in combiners.py)
COORDINATEWISE: set = {"multiadam"}
NOT_PARETO: dict[str, str] = {
    "relobralo_random_lookback": "the random lookback redraws the weights every few steps "
    "(by design), so the iterate keeps moving near the Pareto set instead of settling; "
    "relobralo (rho = 1, no randomness) is checked",
}
