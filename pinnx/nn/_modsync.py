"""ModSync masked layers: per-objective trainable thresholds that prune the weights.

Kong et al. (2026) observe that wide PINNs trained with conflict-averse aggregators (DCGD,
ConFIG) split into task-exclusive modules, and counter it with *Modular-Sparsity
Synchronization*. Every linear layer carries, besides its weights theta (d_out, d_in), one
threshold vector t_k (d_out,) per objective k (for two objectives: t_r for the PDE residual,
t_b for the boundary). The forward uses the weights masked by the objectives' mean threshold,

    t = (1/K) sum_k t_k,    M_ij = step(|theta_ij| - t_i),    y = (M * theta) x + b,

where step is the Heaviside step (step(0) = 0), differentiated with the long-tailed
straight-through estimator of Dynamic Sparse Training (Liu et al. 2020), see `binary_step`.
Threshold t_k learns from objective k's loss alone plus lambda_s times the sparsity
regulariser

    L_s = sum_layers R_w (sum_k R_s(t_k)),   R_s(t) = sum_i exp(-t_i),
    R_w = exp(D / beta),   D = mean over pairs k < j of ||t_k - t_j||^2,

which for K = 2 is the paper's R_w (R_s(t_r) + R_s(t_b)) with R_w = exp(||t_r - t_b||^2 /
beta): R_s pushes every threshold up (sparser layers) and R_w grows when the objectives'
thresholds, hence the connections each objective would keep, drift apart. The weights and
biases follow the conflict-averse aggregate of the task gradients.

Four pieces make that a pinnx recipe, with `pinnx.fit` and `pinnx.route` unchanged:

- `ModSyncMLP`, the model: an MLP whose linear layers are `MaskedLinear`;
- `modsync_owners`, the ownership for `pinnx.route`: threshold t_k is owned by task k, so
  its gradient is exactly row k (loss k's gradient), while the weights and biases go through
  the aggregator;
- `pinnx.recipes.modsync_optimizer(net, thresholds_lr)`, the optax piece after `route`: an
  `optax.partition` over `modsync_labels` sending the weights and biases to `net` and the
  thresholds through `pinnx.recipes.sparsity_penalty(lambda_s, beta)` (adds lambda_s dL_s/dt)
  and then Adam at their own rate;
- `sparsity(model)`, the fraction of pruned weights per layer, e.g. as `pinnx.fit`'s eval_fn.

This module holds the layers and what describes their structure (exported by `pinnx.nn`);
the training pieces are in `pinnx._modsync_training`, exported by `pinnx.recipes`
(`modsync_optimizer`, `sparsity_penalty`) and `pinnx.residuals` (`sparsity_loss`, L_s).
"""

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._mlp import MLP
from ._rwf import check_point

__all__ = ["MaskedLinear", "ModSyncMLP", "binary_step", "long_tailed_derivative",
           "modsync_owners", "modsync_labels", "sparsity"]

# the labels of `modsync_labels`, the branches of `pinnx.recipes.modsync_optimizer`
NET_LABEL = "net"
THRESHOLDS_LABEL = "thresholds"


