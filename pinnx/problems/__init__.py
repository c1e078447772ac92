"""Benchmark PDEs with reference solutions, by name."""

from ._problem import Problem, relative_l2
from .burgers import burgers
from .diffusion_reaction import diffusion_reaction
from .helmholtz import helmholtz
from .klein_gordon import klein_gordon

PROBLEMS = {
    "burgers": burgers,
    "diffusion_reaction": diffusion_reaction,
    "helmholtz": helmholtz,
    "klein_gordon": klein_gordon,
}
"""Problem factories by command-line name."""

__all__ = [
    "PROBLEMS",
    "Problem",
    "burgers",
    "diffusion_reaction",
    "helmholtz",
    "klein_gordon",
    "relative_l2",
]
