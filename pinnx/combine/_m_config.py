"""M-ConFIG: ConFIG on per-task momenta (Liu, Chu, Thuerey, ICLR 2025)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PyTree

from ..tasks import num_tasks
from ._base import Aggregator, FloatLike, Tasks, check, count_tasks
from ._config import config_weights
from ._gram import task_stats, unit_combination
from ._registry import register

__all__ = ["m_config", "MConFIGState"]


class MConFIGState(NamedTuple):
    """State of `m_config`.

    Attributes:
        count: steps taken so far.
        mu: the first moment of every task's gradient (leaves with a leading task axis K).
        pseudo_mu: the pseudo first moment of the combined update (params-shaped), None
            when `b2` is None.
        rms: sqrt(v), the root of the second moment of the pseudo gradient
            (params-shaped), None when `b2` is None. Kept as a root, updated with
            `hypot`, so that squares of 1e20 gradients do not overflow in float32.
    """

    count: Int[Array, ""]
    mu: PyTree
    pseudo_mu: PyTree
    rms: PyTree


def _debias(b: FloatLike, count: Array, dtype) -> Array:
    """1 - b^t in `dtype` (the count is converted first: strict dtype promotion)."""
    return 1 - jnp.asarray(b, dtype) ** count.astype(dtype)


@register
def m_config(
    b1: FloatLike = 0.9, b2: FloatLike | None = 0.999, eps: FloatLike = 1e-8
) -> Aggregator:
    """M-ConFIG: ConFIG applied to Adam-style momenta of each task's gradient.

    Every task keeps its own first moment, and ConFIG (`pinnx.config`) combines the
    bias-corrected moments; the result is then normalised as in Adam, with a second moment
    of the *pseudo gradient* that the combined update implies (the reference's
    `PseudoMomentumOperator`). At step t (t = 1, 2, ...), with g_k the task gradients:

        m_k <- b1 m_k + (1 - b1) g_k,        m_hat_k = m_k / (1 - b1^t)
        c = ConFIG(m_hat_1, ..., m_hat_K)
        p_t = (1 - b1^t) c,                  q = (p_t - b1 p_(t-1)) / (1 - b1)
        v <- b2 v + (1 - b2) q^2,            v_hat = v / (1 - b2^t)
        d = c / (sqrt(v_hat) + eps)

    (p_t is the first moment of the pseudo gradients q, chosen so that its bias-corrected
    value is c.) d is already Adam-scaled: follow it with `optax.sgd` or `optax.scale`, as
    the authors recommend. With `b2=None` the pseudo-gradient steps are skipped and d = c,
    the ConFIG direction of the momenta, to be followed by any optax optimizer. The state
    keeps sqrt(v), updated with `hypot`, so that q^2 cannot overflow (1e20 gradients in
    float32). With b1 = 0,
    c = ConFIG(g_1, ..., g_K): `m_config(0.0, None)` is `config()`, and `m_config(0.0, b2)`
    is `config() | optax.scale_by_adam(b1=0.0, b2=b2, eps=eps)`.

    The paper's M-ConFIG evaluates one task's gradient per step (in turn) to save
    backward passes; pinnx receives every task's gradient at every step, so every
    momentum is updated at every step (the reference operator given all indexes).

    Args:
        b1: decay of the per-task first moments, in [0, 1).
        b2: decay of the second moment of the pseudo gradient, in [0, 1), or None for no
            second-moment scaling.
        eps: added to sqrt(v_hat) in the denominator.

    Its state (`MConFIGState`) holds one moment per task: initialise it with
    `opt.init(params, tasks=K)` (`pinnx.fit` does this).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.m_config(0.9, 0.999)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # Adam-scaled: +-1 at first
        [1.0, 1.0]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.m_config(0.9, 0.999) | optax.adam(1e-3)

    References:
        Liu, Chu, Thuerey. "ConFIG: Towards Conflict-free Training of Physics Informed
        Neural Networks". ICLR 2025. https://arxiv.org/abs/2408.11104 ; reference code
        `conflictfree.momentum_operator.PseudoMomentumOperator`.
    """
    for name, value in (("b1", b1), ("b2", b2)):
        check(value, lambda v: (0 <= v) & (v < 1), f"m_config: {name} must be in [0, 1), got "
              f"{value}")
    check(eps, lambda v: v >= 0, f"m_config: eps must be non-negative, got {eps}")
    label = "m_config"

    def init(params: PyTree, *, tasks: Tasks = None) -> MConFIGState:
        k = count_tasks(tasks, label)
        if params is None or not jax.tree.leaves(params):
            raise ValueError(f"{label} needs the parameters at init to shape its moments")
        mu = jax.tree.map(lambda p: jnp.zeros((k,) + jnp.shape(p), jnp.result_type(p)),
                          params)
        second = None if b2 is None else optax.tree.zeros_like(params)
        return MConFIGState(count=jnp.zeros([], jnp.int32), mu=mu, pseudo_mu=second,
                            rms=second)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        k = num_tasks(updates)
        k_state = jnp.shape(jax.tree.leaves(state.mu)[0])[0]
        if k_state != k:
            raise ValueError(f"{label} was initialised for {k_state} tasks but got {k} task rows")
        count = optax.safe_increment(state.count)
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        m_hat = jax.tree.map(lambda m: m / _debias(b1, count, m.dtype), mu)
        norms, cos = task_stats(m_hat)
        c = unit_combination(config_weights(norms, cos), norms, m_hat)
        if b2 is None:
            return c, MConFIGState(count=count, mu=mu, pseudo_mu=None, rms=None)
        p = jax.tree.map(lambda x: x * _debias(b1, count, x.dtype), c)
        q = jax.tree.map(lambda x, prev: (x - b1 * prev) / (1 - b1), p, state.pseudo_mu)
        # sqrt(b2 v + (1 - b2) q^2) without forming the squares
        rms = jax.tree.map(lambda r, x: jnp.hypot(b2**0.5 * r, (1 - b2) ** 0.5 * x),
                           state.rms, q)
        out = jax.tree.map(
            lambda x, r: x / (r / jnp.sqrt(_debias(b2, count, r.dtype)) + eps), c, rms
        )
        return out, MConFIGState(count=count, mu=mu, pseudo_mu=p, rms=rms)

    return Aggregator(init, update)