def long_tailed_derivative(x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """The long-tailed surrogate derivative of the step function (Liu et al. 2020).

        H'(x) = 2 - 4|x|   for |x| <= 0.4,
                0.4        for 0.4 < |x| <= 1,
                0          for |x| > 1.

    Continuous at |x| = 0.4: a triangular peak near the threshold plus a flat tail that
    still passes gradient to weights (and thresholds) up to one unit away from it, so pruned
    weights can recover.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.nn import long_tailed_derivative
        >>> print(long_tailed_derivative(jnp.array([0.0, 0.1, 0.5, 2.0])).round(3))
        [2.  1.6 0.4 0. ]
    """
    a = jnp.abs(x)
    tail = jnp.where(a <= 1, jnp.full_like(x, 0.4), jnp.zeros_like(x))
    return jnp.where(a <= 0.4, 2 - 4 * a, tail)


@jax.custom_jvp
def _step(x):
    return (x > 0).astype(x.dtype)


@_step.defjvp
def _step_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return (x > 0).astype(x.dtype), long_tailed_derivative(x) * dx


def binary_step(x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """Heaviside step 1[x > 0] in the forward pass, `long_tailed_derivative` in the backward.

    A straight-through estimator: the values are exactly 0 or 1 (in x's dtype), and every
    derivative (forward or reverse mode) uses H'(x) in place of the step's derivative, which
    is zero almost everywhere.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from pinnx.nn import binary_step
        >>> x = jnp.array([-0.5, 0.0, 0.2])
        >>> print(binary_step(x))
        [0. 0. 1.]
        >>> print(jax.grad(lambda x: binary_step(x).sum())(x).round(3))
        [0.4 2.  1.2]

    References:
        Liu, Xu, Shi, Cheung, So. "Dynamic Sparse Training: Find Efficient Sparse Network
        From Scratch With Trainable Masked Layers". ICLR 2020.
        https://arxiv.org/abs/2005.06870
    """
    return _step(x)


class MaskedLinear(eqx.Module):
    """A linear layer whose weights are pruned by per-objective trainable thresholds.

        t = (1/K) sum_k t_k,   M = binary_step(|W| - t[:, None]),   y = (M * W) x + b.

    One threshold per output unit and objective; the mask is binary in the forward pass and
    differentiated with the long-tailed estimator (`binary_step`), so W receives
    g * (M + |W| H'(|W| - t)) and t_k receives -(1/K) sum_j g_ij W_ij H'(|W_ij| - t_i),
    with g the gradient with respect to the masked weight. The bias is not masked.

    Attributes:
        weight: (out, in) weights theta.
        bias: (out,) bias.
        thresholds: {objective: (out,) thresholds t_k}.

    Build one from a plain layer with `MaskedLinear.from_linear(linear, objectives)`.

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp
        >>> from pinnx.nn import MaskedLinear
        >>> linear = eqx.nn.Linear(3, 2, key=jax.random.key(0))
        >>> layer = MaskedLinear.from_linear(linear, ("bc", "pde"))
        >>> layer.objectives
        ('bc', 'pde')
        >>> bool(jnp.allclose(layer(jnp.ones(3)), linear(jnp.ones(3))))   # thresholds 0
        True
    """

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"]
    thresholds: dict[str, Float[Array, " out"]]

    def __check_init__(self):
        if not self.thresholds:
            raise ValueError("MaskedLinear needs at least one objective's thresholds")
        for k, t in self.thresholds.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"objective names must be non-empty strings, got {k!r}")
            if jnp.shape(t) != jnp.shape(self.weight)[:1]:
                raise ValueError(f"thresholds {k!r}: expected shape {jnp.shape(self.weight)[:1]}"
                                 f" (one per output unit), got {jnp.shape(t)}")

    @classmethod
    def from_linear(cls, linear: eqx.nn.Linear, objectives: Sequence[str],
                    threshold_init: float = 0.0) -> "MaskedLinear":
        """Wrap an `eqx.nn.Linear` (with bias): same weights, thresholds all `threshold_init`.

        With threshold 0 (DST's initialisation) the mask keeps every non-zero weight, so the
        layer computes the same function as `linear`.
        """
        if not isinstance(linear, eqx.nn.Linear) or linear.bias is None:
            raise ValueError("MaskedLinear.from_linear needs an eqx.nn.Linear with a bias, got "
                             f"{type(linear).__name__}")
        w = linear.weight
        t0 = jnp.full(w.shape[:1], threshold_init, w.dtype)
        return cls(w, linear.bias, {k: t0 for k in _check_objectives(objectives)})

    @property
    def objectives(self) -> tuple[str, ...]:
        """The objectives' names, sorted (the pytree order of `thresholds`)."""
        return tuple(sorted(self.thresholds))

    def threshold(self, objective: str | None = None) -> Float[Array, " out"]:
        """The mean threshold t = (1/K) sum_k t_k, or objective k's own t_k."""
        if objective is not None:
            if objective not in self.thresholds:
                raise ValueError(f"no thresholds for objective {objective!r}; the objectives "
                                 f"are {self.objectives}")
            return self.thresholds[objective]
        return jnp.mean(jnp.stack([self.thresholds[k] for k in self.objectives]), axis=0)

    def mask(self, objective: str | None = None) -> Float[Array, "out in"]:
        """The binary mask M = step(|W| - t) (with the mean threshold, or objective k's)."""
        return binary_step(jnp.abs(self.weight) - self.threshold(objective)[:, None])

    def masked_weight(self) -> Float[Array, "out in"]:
        """M * W, the weights the forward pass applies."""
        return self.mask() * self.weight

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        return self.masked_weight() @ x + self.bias

    def owners(self) -> "MaskedLinear":
        """This layer's ownership for `pinnx.route`: W and b shared, t_k owned by task k."""
        return eqx.tree_at(lambda m: (m.weight, m.bias, m.thresholds), self,
                           (None, None, {k: k for k in self.thresholds}),
                           is_leaf=lambda x: x is None)


def _check_objectives(objectives: Any) -> tuple[str, ...]:
    if isinstance(objectives, str):
        raise ValueError(f"objectives must be a sequence of names, got the string "
                         f"{objectives!r}")
    names = tuple(sorted(objectives))
    if not names or len(set(names)) != len(names) or not all(
            isinstance(n, str) and n for n in names):
        raise ValueError(f"objectives must be distinct non-empty names, got {tuple(objectives)}")
    return names


class ModSyncMLP(eqx.Module):
    """A tanh MLP whose every linear layer is a `MaskedLinear` (ModSync, Kong et al. 2026).

    `depth` hidden layers of `width` units and a linear output layer, built exactly as
    `pinnx.nn.MLP` with the same arguments and key (Glorot-normal weights, zero biases), so
    the plain MLP with that key is its dense twin; every layer gets one (d_out,) threshold
    vector per objective, initialised to `threshold_init` (0 as in DST: the mask then keeps
    every weight and the network equals its twin).

    Train it with `pinnx.route(aggregator, own=pinnx.nn.modsync_owners) |
    pinnx.recipes.modsync_optimizer(...)`, on a loss function whose task names are
    `objectives` (see the module documentation).

    Args:
        in_size: input dimension d (e.g. 2 for (x, t)).
        out_size: output dimension m, or "scalar".
        width: units per hidden layer.
        depth: number of hidden layers (>= 1); the network has depth + 1 masked layers.
        objectives: the loss names owning one threshold vector each, e.g. ("bc", "pde");
            stored sorted (the row order of `pinnx.task_grads`). K >= 1; K = 1 is plain DST.
        key: PRNG key for the initial weights (as `pinnx.nn.MLP`).
        activation: elementwise nonlinearity.
        dtype: parameter dtype (default: JAX's default float type).
        threshold_init: initial value of every threshold.

    Shapes: `model(x)` takes one point (in_size,) and returns () or (out_size,); use
    `jax.vmap(model)` for a batch.

    Examples:
        >>> import jax, pinnx
        >>> model = pinnx.nn.ModSyncMLP(2, "scalar", width=16, depth=2,
        ...                             objectives=("boundary", "pde"), key=jax.random.key(0))
        >>> points = jax.random.uniform(jax.random.key(1), (5, 2))
        >>> jax.vmap(model)(points).shape
        (5,)
        >>> float(pinnx.nn.sparsity(model)["sparsity"])   # every weight kept at first
        0.0

    References:
        Kong, Park, Kim, Lee. "Modularity-Free Conflict-Averse Training for Generalized
        PINNs". 2026. https://arxiv.org/abs/2606.20156 ; Liu, Xu, Shi, Cheung, So. "Dynamic
        Sparse Training: Find Efficient Sparse Network From Scratch With Trainable Masked
        Layers". ICLR 2020. https://arxiv.org/abs/2005.06870
    """

    layers: tuple[MaskedLinear, ...]
    in_size: int = eqx.field(static=True)
    out_size: int | str = eqx.field(static=True)
    objectives: tuple[str, ...] = eqx.field(static=True)
    activation: Any = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int | str,
        width: int,
        depth: int,
        *,
        objectives: Sequence[str],
        key: PRNGKeyArray,
        activation: Any = jnp.tanh,
        dtype: DTypeLike | None = None,
        threshold_init: float = 0.0,
    ):
        names = _check_objectives(objectives)
        dense = MLP(in_size, out_size, width, depth, key=key, activation=activation, dtype=dtype)
        self.layers = tuple(MaskedLinear.from_linear(layer, names, threshold_init)
                            for layer in dense.layers)
        self.in_size = in_size
        self.out_size = out_size
        self.objectives = names
        self.activation = activation

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "..."]:
        """u(x): shape () for out_size="scalar", else (out_size,)."""
        check_point("ModSyncMLP", x, self.in_size)
        h = x
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        out = self.layers[-1](h)
        return out[0] if self.out_size == "scalar" else out


