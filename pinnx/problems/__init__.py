"""Benchmark PDEs with reference solutions and default recipes, by name.

A problem is one file holding its factory (returning a `Problem`) and its default `Recipe`
(attached as `factory.recipe`, so the command line reads it without building the problem),
plus one line in `PROBLEMS`.
"""

from ._problem import Grid, Problem, relative_l2
from ._recipe import SCHEDULES, Recipe
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
"""Problem factories by command-line name; `PROBLEMS[name].recipe` is the default recipe."""

__all__ = [
    "PROBLEMS",
    "SCHEDULES",
    "Grid",
    "Problem",
    "Recipe",
    "burgers",
    "diffusion_reaction",
    "helmholtz",
    "klein_gordon",
    "relative_l2",
]
