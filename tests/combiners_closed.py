"""Shared-suite registry of the closed-form Gram aggregators: imtl_g, aligned_mtl, config,
m_config, dcgd (merged in combiners.py)."""

CASES: dict = {}
COORDINATEWISE: set = set()
NOT_PARETO: dict[str, str] = {}