def _is_masked(x: Any) -> bool:
    return isinstance(x, MaskedLinear)


def masked_layers(tree: PyTree, who: str) -> list[MaskedLinear]:
    layers = [x for x in jax.tree.leaves(tree, is_leaf=_is_masked) if _is_masked(x)]
    if not layers:
        raise ValueError(f"{who} found no pinnx.nn.MaskedLinear layer (a ModSyncMLP) in the "
                         "parameters")
    return layers


def modsync_owners(tree: PyTree) -> PyTree[str | None]:
    """The ownership of every `MaskedLinear` inside `tree`, for `pinnx.route`.

    Threshold t_k of every layer is owned by task k (its update is exactly row k, loss k's
    gradient); weights, biases and everything else are shared (they go through the
    aggregator). Works on the model, its trainable partition or its per-task gradients.

    Examples:
        >>> import jax, optax, pinnx
        >>> model = pinnx.nn.ModSyncMLP(2, "scalar", 8, 1, objectives=("bc", "pde"),
        ...                             key=jax.random.key(0))
        >>> own = pinnx.nn.modsync_owners(model)
        >>> own.layers[0].thresholds, own.layers[0].weight
        ({'bc': 'bc', 'pde': 'pde'}, None)
        >>> opt = pinnx.route(pinnx.dcgd(), own=pinnx.nn.modsync_owners
        ...                   ) | pinnx.recipes.modsync_optimizer(optax.adam(1e-3),
        ...                                                       thresholds_lr=1e-4)
    """
    masked_layers(tree, "modsync_owners")
    return jax.tree.map(lambda x: x.owners() if _is_masked(x) else None, tree,
                        is_leaf=_is_masked)


