"""GradNorm: learned loss weights that balance training rates (Chen et al., ICML 2018)."""

from typing import NamedTuple

import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from ..tasks import normalized_gram
from ._base import FloatLike, Tasks, TaskTransform
from ._loss_weighting import all_positive, loss_vector, loss_weighting
from ._registry import register

__all__ = ["gradnorm", "GradNormState", "gradnorm_objective"]


class GradNormState(NamedTuple):
    """State of `gradnorm`.

    Attributes:
        weights: (K,) the loss weights w_k (positive, summing to K) for the next step.
        initial_losses: (K,) L_k(0), the losses at the first valid update.
        count: number of valid updates so far.
        skipped: number of updates at which the weights were left unchanged (a loss zero,
            negative or not finite, a non-finite gradient norm, or a step that would leave
            no positive weight).
        inner: the state of the optimizer of the weights.
    """

    weights: Float[Array, " tasks"]
    initial_losses: Float[Array, " tasks"]
    count: Int[Array, ""]
    skipped: Int[Array, ""]
    inner: optax.OptState


def gradnorm_objective(
    weights: Float[Array, " tasks"],
    norms: Float[Array, " tasks"],
    losses: Float[Array, " tasks"],
    initial_losses: Float[Array, " tasks"],
    alpha: float | Float[Array, ""],
) -> tuple[Float[Array, ""], Float[Array, " tasks"]]:
    """The GradNorm loss L_grad(w) and its gradient in w (targets held constant).

    G_k = w_k ||g_k||, G_bar = mean_k G_k, r_k = (L_k / L_k(0)) / mean_j (L_j / L_j(0)),
    L_grad = sum_k |G_k - G_bar r_k^alpha|; the target G_bar r_k^alpha is a constant (the
    paper), so dL_grad/dw_k = sign(G_k - target_k) ||g_k||. The losses must be positive.
    For one task, r_1 = 1 and G_1 is its own target: L_grad and its gradient are exactly 0
    (computed, the rounding of r_1 would give a sign step of +-||g_1||).

    The G_k and targets are compared in units of a power of two 2^E with the largest G_k in
    [2^E / 4, 2^E) (exponents added, mantissas multiplied: no G_k overflows, and none
    underflows unless it is below 4 tiny times the largest), so the signs do not depend on
    the scale of the gradients: G = (0, 1.5 tiny, 0), whose target mean(G) = tiny / 2 was
    flushed to 0 in absolute terms (G_0 then looked on target), compares like (0, 1.5, 0).

    Returns:
        `(L_grad, gradient)`.
    """
    if weights.shape[0] == 1:  # r = 1, target = G exactly (rounding would step by -+||g||)
        gap = weights * norms
        gap = gap - gap  # 0, or NaN for a non-finite G, as the general form gives
        return jnp.sum(jnp.abs(gap)), gap * norms
    (mw, ew), (mn, en) = jnp.frexp(weights), jnp.frexp(norms)
    m, e = mw * mn, ew + en  # G_k = m_k 2^e_k, |m_k| in [1/4, 1) or 0 (inf, NaN as given)
    live = m != 0
    top = jnp.max(jnp.where(live, e, jnp.iinfo(e.dtype).min))
    top = jnp.where(jnp.any(live), top, 0)
    rel = jnp.ldexp(m, e - top)  # G_k / 2^top, the largest in [1/4, 1)
    ratio = losses / initial_losses
    rate = ratio / jnp.mean(ratio)
    gap = rel - jnp.mean(rel) * rate**alpha  # (G_k - target_k) / 2^top
    return jnp.ldexp(jnp.sum(jnp.abs(gap)), top), jnp.sign(gap) * norms


