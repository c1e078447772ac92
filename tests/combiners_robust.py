"""Shared-suite registry of the stochastic and robust aggregators: graddrop, gradvac, krum,
trimmed_mean, random (merged in combiners.py)."""

CASES: dict = {}
COORDINATEWISE: set = set()
NOT_PARETO: dict[str, str] = {}
