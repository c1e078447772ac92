"""Dense layers shared by the MLP family: Glorot-normal init and random weight factorisation."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["FactorizedLinear", "dense", "rwf_params"]

RWF_DEFAULT = (1.0, 0.1)  # (mu, sigma) of the paper


class FactorizedLinear(eqx.Module):
    """A linear layer with random weight factorisation: y = (diag(exp(s)) V) x + b.

    Each output unit i has a trainable log-scale s_i; the weight matrix the layer applies is
    W = exp(s)[:, None] * V. Built by `from_weight` from an ordinary initial W with
    s ~ N(mu, sigma^2) and V = W / exp(s), so at initialisation it computes the same function
    as the unfactorised layer (up to rounding); only the parametrisation, hence the gradient
    flow, differs.

    Attributes:
        v: (out, in) direction matrix V.
        s: (out,) log-scales s.
        bias: (out,) bias b.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from pinnx.nn import FactorizedLinear
        >>> w = jax.random.normal(jax.random.key(0), (4, 3))
        >>> lin = FactorizedLinear.from_weight(w, jnp.zeros(4), key=jax.random.key(1))
        >>> bool(jnp.allclose(lin(jnp.ones(3)), w @ jnp.ones(3), rtol=1e-5))   # same function
        True

    References:
        Wang, Wang, Seidman, Perdikaris. "Random weight factorization improves the training
        of continuous neural representations". 2022. https://arxiv.org/abs/2210.01274
    """

    v: Float[Array, "out in"]
    s: Float[Array, " out"]
    bias: Float[Array, " out"]

    @classmethod
    def from_weight(
        cls,
        weight: Float[Array, "out in"],
        bias: Float[Array, " out"],
        *,
        key: PRNGKeyArray,
        mu: float = RWF_DEFAULT[0],
        sigma: float = RWF_DEFAULT[1],
    ) -> "FactorizedLinear":
        """Factorise an initial `weight`: s ~ N(mu, sigma^2) per output row, V = W / exp(s)."""
        if weight.ndim != 2 or bias.shape != weight.shape[:1]:
            raise ValueError(f"expected weight (out, in) and bias (out,), got {weight.shape} "
                             f"and {bias.shape}")
        if not (math.isfinite(mu) and math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"rwf needs finite mu and sigma >= 0, got ({mu}, {sigma})")
        s = mu + sigma * jax.random.normal(key, weight.shape[:1], weight.dtype)
        return cls(v=weight / jnp.exp(s)[:, None], s=s, bias=bias)

    @property
    def weight(self) -> Float[Array, "out in"]:
        """The effective weight matrix diag(exp(s)) V."""
        return jnp.exp(self.s)[:, None] * self.v

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        return self.weight @ x + self.bias


def rwf_params(rwf: bool | tuple[float, float] | None) -> tuple[float, float] | None:
    """Normalise the `rwf` option: None/False -> None, True -> (1, 0.1), (mu, sigma) kept."""
    if rwf is None or rwf is False:
        return None
    if rwf is True:
        return RWF_DEFAULT
    try:
        mu, sigma = (float(v) for v in rwf)
    except (TypeError, ValueError):
        raise ValueError(f"rwf must be a bool or a pair (mu, sigma), got {rwf!r}") from None
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"rwf needs finite mu and sigma >= 0, got ({mu}, {sigma})")
    return mu, sigma


def dense(
    key: PRNGKeyArray,
    n_in: int,
    n_out: int,
    dtype: DTypeLike,
    rwf: tuple[float, float] | None = None,
    use_bias: bool = True,
) -> eqx.nn.Linear | FactorizedLinear:
    """A Glorot-normal, zero-bias linear layer, factorised when `rwf` = (mu, sigma) is given.

    The initial W depends only on `key`, so the factorised and plain layers built from one
    key compute the same function at initialisation (s is drawn from `fold_in(key, 1)`).
    """
    if rwf is not None and not use_bias:
        raise ValueError("random weight factorisation is only implemented with a bias")
    weight = jax.nn.initializers.glorot_normal()(key, (n_out, n_in), dtype)
    bias = jnp.zeros((n_out,), dtype)
    if rwf is not None:
        return FactorizedLinear.from_weight(weight, bias, key=jax.random.fold_in(key, 1),
                                            mu=rwf[0], sigma=rwf[1])
    layer = eqx.nn.Linear(n_in, n_out, use_bias=use_bias, key=key, dtype=dtype)
    if use_bias:
        return eqx.tree_at(lambda lin: (lin.weight, lin.bias), layer, (weight, bias))
    return eqx.tree_at(lambda lin: lin.weight, layer, weight)


def check_point(who: str, x: Array, in_size: int) -> None:
    """A clear error unless x is one point of shape (in_size,) (networks are unbatched)."""
    if jnp.shape(x) != (in_size,):
        raise ValueError(f"{who} expects one point of shape ({in_size},), got "
                         f"{jnp.shape(x)}; use jax.vmap(model) for a batch")
