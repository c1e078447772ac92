"""The modified MLP of Wang, Teng, Perdikaris (2021): two input encoders gate every layer."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._rwf import FactorizedLinear, check_point, dense, rwf_params

__all__ = ["ModifiedMLP"]

Linear = eqx.nn.Linear | FactorizedLinear


class ModifiedMLP(eqx.Module):
    """Modified MLP u(x) for one unbatched point: two encoders of x gate every hidden layer.

    With act the activation (tanh by default) and `depth` = L hidden layers of `width` units:

        U = act(W_u x + b_u),   V = act(W_v x + b_v)
        H_1 = act(W_1 x + b_1)
        Z_l = act(W_{l+1} H_l + b_{l+1}),   H_{l+1} = (1 - Z_l) * U + Z_l * V,  l = 1..L-1
        u(x) = W_out H_L + b_out

    so `depth` counts hidden layers as in `MLP` (the paper's L gating layers are depth - 1
    here), and the network has the MLP's weights plus the two encoders (2 (d + 1) width more
    parameters). Weights are Glorot normal, biases zero; `rwf` factorises every linear layer,
    encoders included, as in `MLP`.

    Args:
        in_size: input dimension d.
        out_size: output dimension m, or "scalar" for a scalar output.
        width: units per hidden layer (and per encoder).
        depth: number of hidden layers L (>= 2: with one layer nothing is gated).
        key: PRNG key for the initial weights.
        activation: elementwise nonlinearity.
        dtype: parameter dtype (default: JAX's default float type).
        rwf: random weight factorisation: False/None, True for (mu, sigma) = (1, 0.1), or a
            pair (mu, sigma); see `MLP`.

    Examples:
        >>> import jax, pinnx
        >>> model = pinnx.nn.ModifiedMLP(2, "scalar", width=16, depth=2, key=jax.random.key(0))
        >>> points = jax.random.uniform(jax.random.key(1), (5, 2))
        >>> jax.vmap(model)(points).shape   # (N, 2) -> (N,)
        (5,)

    References:
        Wang, Teng, Perdikaris. "Understanding and mitigating gradient flow pathologies in
        physics-informed neural networks". SIAM J. Sci. Comput. 43(5), 2021.
        https://arxiv.org/abs/2001.04536
    """

    encoder_u: Linear
    encoder_v: Linear
    layers: tuple[Linear, ...]
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
        dtype: DTypeLike | None = None,
        rwf: bool | tuple[float, float] | None = False,
    ):
        if in_size < 1 or width < 1 or depth < 2:
            raise ValueError(
                "ModifiedMLP needs in_size >= 1, width >= 1 and depth >= 2, got "
                f"{in_size}, {width}, {depth}"
            )
        if out_size != "scalar" and (not isinstance(out_size, int) or out_size < 1):
            raise ValueError(f"out_size must be a positive int or 'scalar', got {out_size!r}")
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        rwf = rwf_params(rwf)
        ku, kv, *keys = jax.random.split(key, depth + 3)
        self.encoder_u = dense(ku, in_size, width, dtype, rwf)
        self.encoder_v = dense(kv, in_size, width, dtype, rwf)
        sizes = [in_size] + [width] * depth + [1 if out_size == "scalar" else out_size]
        self.layers = tuple(
            dense(k, n_in, n_out, dtype, rwf)
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
        )
        self.in_size = in_size
        self.out_size = out_size
        self.activation = activation

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "..."]:
        """u(x): shape () for out_size="scalar", else (out_size,)."""
        check_point("ModifiedMLP", x, self.in_size)
        u = self.activation(self.encoder_u(x))
        v = self.activation(self.encoder_v(x))
        h = self.activation(self.layers[0](x))
        for layer in self.layers[1:-1]:
            z = self.activation(layer(h))
            h = (1 - z) * u + z * v
        out = self.layers[-1](h)
        return out[0] if self.out_size == "scalar" else out
