"""Shared-suite registry of the quadratic-program aggregators: mgda, upgrad, dualproj, cagrad,
nash_mtl (merged in combiners.py)."""

from pinnx.combine._cagrad import cagrad
from pinnx.combine._mgda import mgda
from pinnx.combine._nash import nash_mtl
from pinnx.combine._upgrad import dualproj, upgrad

CASES: dict = {
    "mgda": lambda k: mgda(),
    "upgrad": lambda k: upgrad(),
    "dualproj": lambda k: dualproj(),
    "cagrad": lambda k: cagrad(c=0.5),
    "nash_mtl": lambda k: nash_mtl(),
}
COORDINATEWISE: set = set()
NOT_PARETO: dict[str, str] = {}
