"""The layer-wise dynamic attention (LDA) network of ACR-PINN (Niu et al. 2026)."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._rwf import check_point, dense

__all__ = ["LDA", "LDALayer"]


class LDALayer(eqx.Module):
    """One hidden layer of `LDA`: a dense layer, two re-encodings of x, and their gate.

    Attributes:
        dense: W, b (width x n_in): a = act(W h + b).
        encode1, encode2: E1, c1 and E2, c2 (width x d): e_i = act(E_i x + c_i).
        gate_in: G1 (attention_width x 3 width), no bias.
        gate_out: G2 (2 width x attention_width), no bias.
    """

    dense: eqx.nn.Linear
    encode1: eqx.nn.Linear
    encode2: eqx.nn.Linear
    gate_in: eqx.nn.Linear
    gate_out: eqx.nn.Linear

    def parts(
        self, h: Float[Array, " n_in"], x: Float[Array, " d"], activation: Callable
    ) -> tuple[Array, Array, Array, Float[Array, "2 width"]]:
        """(a, e1, e2, weights): the layer's pieces; weights[i] multiplies e_{i+1}."""
        a = activation(self.dense(h))
        e1 = activation(self.encode1(x))
        e2 = activation(self.encode2(x))
        logits = self.gate_out(jnp.tanh(self.gate_in(jnp.concatenate([a, e1, e2]))))
        weights = jax.nn.softmax(logits.reshape(2, a.shape[0]), axis=0)
        return a, e1, e2, weights

    def __call__(
        self, h: Float[Array, " n_in"], x: Float[Array, " d"], activation: Callable
    ) -> Float[Array, " width"]:
        a, e1, e2, w = self.parts(h, x, activation)
        return a + w[0] * e1 + w[1] * e2


class LDA(eqx.Module):
    """Layer-wise dynamic attention network u(x) for one unbatched point (use `jax.vmap`).

    Every hidden layer l = 1..depth re-encodes the raw input x twice and lets a small gate
    choose, feature by feature, how much of each encoding to add to the layer's activation
    (a_0 = x, act = tanh by default):

        a   = act(W_l a_{l-1} + b_l)
        e_1 = act(E1_l x + c1_l),   e_2 = act(E2_l x + c2_l)
        [s_1; s_2] = G2_l tanh(G1_l [a; e_1; e_2])          (s_i of size width)
        w_i = exp(s_i) / (exp(s_1) + exp(s_2))              (softmax per feature)
        a_l = a + w_1 * e_1 + w_2 * e_2

    and u(x) = W_out a_depth + b_out (linear output). Weights are Glorot normal, biases zero;
    the gate has no biases, as in the formula. A layer has width (n_in + 1) + 2 width (d + 1)
    + 3 width * attention_width + 2 width * attention_width parameters, so at equal width
    and depth an LDA net is several times larger than an `MLP`: compare parameter counts.
    The paper trains it with PCGrad (random order): `pinnx.pcgrad() | optax.adam(lr)`.

    Args:
        in_size: input dimension d.
        out_size: output dimension m, or "scalar" for a scalar output.
        width: units per hidden layer (and per re-encoding).
        depth: number of hidden (attention) layers (>= 1).
        key: PRNG key for the initial weights.
        activation: nonlinearity of the layers and re-encodings (the gate's hidden layer is
            always tanh).
        attention_width: hidden size of the gate G2 tanh(G1 .) (default: `width`).
        dtype: parameter dtype (default: JAX's default float type).

    Examples:
        >>> import jax, optax, pinnx
        >>> model = pinnx.nn.LDA(2, "scalar", width=16, depth=3, key=jax.random.key(0))
        >>> points = jax.random.uniform(jax.random.key(1), (5, 2))
        >>> jax.vmap(model)(points).shape                   # (N, 2) -> (N,)
        (5,)
        >>> w = model.attention_weights(points[0])          # (depth, 2, width)
        >>> w.shape, bool(jax.numpy.allclose(w.sum(axis=1), 1.0))   # sums to 1 on axis 1
        ((3, 2, 16), True)
        >>> opt = pinnx.pcgrad() | optax.adam(1e-3)         # the paper's ACR-PINN recipe

    References:
        Niu, Guo, He, Chen, Shi. "Architecture-Optimization Co-Design for Physics-Informed
        Neural Networks Via Attentive Representations and Conflict-Resolved Gradients".
        2026. https://arxiv.org/abs/2601.12971
    """

    layers: tuple[LDALayer, ...]
    output: eqx.nn.Linear
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
        attention_width: int | None = None,
        dtype: DTypeLike | None = None,
    ):
        attention_width = width if attention_width is None else attention_width
        if min(in_size, width, depth, attention_width) < 1:
            raise ValueError(
                "LDA needs in_size, width, depth and attention_width >= 1, got "
                f"{in_size}, {width}, {depth}, {attention_width}"
            )
        if out_size != "scalar" and (not isinstance(out_size, int) or out_size < 1):
            raise ValueError(f"out_size must be a positive int or 'scalar', got {out_size!r}")
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        kout, *keys = jax.random.split(key, depth + 1)
        layers = []
        for i, k in enumerate(keys):
            kw, k1, k2, kg1, kg2 = jax.random.split(k, 5)
            layers.append(LDALayer(
                dense=dense(kw, in_size if i == 0 else width, width, dtype),
                encode1=dense(k1, in_size, width, dtype),
                encode2=dense(k2, in_size, width, dtype),
                gate_in=dense(kg1, 3 * width, attention_width, dtype, use_bias=False),
                gate_out=dense(kg2, attention_width, 2 * width, dtype, use_bias=False),
            ))
        self.layers = tuple(layers)
        self.output = dense(kout, width, 1 if out_size == "scalar" else out_size, dtype)
        self.in_size = in_size
        self.out_size = out_size
        self.activation = activation

    def _check(self, x: Array) -> None:
        check_point("LDA", x, self.in_size)

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "..."]:
        """u(x): shape () for out_size="scalar", else (out_size,)."""
        self._check(x)
        h = x
        for layer in self.layers:
            h = layer(h, x, self.activation)
        out = self.output(h)
        return out[0] if self.out_size == "scalar" else out

    def attention_weights(self, x: Float[Array, " in_size"]) -> Float[Array, "depth 2 width"]:
        """The gate weights (w_1, w_2) of every layer at x: shape (depth, 2, width).

        For each layer and feature the two weights are a softmax: in (0, 1), summing to one.
        """
        self._check(x)
        h, weights = x, []
        for layer in self.layers:
            a, e1, e2, w = layer.parts(h, x, self.activation)
            h = a + w[0] * e1 + w[1] * e2
            weights.append(w)
        return jnp.stack(weights)
