"""Uncertainty weighting with learned log-variances (Kendall, Gal, Cipolla, CVPR 2018)."""

from typing import NamedTuple

import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from ._base import FloatLike, Tasks, TaskTransform
from ._loss_weighting import all_positive, loss_vector, loss_weighting
from ._registry import register

__all__ = ["uncertainty", "UncertaintyState"]


class UncertaintyState(NamedTuple):
    """State of `uncertainty`.

    Attributes:
        log_vars: (K,) the learned log-variances s_k for the next step.
        weights: (K,) exp(-s_k), the weights the next step will use.
        skipped: number of updates at which s was left unchanged (a loss zero, negative or
            not finite).
        inner: the state of the optimizer of s.
    """

    log_vars: Float[Array, " tasks"]
    weights: Float[Array, " tasks"]
    skipped: Int[Array, ""]
    inner: optax.OptState


@register
def uncertainty(
    learning_rate: FloatLike = 1e-3,
    *,
    optimizer: optax.GradientTransformation | None = None,
    init: FloatLike = 0.0,
    tasks: Tasks = None,
) -> TaskTransform:
    """Homoscedastic-uncertainty weighting: learned log-variances s_k, rows scaled by exp(-s_k).

    The joint objective is

        L(theta, s) = sum_k exp(-s_k) L_k(theta) + s_k.

    Its gradient in theta is sum_k exp(-s_k) g_k, so row k is multiplied by exp(-s_k); its
    gradient in s is dL/ds_k = 1 - exp(-s_k) L_k, on which the transform takes one step of
    its own optimizer (Adam by default) at every update. For fixed losses s_k converges to
    log L_k (where exp(-s_k) L_k = 1): each task's weight tends to 1 / L_k.

    The gradient is formed as -expm1(log L_k - s_k): its error is a few eps (|log L_k| +
    |s_k|) exp(-s_k) L_k, so it keeps full relative precision near s = log L = 0, where
    1 - exp(-s_k) L_k loses its last digits to cancellation (errors of eps, which Adam, whose
    step is about g / (|g| + 1e-8) for small g, amplifies up to learning_rate / 1e-8 times).

    The log-variances live in the transform's state, not in the model: the chain stays a
    function of the network's gradients only, works with any outer optax optimizer and with
    `pinnx.fit` unchanged, and s (with `weights` = exp(-s)) can be read from the state. Its
    step size is set here, independently of the network's.

    The loss values come from `losses=`. A step whose losses are zero, negative or not
    finite leaves s unchanged (log L_k is undefined) and `state.skipped` counts it. Where
    exp(-s_k) g_k would overflow the dtype, row k saturates instead (the multiple of g_k
    whose largest entry is just below the dtype's largest number; never inf).

    Args:
        learning_rate: step size of the default optimizer of s, `optax.adam`.
        optimizer: any optax transform for s, used instead of Adam.
        init: the initial log-variance of every task (weights exp(-init)).
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `UncertaintyState.log_vars` is (K,).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> tx = pinnx.uncertainty(learning_rate=1e-2)
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> rows, state = tx.update(grads, state, losses=losses)
        >>> [round(v, 3) for v in state.log_vars.tolist()]   # s_k, tends to log L_k
        [-0.01, 0.01]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.uncertainty(learning_rate=1e-2) | pinnx.sum() | optax.adam(1e-3)

    References:
        Kendall, Gal, Cipolla. "Multi-Task Learning Using Uncertainty to Weigh Losses for
        Scene Geometry and Semantics". CVPR 2018. https://arxiv.org/abs/1705.07115
    """
    inner_tx = optax.adam(learning_rate) if optimizer is None else optimizer
    start = init

    def init_fn(k, dtype):
        s = jnp.full((k,), start, dtype)
        return UncertaintyState(s, jnp.exp(-s), jnp.zeros((), jnp.int32), inner_tx.init(s))

    def weigh(grads, state, losses, **extra_args):
        del grads, extra_args
        s = state.log_vars
        values = loss_vector(losses, s.shape[0], "uncertainty", s.dtype)
        weights = jnp.exp(-s)
        ok = all_positive(values)
        # 1 - exp(-s) L without the cancellation near the fixed point s = log L
        grad = jnp.where(ok, -jnp.expm1(jnp.log(jnp.where(ok, values, 1)) - s), 0)
        step, inner = inner_tx.update(grad, state.inner, s)
        new_s = optax.apply_updates(s, step)
        ok = ok & jnp.all(jnp.isfinite(new_s)) & jnp.all(jnp.isfinite(jnp.exp(-new_s)))
        new_s = jnp.where(ok, new_s, s)
        new = UncertaintyState(
            log_vars=new_s,
            weights=jnp.exp(-new_s),
            skipped=state.skipped + (~ok).astype(jnp.int32),
            inner=optax.tree.where(ok, inner, state.inner),
        )
        return weights, new

    return loss_weighting(init_fn, weigh, name="uncertainty", tasks=tasks)
