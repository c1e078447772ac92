"""Shared-suite registry of the closed-form Gram aggregators: imtl_g, aligned_mtl, config,
m_config, dcgd (merged in combiners.py)."""

from pinnx.combine._aligned import aligned_mtl
from pinnx.combine._config import config
from pinnx.combine._dcgd import dcgd
from pinnx.combine._imtl import imtl_g
from pinnx.combine._m_config import m_config

CASES: dict = {
    "imtl_g": lambda k: imtl_g(),
    "aligned_mtl": lambda k: aligned_mtl(),
    "config": lambda k: config(),
    "m_config": lambda k: m_config(0.9, 0.999),
    "m_config_no_second_moment": lambda k: m_config(0.5, None),
    "dcgd_center": lambda k: dcgd("center"),
    "dcgd_projection": lambda k: dcgd("projection"),
    "dcgd_average": lambda k: dcgd("average"),
}
COORDINATEWISE: set = set()
NOT_PARETO: dict[str, str] = {}
