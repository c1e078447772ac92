"""ReLoBRaLo: relative loss balancing with random lookback (Bischof & Kraus 2021)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Key

from ._base import FloatLike, IntLike, Tasks, TaskTransform, check
from ._loss_weighting import all_positive, loss_vector, loss_weighting, scaled_softmax
from ._registry import register

__all__ = ["relobralo", "ReLoBRaLoState"]


class ReLoBRaLoState(NamedTuple):
    """State of `relobralo`.

    Attributes:
        weights: (K,) the current loss weights lambda_k (they average to 1).
        initial_losses: (K,) the losses of the first valid update, L(0).
        last_losses: (K,) the losses of the last valid update, L(t-1).
        count: number of valid updates so far.
        skipped: number of updates at which the weights were left unchanged (a loss zero,
            negative or not finite, or a loss ratio that overflows).
        key: PRNG key of the next lookback draw.
    """

    weights: Float[Array, " tasks"]
    initial_losses: Float[Array, " tasks"]
    last_losses: Float[Array, " tasks"]
    count: Int[Array, ""]
    skipped: Int[Array, ""]
    key: Key[Array, ""]


@register
def relobralo(
    alpha: FloatLike = 0.999,
    tau: FloatLike = 0.1,
    rho: FloatLike = 0.99,
    *,
    seed: IntLike = 0,
    tasks: Tasks = None,
) -> TaskTransform:
    """ReLoBRaLo: weights from each loss's progress relative to the others, with lookback.

    With lambda_bal(t, t') = K softmax(L(t) / (tau L(t'))) (elementwise ratio, softmax over
    tasks), every step updates

        lambda(t) = alpha [rho' lambda(t-1) + (1 - rho') lambda_bal(t, 0)]
                    + (1 - alpha) lambda_bal(t, t-1),

    where rho' ~ Bernoulli(rho) is drawn afresh every step (the random lookback: with
    probability 1 - rho the history is replaced by the balance relative to the start).
    As in the authors' code, the first valid update keeps lambda = 1 and records L(0), and
    the second uses alpha = 0 (lambda = lambda_bal(t, t-1)). Row k is multiplied by the
    lambda_k of the current step. Limits: rho = 1 gives an exponential moving average of
    lambda_bal(t, t-1); rho = 0 gives alpha lambda_bal(t, 0) + (1 - alpha) lambda_bal(t, t-1).

    The losses come from `losses=` and must be positive: where one is zero, negative or not
    finite, or a ratio overflows, the weights are left unchanged, the losses are not
    recorded, and `state.skipped` counts the step. The authors' code adds 1e-7 to the
    denominator tau L(t'); here invalid ratios are skipped instead.

    Args:
        alpha: weight of the history (the paper's exponential decay rate).
        tau: softmax temperature.
        rho: probability of keeping the history at a step (the paper's expected saudade).
        seed: seed of the key of the lookback draws, held in the state.
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `ReLoBRaLoState.weights` is (K,).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> tx = pinnx.relobralo()
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> for bc, pde in [(0.1, 2.0), (0.05, 1.9)]:   # losses of 2 steps
        ...     losses = {"bc": jnp.array(bc), "pde": jnp.array(pde)}
        ...     rows, state = tx.update(grads, state, losses=losses)
        >>> [round(v, 3) for v in state.weights.tolist()]
        [0.022, 1.978]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.relobralo() | pinnx.sum() | optax.adam(1e-3)

    References:
        Bischof, Kraus. "Multi-Objective Loss Balancing for Physics-Informed Deep Learning".
        2021. https://arxiv.org/abs/2110.09813 ; code:
        https://github.com/rbischof/relative_balancing
    """
    for name, value in (("alpha", alpha), ("rho", rho)):
        check(value, lambda v: (0 <= v) & (v <= 1), f"relobralo {name} must lie in [0, 1], "
              f"got {value}")
    check(tau, lambda v: v > 0, f"relobralo tau must be positive, got {tau}")

    def init(k, dtype):
        ones = jnp.ones((k,), dtype)
        zero = jnp.zeros((), jnp.int32)
        return ReLoBRaLoState(ones, ones, ones, zero, zero, jax.random.key(seed))

    def weigh(grads, state, losses, **extra_args):
        del extra_args
        k = state.weights.shape[0]
        values = loss_vector(losses, k, "relobralo", state.weights.dtype)
        key, sub = jax.random.split(state.key)
        keep = jax.random.bernoulli(sub, rho).astype(values.dtype)
        valid = all_positive(values)
        safe = jnp.where(valid, values, 1)
        # first valid update: lambda stays; second: no history (the authors' schedule)
        a = jnp.where(state.count == 0, 1.0, jnp.where(state.count == 1, 0.0, alpha))
        p = jnp.where(state.count <= 1, 1.0, keep)
        a, p = a.astype(values.dtype), p.astype(values.dtype)
        init_losses = jnp.where(state.count == 0, safe, state.initial_losses)
        last_losses = jnp.where(state.count == 0, safe, state.last_losses)
        ratio_last = safe / (tau * last_losses)
        ratio_init = safe / (tau * init_losses)
        finite = jnp.all(jnp.isfinite(ratio_last) & jnp.isfinite(ratio_init))
        ok = valid & finite
        bal_last = scaled_softmax(jnp.where(ok, ratio_last, 0))
        bal_init = scaled_softmax(jnp.where(ok, ratio_init, 0))
        new_w = a * (p * state.weights + (1 - p) * bal_init) + (1 - a) * bal_last
        ok = ok & jnp.all(jnp.isfinite(new_w))
        weights = jnp.where(ok, new_w, state.weights)
        new = ReLoBRaLoState(
            weights=weights,
            initial_losses=jnp.where(ok, init_losses, state.initial_losses),
            last_losses=jnp.where(ok, values, state.last_losses),
            count=state.count + ok.astype(jnp.int32),
            skipped=state.skipped + (~ok).astype(jnp.int32),
            key=key,
        )
        return weights, new

    return loss_weighting(init, weigh, name="relobralo", tasks=tasks)
