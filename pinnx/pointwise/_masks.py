"""Mask functions m(lambda) of self-adaptive (SA-PINN) point weights.

SA-PINN multiplies each squared residual by m(lambda_i), where lambda_i is a trainable
weight the optimizer *ascends*. The mask must be non-negative, differentiable and
non-decreasing on the weights' range, so that ascending lambda_i raises the weight of a
point with a large residual (McClenny & Braga-Neto 2023, section 2.2).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["sigmoid_mask", "identity_mask", "square_mask", "polynomial_mask"]

Mask = Callable[[Float[Array, "*shape"]], Float[Array, "*shape"]]


def sigmoid_mask(lam: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """m(lambda) = 1 / (1 + exp(-lambda)): weights bounded in (0, 1).

    m'(lambda) = m (1 - m) > 0, so ascent always raises the weight but saturates: from
    lambda = 0 (m = 1/2) a weight can at most double. Start lower (e.g. lambda = -3,
    m ~ 0.05) for a wider range.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import sigmoid_mask
        >>> print(sigmoid_mask(jnp.zeros(3)))
        [0.5 0.5 0.5]
    """
    return jax.nn.sigmoid(lam)


def identity_mask(lam: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """m(lambda) = lambda: the unbounded linear mask (m' = 1). Keep lambda > 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import identity_mask
        >>> print(identity_mask(jnp.ones(3)))
        [1. 1. 1.]
    """
    return lam


def square_mask(lam: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """m(lambda) = lambda^2 (m' = 2 lambda): the paper's quadratic polynomial mask.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import square_mask
        >>> print(square_mask(jnp.array([1.0, 2.0])))
        [1. 4.]
    """
    return lam * lam


def polynomial_mask(q: float, c: float = 1.0) -> Mask:
    """The polynomial mask m(lambda) = c max(lambda, 0)^q (McClenny & Braga-Neto, eq. 9).

    Non-negative and non-decreasing for q > 0, c > 0; negative lambda maps to 0 (the paper
    keeps lambda >= 0; ascent never lowers a weight, so a positive start stays positive).

    Args:
        q: the power, > 0.
        c: the scale, > 0.

    Returns:
        The mask, a function of an array of any shape.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import polynomial_mask
        >>> m = polynomial_mask(3.0)
        >>> print(m(jnp.array([-1.0, 2.0])))   # negative weights map to 0
        [0. 8.]

    References:
        McClenny, Braga-Neto. "Self-adaptive physics-informed neural networks". J. Comput.
        Phys. 474, 2023. https://arxiv.org/abs/2009.04544
    """
    if not q > 0 or not c > 0:
        raise ValueError(f"polynomial_mask needs q > 0 and c > 0, got q={q}, c={c}")

    def mask(lam):
        # where-guarded: lambda <= 0 gives 0 with a zero (not NaN) derivative for any q
        pos = lam > 0
        base = jnp.where(pos, lam, jnp.ones_like(lam))
        value = jnp.asarray(c, lam.dtype) * base ** jnp.asarray(q, lam.dtype)
        return jnp.where(pos, value, jnp.zeros_like(value))

    mask.__name__ = f"polynomial_mask(q={q}, c={c})"
    return mask


_NAMED = {"sigmoid": sigmoid_mask, "identity": identity_mask, "square": square_mask}


def resolve_mask(mask: str | Mask) -> Mask:
    """A mask from its name ("sigmoid", "identity", "square") or a callable, unchanged.

    Examples:
        >>> from pinnx.pointwise._masks import resolve_mask, square_mask
        >>> resolve_mask("square") is square_mask
        True
    """
    if callable(mask):
        return mask
    if mask not in _NAMED:
        raise ValueError(f"unknown mask {mask!r}: choose one of {sorted(_NAMED)} or pass a "
                         "function, e.g. pinnx.pointwise.polynomial_mask(3.0)")
    return _NAMED[mask]
