"""The multilayer perceptron PINNs start from."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._rwf import FactorizedLinear, check_point, dense, rwf_params

__all__ = ["MLP"]


class MLP(eqx.Module):
    """Fully connected network u(x) for one unbatched point (use `jax.vmap` for batches).

    `depth` hidden layers of `width` units with `activation` (tanh by default), a linear
    output layer, Glorot-normal weights and zero biases (Glorot & Bengio 2010), as in the
    original PINN papers. With `fourier_features=m`, the input is first mapped to
    [cos(2 pi B x), sin(2 pi B x)] with a fixed random B (m, in_size) ~ N(0, scale^2)
    (Tancik et al. 2020; Wang, Wang, Perdikaris 2021): B is an array leaf but receives no
    gradient (it is wrapped in `jax.lax.stop_gradient`).

    With `rwf=True` (or `rwf=(mu, sigma)`), every linear layer is a random weight
    factorisation W = diag(exp(s)) V (Wang et al. 2022): s ~ N(mu, sigma^2) per output unit
    (paper defaults mu = 1, sigma = 0.1) and V = W_init / exp(s), both trainable. The same
    key gives the same W_init, so the factorised network computes the same function as the
    plain one at initialisation; training then moves s and V instead of W.

    Args:
        in_size: input dimension d (e.g. 2 for (x, t)).
        out_size: output dimension m, or "scalar" for a scalar output.
        width: units per hidden layer.
        depth: number of hidden layers (>= 1).
        key: PRNG key for the initial weights.
        activation: elementwise nonlinearity.
        fourier_features: number m of random Fourier features, or None.
        fourier_scale: standard deviation of B's entries.
        dtype: parameter dtype (default: JAX's default float type).
        rwf: random weight factorisation: False/None (off), True (mu, sigma) = (1, 0.1),
            or a pair (mu, sigma).

    Examples:
        >>> import jax, pinnx
        >>> model = pinnx.nn.MLP(2, "scalar", width=16, depth=2, key=jax.random.key(0))
        >>> points = jax.random.uniform(jax.random.key(1), (5, 2))
        >>> jax.vmap(model)(points).shape   # (N, 2) -> (N,)
        (5,)
        >>> rwf_model = pinnx.nn.MLP(2, "scalar", 16, 2, key=jax.random.key(0), rwf=True)
        >>> type(rwf_model.layers[0]).__name__
        'FactorizedLinear'

    References:
        Raissi, Perdikaris, Karniadakis. "Physics-informed neural networks". J. Comput. Phys.
        378, 2019. Tancik et al. "Fourier features let networks learn high frequency
        functions in low dimensional domains". NeurIPS 2020. https://arxiv.org/abs/2006.10739
        Wang, Wang, Seidman, Perdikaris. "Random weight factorization improves the training
        of continuous neural representations". 2022. https://arxiv.org/abs/2210.01274
    """

    layers: tuple[eqx.nn.Linear | FactorizedLinear, ...]
    fourier: Float[Array, "features in_size"] | None
    in_size: int = eqx.field(static=True)
    out_size: int | str = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int | str,
        width: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jnp.tanh,
        fourier_features: int | None = None,
        fourier_scale: float = 1.0,
        dtype: DTypeLike | None = None,
        rwf: bool | tuple[float, float] | None = False,
    ):
        if in_size < 1 or width < 1 or depth < 1:
            raise ValueError(
                f"MLP needs in_size, width and depth >= 1, got {in_size}, {width}, {depth}"
            )
        if out_size != "scalar" and (not isinstance(out_size, int) or out_size < 1):
            raise ValueError(f"out_size must be a positive int or 'scalar', got {out_size!r}")
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        rwf = rwf_params(rwf)
        fkey, *keys = jax.random.split(key, depth + 2)
        if fourier_features is not None:
            if fourier_features < 1:
                raise ValueError(f"fourier_features must be >= 1, got {fourier_features}")
            self.fourier = fourier_scale * jax.random.normal(
                fkey, (fourier_features, in_size), dtype
            )
            first = 2 * fourier_features
        else:
            self.fourier = None
            first = in_size
        sizes = [first] + [width] * depth + [1 if out_size == "scalar" else out_size]
        self.layers = tuple(
            dense(k, n_in, n_out, dtype, rwf)
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
        )
        self.in_size = in_size
        self.out_size = out_size
        self.activation = activation

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "..."]:
        """u(x): shape () for out_size="scalar", else (out_size,)."""
        check_point("MLP", x, self.in_size)
        h = x
        if self.fourier is not None:
            z = 2 * jnp.pi * (jax.lax.stop_gradient(self.fourier) @ x)
            h = jnp.concatenate([jnp.cos(z), jnp.sin(z)])
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        out = self.layers[-1](h)
        return out[0] if self.out_size == "scalar" else out
