"""The shared suite every combiner must pass (cf. optax/contrib/_common_test.py).

The checks are `pinnx.testing`'s (users run the same ones on their own combiners): jit,
inside `optax.chain`, float32/float64 preserved, state structure stable, no recompilation
on later steps, convergence on a two-task quadratic, finite output for finite degenerate
input. Every registered combiner has a case in `combiners.CASES` (tests/test_registry.py).
The fast tier runs jit (K = 3) and optax.chain on one case of every registered combiner; the
other cases and checks are `slow`
(each method's own test module checks its defining property in the fast tier).
"""

import pytest
from combiners import CASES, COORDINATEWISE, NOT_PARETO
from strategies import count

from pinnx import combine, testing

pytestmark = pytest.mark.standard_promotion  # optax transforms run in every chain


def _one_case_per_combiner() -> set[str]:
    """The case named after each registered combiner (else its first variant)."""
    return {name if name in CASES else min(c for c in CASES if c.startswith(name + "_"))
            for name in combine.registry()}


FAST = _one_case_per_combiner()
each_combiner = pytest.mark.parametrize("name", sorted(CASES))
# in the fast tier, one case per registered combiner; the variants run in the slow tier
each_combiner_fast = pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(CASES)])


@pytest.mark.parametrize("k", [pytest.param(1, marks=pytest.mark.slow), 3])
@each_combiner_fast
def test_jit_matches_eager(name, k):
    testing.check_jit(CASES[name], k=k)


@each_combiner_fast
def test_inside_optax_chain(name):
    testing.check_optax_chain(CASES[name])


@pytest.mark.slow
@each_combiner
def test_dtype_and_state_preserved(name):
    testing.check_dtypes_and_state(CASES[name])


@pytest.mark.slow
@each_combiner
def test_no_recompilation(name):
    testing.check_no_recompilation(CASES[name])


@pytest.mark.slow
@each_combiner
def test_converges_on_two_task_quadratic(name):
    """Two quadratics with optima a and b: training settles on the Pareto set, the segment
    [a, b] (where no direction decreases both); coordinate-wise methods settle inside the
    box spanned by a and b."""
    if name in NOT_PARETO:
        pytest.skip(NOT_PARETO[name])
    testing.check_pareto(CASES[name], coordinatewise=name in COORDINATEWISE)


@pytest.mark.slow
@each_combiner
def test_finite_input_gives_finite_output(name):
    """Zero, parallel, opposite, 1e-20- and 1e20-scaled rows: finite updates, dtype kept.
    One pytree layout (three leaves, one of them scalar), so that compilations are few."""
    testing.check_finite(CASES[name], examples=count(20))
