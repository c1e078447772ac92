"""`ModelSampler`: a data hook for `pinnx.fit` that sees the model being trained.

It lives below the training loop so that samplers built from the model's residuals
(`pinnx.pointwise.rad_sampler`) need not import `pinnx.train`.
"""

from collections.abc import Callable
from typing import Any

from jaxtyping import PRNGKeyArray, PyTree

__all__ = ["ModelSampler"]


class ModelSampler:
    """A data hook for `fit` that sees the current model: `sample(key, model) -> batch`.

    `fit` calls a plain `data(key)` with the key alone. Wrap a function of the key *and the
    model* in `ModelSampler` and `fit` passes it the model being trained (its parameters at
    that step, before the step's update) every time it resamples, inside the compiled loop.
    That is what residual-based resampling needs (e.g. `pinnx.pointwise.rad_sampler`).

    The function must be jittable and return batches of one fixed structure, shape and
    dtype (the loop is compiled once): replace points, do not grow the set.

    Args:
        fn: `fn(key, model) -> batch`.

    Examples:
        A sampler that receives the model (this one ignores it; `pinnx.pointwise.rad_sampler`
        draws points where the model's residual is large):

        >>> import jax, pinnx
        >>> problem = pinnx.problems.helmholtz(n_pde=16, n_bc=16, n_test=11)
        >>> data = pinnx.ModelSampler(lambda key, model: problem.sample(key))
        >>> data(jax.random.key(0), None)["pde"].shape   # fit passes the model it trains
        (16, 2)

        Given to `pinnx.fit(losses, model, opt, data, steps=..., resample_every=...)` in
        place of a plain sampler.
    """

    def __init__(self, fn: Callable[[PRNGKeyArray, Any], PyTree]):
        if not callable(fn):
            raise ValueError(f"ModelSampler wraps a function fn(key, model), got {fn!r}")
        self.fn = fn

    def __call__(self, key: PRNGKeyArray, model: Any) -> PyTree:
        return self.fn(key, model)

    def __repr__(self) -> str:
        return f"ModelSampler({self.fn!r})"