def modsync_labels(tree: PyTree) -> PyTree[str]:
    """`optax.partition` labels: "thresholds" on every threshold leaf, "net" elsewhere.

    The labels of `pinnx.recipes.modsync_optimizer`'s partition.

    Examples:
        >>> import jax, pinnx
        >>> model = pinnx.nn.ModSyncMLP(2, "scalar", 8, 1, objectives=("bc", "pde"),
        ...                             key=jax.random.key(0))
        >>> labels = pinnx.nn.modsync_labels(model)
        >>> labels.layers[0].thresholds, labels.layers[0].weight
        ({'bc': 'thresholds', 'pde': 'thresholds'}, 'net')
    """
    masked_layers(tree, "modsync_labels")

    def label(x):
        if not _is_masked(x):
            return NET_LABEL
        return eqx.tree_at(lambda m: (m.weight, m.bias, m.thresholds), x,
                           (NET_LABEL, NET_LABEL, {k: THRESHOLDS_LABEL for k in x.thresholds}))

    return jax.tree.map(label, tree, is_leaf=_is_masked)


def sparsity(tree: PyTree, objective: str | None = None) -> dict[str, Float[Array, ""]]:
    """The fraction of pruned weights (mask entries 0) of every `MaskedLinear` in `tree`.

    Returns `{"sparsity_0": s_0, ..., "sparsity_{L-1}": s_{L-1}, "sparsity": s}`: layer l's
    fraction of zeros in its mask M_l (layers in pytree order: input to output for a
    `ModSyncMLP`), and the fraction over all masked weights together. Jittable; the values
    are 0-d arrays, so `pinnx.fit(..., eval_fn=sparsity)` records them in `history.evals`.

    Args:
        tree: a model (or parameter pytree) holding `MaskedLinear` layers.
        objective: None for the mask the forward pass uses (mean threshold), or an
            objective's name for the mask its own thresholds alone would give (a diagnostic:
            how far the objectives' preferred sub-networks differ).

    Examples:
        >>> import jax, pinnx
        >>> model = pinnx.nn.ModSyncMLP(2, "scalar", 8, 1, objectives=("bc", "pde"),
        ...                             key=jax.random.key(0), threshold_init=10.0)
        >>> {k: float(v) for k, v in pinnx.nn.sparsity(model).items()}   # |W| < 10: all pruned
        {'sparsity_0': 1.0, 'sparsity_1': 1.0, 'sparsity': 1.0}

        As `pinnx.fit`'s `eval_fn` next to the error:
        `eval_fn=lambda m: {"error": problem.relative_l2(m), **pinnx.nn.sparsity(m)}`.
    """
    layers = masked_layers(tree, "sparsity")
    out, pruned, total = {}, 0, 0
    for i, layer in enumerate(layers):
        m = jax.lax.stop_gradient(layer.mask(objective))
        zeros = m.size - jnp.sum(m)
        out[f"sparsity_{i}"] = zeros / m.size
        pruned, total = pruned + zeros, total + m.size
    out["sparsity"] = pruned / total
    return out
