"""Shared-suite registry of the loss weightings (task transforms) and their recipes (merged in
combiners.py)."""

CASES: dict = {}
COORDINATEWISE: set = set()
NOT_PARETO: dict[str, str] = {}
