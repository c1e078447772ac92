"""Benchmark PDEs with reference solutions, by name."""

from ._problem import Problem, relative_l2
from .burgers import burgers
from .helmholtz import helmholtz

PROBLEMS = {"burgers": burgers, "helmholtz": helmholtz}
"""Problem factories by command-line name."""

__all__ = ["PROBLEMS", "Problem", "burgers", "helmholtz", "relative_l2"]
