"""ModSync's training pieces: the sparsity regulariser L_s and the optimizer partition.

The layers, their ownership and their labels are `pinnx.nn` (`ModSyncMLP`, `MaskedLinear`,
`modsync_owners`, `modsync_labels`, `sparsity`); this module holds what trains them, exported
where a user looks for it: `sparsity_loss` (L_s, a loss) in `pinnx.residuals`,
`sparsity_penalty` and `modsync_optimizer` (optax pieces) in `pinnx.recipes`.

Threshold t_k learns from objective k's loss alone plus lambda_s times

    L_s = sum_layers R_w (sum_k R_s(t_k)),   R_s(t) = sum_i exp(-t_i),
    R_w = exp(D / beta),   D = mean over pairs k < j of ||t_k - t_j||^2.

Why L_s enters as a gradient transform and not as a loss term: adding lambda_s L_s to every
task's loss would give the same threshold updates (L_s does not depend on theta, and row k
on t_k would be d(L_k + lambda_s L_s)/dt_k), but it would also add lambda_s L_s (0.05 at
initialisation for a 4 x 64 network: 2 x 257 units x 1e-4, the size of a PINN's losses
after a few thousand steps) to every reported loss and to the `losses=` that loss-based
weightings read. The transform keeps the losses the PDE's own.

References:
    Kong, Park, Kim, Lee. "Modularity-Free Conflict-Averse Training for Generalized
    PINNs". 2026. https://arxiv.org/abs/2606.20156
"""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from .nn._modsync import NET_LABEL, THRESHOLDS_LABEL, masked_layers, modsync_labels

__all__ = ["sparsity_loss", "sparsity_penalty", "modsync_optimizer"]

PAPER = dict(lambda_s=1e-4, lr=1e-3, thresholds_lr=1e-4, beta=0.3)  # Kong et al. 2026


def _layer_penalty(thresholds: dict[str, Array], beta: float) -> Array:
    ts = [thresholds[k] for k in sorted(thresholds)]
    r_s = sum(jnp.sum(jnp.exp(-t)) for t in ts)
    pairs = list(itertools.combinations(ts, 2))
    if not pairs:  # one objective: R_w = 1
        return r_s
    spread = sum(jnp.sum((a - b) ** 2) for a, b in pairs) / len(pairs)
    return jnp.exp(spread / beta) * r_s


def _check_beta(beta: float) -> float:
    beta = float(beta)
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return beta


def sparsity_loss(tree: PyTree, beta: float = PAPER["beta"]) -> Float[Array, ""]:
    """The ModSync sparsity regulariser L_s of every `MaskedLinear` in `tree`.

        L_s = sum_layers R_w sum_k R_s(t_k),   R_s(t) = sum_i exp(-t_i),
        R_w = exp(D / beta),   D = (1 / #pairs) sum_{k < j} ||t_k - t_j||^2,

    the mean squared distance between the objectives' threshold vectors over the K(K-1)/2
    pairs (D = 0 for K = 1). For K = 2 this is the paper's
    exp(||t_r - t_b||^2 / beta) (R_s(t_r) + R_s(t_b)); the mean over pairs keeps R_w's scale
    independent of K. It depends on the thresholds only.

    Args:
        tree: a model or parameter pytree holding `MaskedLinear` layers.
        beta: the temperature of R_w (paper: 0.3).

    Returns:
        The scalar L_s.

    Examples:
        >>> import jax, pinnx
        >>> model = pinnx.nn.ModSyncMLP(2, "scalar", width=4, depth=1, objectives=("bc", "pde"),
        ...                             key=jax.random.key(0))
        >>> float(pinnx.residuals.sparsity_loss(model))   # 2 objectives x (4 + 1) units x e^0
        10.0

    References:
        Kong, Park, Kim, Lee. "Modularity-Free Conflict-Averse Training for Generalized
        PINNs". 2026. https://arxiv.org/abs/2606.20156
    """
    beta = _check_beta(beta)
    return sum(_layer_penalty(layer.thresholds, beta)
               for layer in masked_layers(tree, "sparsity_loss"))


