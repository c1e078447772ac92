"""Benchmark PDEs with reference solutions, by name."""

from ._problem import Problem, relative_l2
from .burgers import burgers

PROBLEMS = {"burgers": burgers}
"""Problem factories by command-line name."""

__all__ = ["PROBLEMS", "Problem", "burgers", "relative_l2"]
