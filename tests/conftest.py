"""Test configuration: float64 available, strict dtype promotion, tiers and profiles.

Tiers: `pytest` runs the fast tier (what CI runs); tests marked `slow` (end-to-end scripts,
the shared suite's longer checks, long numerical checks) run with
`pytest -m "slow or not slow"`.

Hypothesis profiles, chosen with `HYPOTHESIS_PROFILE=<name>`: ``default`` (the fast tier's:
derandomized, a fifth of each property's examples, see `strategies.examples`), ``full``
(derandomized, every property's own example count) and ``thorough`` (10^4 random examples a
property).
"""

import os

# The unit tests are compile-bound (thousands of small XLA programs, each run a few times):
# LLVM's optimisation level 0 compiles them about 1.5x faster. An XLA_FLAGS that sets the
# level itself wins (e.g. --xla_backend_optimization_level=3 to test optimised code).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # after XLA_FLAGS, which the backend reads when it starts
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI's profile is derandomized: the same examples on every run, so a red run reproduces
# `strategies.examples(n)` scales each property's count by max_examples / 60
settings.register_profile("default", max_examples=12, derandomize=True, **_common)
settings.register_profile("full", max_examples=60, derandomize=True, **_common)
settings.register_profile("thorough", max_examples=10_000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _promotion(request):
    """Strict dtype promotion everywhere, except in tests marked `standard_promotion`:
    optax's own transforms (e.g. Adam's bias correction, `decay ** count`) mix a Python
    float with an int32 count, which strict promotion rejects."""
    mode = "standard" if request.node.get_closest_marker("standard_promotion") else "strict"
    with jax.numpy_dtype_promotion(mode):
        yield


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module. Every XLA CPU executable keeps
    a few memory mappings; one xdist worker compiling the whole suite reached Linux's
    default limit of 65,530 mappings (vm.max_map_count) and LLVM aborted the process."""
    yield
    jax.clear_caches()