def sparsity_penalty(
    lambda_s: float = PAPER["lambda_s"], beta: float = PAPER["beta"]
) -> optax.GradientTransformation:
    """Add lambda_s dL_s/dt to the thresholds' updates (a gradient transform, like weight decay).

    For every `MaskedLinear` in `params`, the update of threshold t_k becomes
    u_k + lambda_s dL_s/dt_k (`sparsity_loss`); every other leaf is passed unchanged. Put it
    after `pinnx.route(..., own=pinnx.nn.modsync_owners)` and before the thresholds'
    optimizer, so that the optimizer sees d(L_k + lambda_s L_s)/dt_k, exactly the gradient
    of t_k's objective plus the regulariser; `modsync_optimizer` does this for you. Inside
    an `optax.partition` it works on the thresholds' partition alone.

    Args:
        lambda_s: the regulariser's weight (paper: 1e-4).
        beta: the temperature of R_w (paper: 0.3).

    Returns:
        An optax `GradientTransformation`; `update` needs `params`.

    Examples:
        >>> import equinox as eqx, jax, pinnx
        >>> model = pinnx.nn.ModSyncMLP(2, "scalar", 4, 1, objectives=("bc", "pde"),
        ...                             key=jax.random.key(0))
        >>> params = eqx.filter(model, eqx.is_inexact_array)
        >>> tx = pinnx.recipes.sparsity_penalty(lambda_s=1e-4)
        >>> zeros = jax.tree.map(jax.numpy.zeros_like, params)
        >>> updates, _ = tx.update(zeros, tx.init(params), params)
        >>> round(float(updates.layers[1].thresholds["pde"][0]), 8)   # -lambda_s e^{-t}
        -0.0001
    """
    lambda_s = float(lambda_s)
    if not lambda_s >= 0:
        raise ValueError(f"lambda_s must be non-negative, got {lambda_s}")
    beta = _check_beta(beta)

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("sparsity_penalty needs params (the thresholds' values) in update")
        where = lambda tree: [m.thresholds for m in masked_layers(tree, "sparsity_penalty")]  # noqa: E731
        grads = jax.grad(lambda ts: sum(_layer_penalty(t, beta) for t in ts))(where(params))
        new = [{k: u[k] + (lambda_s * g[k]).astype(u[k].dtype) for k in u}
               for u, g in zip(where(updates), grads, strict=True)]
        return eqx.tree_at(where, updates, new), state

    return optax.GradientTransformation(init, update)


def modsync_optimizer(
    net: optax.GradientTransformation,
    thresholds_lr: float | optax.Schedule | None = None,
    *,
    thresholds: optax.GradientTransformation | None = None,
    lambda_s: float = PAPER["lambda_s"],
    beta: float = PAPER["beta"],
) -> optax.GradientTransformationExtraArgs:
    """The optax piece after `pinnx.route`: weights by `net`, thresholds at their own rate.

    An `optax.partition` over `modsync_labels`: weights and biases (and any other leaf) go
    through `net`; the thresholds through `sparsity_penalty(lambda_s, beta)` and then
    `thresholds` (default `optax.adam(thresholds_lr)`, `thresholds_lr` defaulting to the
    paper's 1e-4).

    Args:
        net: the weights' optimizer, e.g. `optax.adam(1e-3)` (paper: lr_theta = 1e-3).
        thresholds_lr: learning rate (or schedule) of the thresholds' Adam (paper: 1e-4).
        thresholds: the thresholds' optimizer instead (give this or `thresholds_lr`).
        lambda_s: weight of the sparsity regulariser L_s (paper: 1e-4).
        beta: temperature of L_s's synchronisation factor R_w (paper: 0.3).

    Returns:
        A `GradientTransformationExtraArgs` (state: `optax.PartitionState` with inner states
        "net" and "thresholds").

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, optax, pinnx
        >>> model = pinnx.nn.ModSyncMLP(1, "scalar", 8, 1, objectives=("bc", "pde"),
        ...                             key=jax.random.key(0))
        >>> opt = pinnx.route(pinnx.dcgd(), own=pinnx.nn.modsync_owners
        ...                   ) | pinnx.recipes.modsync_optimizer(
        ...     optax.adam(1e-3), thresholds_lr=1e-4, lambda_s=1e-4, beta=0.3)
        >>> def losses(m, batch):   # any loss function whose tasks are the objectives
        ...     u = jax.vmap(m)(batch)
        ...     return {"bc": u[0] ** 2, "pde": jnp.mean((u - 1.0) ** 2)}
        >>> batch = jnp.linspace(0.0, 1.0, 5)[:, None]
        >>> @eqx.filter_jit
        ... def step(model, state):
        ...     values, grads = pinnx.task_grads(losses, model, batch)
        ...     params = eqx.filter(model, eqx.is_inexact_array)
        ...     updates, state = opt.update(grads, state, params, losses=values)
        ...     return eqx.apply_updates(model, updates), state
        >>> state = pinnx.init_state(opt, eqx.filter(model, eqx.is_inexact_array),
        ...                          tasks=("bc", "pde"))
        >>> model, state = step(model, state)
        >>> sorted(state[-1].inner_states)   # the partition's branches
        ['net', 'thresholds']

        With `pinnx.fit`: `pinnx.fit(losses, model, opt, problem.sample, steps=5000,
        eval_fn=pinnx.nn.sparsity)`.

    References:
        Kong, Park, Kim, Lee. "Modularity-Free Conflict-Averse Training for Generalized
        PINNs". 2026. https://arxiv.org/abs/2606.20156
    """
    if thresholds is not None and thresholds_lr is not None:
        raise ValueError("modsync_optimizer takes thresholds_lr= (Adam at that rate) or "
                         "thresholds= (an optax transform), not both")
    for name, tx in (("net", net), ("thresholds", thresholds)):
        if tx is not None and not isinstance(tx, optax.GradientTransformation):
            raise ValueError(f"modsync_optimizer {name}= must be an optax "
                             f"GradientTransformation, got {type(tx).__name__}")
    if thresholds is None:
        thresholds = optax.adam(PAPER["thresholds_lr"] if thresholds_lr is None
                                else thresholds_lr)
    return optax.partition(
        {NET_LABEL: net,
         THRESHOLDS_LABEL: optax.chain(sparsity_penalty(lambda_s, beta), thresholds)},
        modsync_labels)


