"""Learning-rate annealing (LRA) loss weights (Wang, Teng, Perdikaris, SISC 2021)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._base import FloatLike, IntLike, Tasks, TaskTransform
from ._loss_weighting import ema_weighting
from ._registry import register

__all__ = ["lra", "LRAState", "lra_estimates"]


class LRAState(NamedTuple):
    """State of `lra`.

    Attributes:
        weights: (K,) the current loss weights lambda_k (the main task's stays 1).
        count: number of updates seen (the step counter of the `every` period).
        skipped: number of due weight updates at which some estimate was undefined (a zero
            or non-finite gradient, or a zero main gradient), so that weight kept its value.
    """

    weights: Float[Array, " tasks"]
    count: Int[Array, ""]
    skipped: Int[Array, ""]


def lra_estimates(
    grads: PyTree[Float[Array, "tasks ..."]], main: int,
    weights: Float[Array, " tasks"] | None = None,
) -> tuple[Float[Array, " tasks"], Bool[Array, " tasks"]]:
    """lambda_hat_k = max_theta |g_main| / mean_theta |lambda_k g_k|, and where it is defined.

    The max and the mean run over all parameters (every leaf). The main task's estimate is
    1. An estimate is undefined where mean |g_k| is zero, where it is not finite, or (for
    every task) where the main gradient is zero or not finite.

    Args:
        grads: per-task gradients, K rows.
        main: the main task's row.
        weights: the current weights lambda_k in the denominator; None means all 1
            (the raw-gradient form).

    Returns:
        `(estimates, defined)`, both (K,); estimates are 0 where undefined.
    """
    leaves = jax.tree.leaves(grads)
    k = leaves[0].shape[0]
    flat = [jnp.reshape(jnp.abs(g), (k, -1)) for g in leaves]
    size = sum(f.shape[1] for f in flat)
    peak = jnp.max(jnp.stack([jnp.max(f[main]) for f in flat]))
    mean_abs = sum(jnp.sum(f, axis=1) for f in flat) / size
    if weights is not None:
        mean_abs = mean_abs * weights.astype(mean_abs.dtype)
    tiny = jnp.finfo(mean_abs.dtype).tiny
    ok = (mean_abs >= tiny) & jnp.isfinite(mean_abs) & jnp.isfinite(peak) & (peak >= tiny)
    est = peak / jnp.where(ok, mean_abs, 1)
    ok = ok & jnp.isfinite(est)
    is_main = jnp.arange(k) == main
    return jnp.where(is_main, 1, jnp.where(ok, est, 0)), ok | is_main


@register
def lra(
    alpha: FloatLike = 0.1, every: IntLike = 10, main: str | int = "pde", *, weighted: bool = True,
    tasks: Tasks = None,
) -> TaskTransform:
    """Learning-rate annealing: weight each task so its gradient matches the main task's.

    Every `every` steps (from the first on), for each task k other than the main (PDE) task,

        lambda_hat_k = max_theta |grad L_main| / mean_theta |lambda_k grad L_k|,
        lambda_k    <- (1 - alpha) lambda_k + alpha lambda_hat_k,

    with max and mean over all parameters; lambda_main = 1 throughout and all weights start
    at 1. The denominator holds the *weighted* gradient, as in the paper's Algorithm 1 and
    the authors' code (their boundary loss carries its weight when it is differentiated):
    the weights settle where lambda_k^2 = max|grad L_main| / mean|grad L_k|.
    `weighted=False` drops lambda_k from the denominator (the weights then settle at the
    ratio itself, the square of the paper's; on the Helmholtz benchmark that over-weights
    the boundary so much that the residual is never fitted: docs/benchmarks.md). Row k is
    multiplied by lambda_k; the update of a step uses that step's weights
    (paper's Algorithm 1: update the weights, then take the gradient step).

    Where an estimate is undefined (task k's gradient is zero or not finite, or the main
    gradient is zero, as at a trivial initial solution) that weight keeps its value and
    `state.skipped` counts the step. A weight can outgrow the rows (1e37 from rows 1e-19
    and 1e20 apart): where lambda_k g_k would overflow the dtype, row k saturates instead
    (the multiple of g_k whose largest entry is just below the dtype's largest number;
    never inf).

    Args:
        alpha: weight of the new estimate in the moving average (the paper's 1 - beta with
            beta = 0.9).
        every: update period in steps.
        weighted: use lambda_k grad L_k in the denominator (the paper's form).
        main: the main task, by name (looked up in `losses=` at update) or row index.
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `LRAState.weights` is (K,).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> tx = pinnx.lra(main="pde")
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> rows, state = tx.update(grads, state, losses=losses)
        >>> [round(v, 3) for v in state.weights.tolist()]   # 0.9 + 0.1 * 2 / 0.25 for "bc"
        [1.7, 1.0]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.lra(main="pde") | pinnx.sum() | optax.adam(1e-3)

    References:
        Wang, Teng, Perdikaris. "Understanding and Mitigating Gradient Flow Pathologies in
        Physics-Informed Neural Networks". SIAM J. Sci. Comput. 43(5), 2021.
        https://arxiv.org/abs/2001.04536
    """

    def estimate(grads, weights, *, due, main, **extra_args):
        del due, extra_args
        return lra_estimates(grads, main, weights if weighted else None)

    return ema_weighting(estimate, alpha=alpha, every=every, state=LRAState, name="lra",
                         main=main, tasks=tasks)
