"""Shared-suite registry of the quadratic-program aggregators: mgda, upgrad, dualproj, cagrad,
nash_mtl (merged in combiners.py)."""

CASES: dict = {}
COORDINATEWISE: set = set()
NOT_PARETO: dict[str, str] = {}
