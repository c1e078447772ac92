"""Hypothesis strategies for per-task gradients, shared by the combiner tests.

They live in `pinnx.testing` (users test their own combiners with them); this module
re-exports them and adds `examples`, the per-test example count under the profiles.
"""

from hypothesis import settings

from pinnx.testing import (  # noqa: F401  (re-exported for the test modules)
    KINDS,
    LAYOUTS,
    flatten,
    flush,
    params_like,
    rows,
    split,
    task_grads,
)


def count(n: int) -> int:
    """The number of examples of a property written for `n`, under the loaded profile: n
    under `full` (max_examples 60), n / 5 (at least 3) under the fast `default` (12), and
    the profile's own count where it asks for more (`thorough`: 10^4)."""
    top = settings.default.max_examples
    if top > 100:
        return max(n, top)
    return max(3, -(-n * top // 60))


def examples(n: int) -> settings:
    """Settings for a property written for `n` examples (see `count`)."""
    return settings(max_examples=count(n))
