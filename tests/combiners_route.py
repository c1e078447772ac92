"""Shared-suite registry of `route` (merged in combiners.py): the last task owns leaf "b"
where the parameters have one (the suite's layouts), every other leaf is shared."""

from pinnx.combine._linear import sum as sum_
from pinnx.combine._lra import lra
from pinnx.combine._pcgrad import pcgrad
from pinnx.combine._route import route


def _own(k):
    return lambda params: {n: (k - 1 if n == "b" else None) for n in params}


CASES: dict = {
    "route_sum": lambda k: route(sum_(), own=_own(k)),
    "route_pcgrad": lambda k: route(pcgrad(seed=1), own=_own(k)),
    "route_lra_sum": lambda k: route(lra(main=0) | sum_(), own=_own(k)),
}
COORDINATEWISE: set = set()
NOT_PARETO: dict[str, str] = {}