@register
def gradnorm(
    alpha: FloatLike = 1.5,
    learning_rate: FloatLike = 0.025,
    *,
    optimizer: optax.GradientTransformation | None = None,
    tasks: Tasks = None,
) -> TaskTransform:
    """GradNorm: learn loss weights so that the weighted gradient norms follow training rates.

    Row k is multiplied by the weight w_k in the state (all 1 at first). Each step then takes
    one optimizer step on the weights for the GradNorm loss (`gradnorm_objective`)

        L_grad(w) = sum_k | w_k ||g_k|| - mean_j(w_j ||g_j||) r_k^alpha |,
        r_k = (L_k / L_k(0)) / mean_j (L_j / L_j(0)),

    whose targets are held constant, clips the weights at 0 and renormalises them to sum to
    K. Tasks that train slowly (large r_k) get larger weights; alpha sets how strongly. The
    gradient norms are over all the parameters the rows cover (the paper uses the last
    shared layer: pass only those leaves to restrict it). L_k(0) are the losses of the first
    valid update; the loss values come from `losses=`.

    Where the update is impossible (a loss zero, negative or not finite, a non-finite norm,
    or no positive weight left after the step) the weights are left unchanged and
    `state.skipped` counts the step.

    Args:
        alpha: the asymmetry hyperparameter (paper: 1.5 on NYUv2; 0 equalises the norms).
        learning_rate: step size of the default weight optimizer, `optax.sgd`.
        optimizer: any optax transform for the weights (e.g. `optax.adam(0.025)`), used
            instead of plain gradient descent.
        tasks: the number of tasks, if it cannot be given at init (inside `optax.chain`).

    Shapes: K task rows in, K rows out; `GradNormState.weights` is (K,).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[0.5, 0.0], [2.0, -1.0]])}   # rows "bc", "pde" (sorted)
        >>> losses = {"bc": jnp.array(0.1), "pde": jnp.array(2.0)}
        >>> tx = pinnx.gradnorm(alpha=1.5)
        >>> state = tx.init({"w": jnp.zeros(2)}, tasks=2)
        >>> rows, state = tx.update(grads, state, losses=losses)
        >>> [round(v, 3) for v in state.weights.tolist()]   # one step on the GradNorm objective
        [1.035, 0.965]

        In training, an aggregator and a plain optax optimizer follow it:

        >>> opt = pinnx.gradnorm(alpha=1.5) | pinnx.sum() | optax.adam(1e-3)

    References:
        Chen, Badrinarayanan, Lee, Rabinovich. "GradNorm: Gradient Normalization for
        Adaptive Loss Balancing in Deep Multitask Networks". ICML 2018.
        https://arxiv.org/abs/1711.02257
    """
    inner_tx = optax.sgd(learning_rate) if optimizer is None else optimizer

    def init(k, dtype):
        w = jnp.ones((k,), dtype)
        return GradNormState(w, jnp.ones((k,), dtype), jnp.zeros((), jnp.int32),
                             jnp.zeros((), jnp.int32), inner_tx.init(w))

    def weigh(grads, state, losses, **extra_args):
        del extra_args
        w = state.weights
        k, dtype = w.shape[0], w.dtype
        values = loss_vector(losses, k, "gradnorm", dtype)
        norms = normalized_gram(grads)[0]
        fits = jnp.all(norms <= jnp.finfo(dtype).max)
        norms = norms.astype(dtype)
        first = state.count == 0
        initial = jnp.where(first, values, state.initial_losses)
        valid = all_positive(values) & all_positive(initial) & jnp.all(jnp.isfinite(norms))
        safe = jnp.where(valid, values, 1), jnp.where(valid, initial, 1)
        _, grad = gradnorm_objective(w, jnp.where(valid, norms, 0), *safe, alpha)
        step, inner = inner_tx.update(grad, state.inner, w)
        stepped = jnp.maximum(optax.apply_updates(w, step), 0)
        total = jnp.sum(stepped)
        renormed = k * stepped / jnp.where(total > 0, total, 1)
        ok = valid & fits & (total > 0) & jnp.all(jnp.isfinite(renormed))
        new = GradNormState(
            weights=jnp.where(ok, renormed, w),
            initial_losses=jnp.where(first & ok, values, state.initial_losses),
            count=state.count + ok.astype(jnp.int32),
            skipped=state.skipped + (~ok).astype(jnp.int32),
            inner=optax.tree.where(ok, inner, state.inner),
        )
        return w, new

    return loss_weighting(init, weigh, name="gradnorm", tasks=tasks)
