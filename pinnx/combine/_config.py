"""ConFIG: conflict-free inverse gradients (Liu, Chu, Thuerey, ICLR 2025)."""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._base import Aggregator
from ._gram import gram_aggregator
from ._registry import register

__all__ = ["config", "config_weights"]


def _pinv_one(
    cos: Float[Array, "tasks tasks"],
) -> tuple[Float[Array, " tasks"], Float[Array, " tasks"], Float[Array, ""], Float[Array, ""]]:
    """beta = C^+ 1 for the cosine matrix C of the unit directions u_k.

    U^T beta is the minimum-norm vector x with u_k . x = 1 for every k (in the least-squares
    sense when no such x exists). C's eigenvalues at or below K * eps * lambda_max count as
    zero (C's entries carry rounding errors of order eps, so smaller eigenvalues are noise).

    Returns:
        `(beta, reach, q, kappa)`: beta; reach = C beta, the projection of the all-ones
        vector onto C's range (all ones on the non-zero rows when the equations are
        consistent); q = 1^T C^+ 1 = ||U^T beta||^2 (>= 1 when consistent, 0 when 1 is
        orthogonal to C's range, e.g. for two opposite rows); and kappa, the condition
        number of C on its kept eigenvalues (beta carries relative errors of about
        eps * kappa).
    """
    k = cos.shape[0]
    lam, vec = jnp.linalg.eigh(cos)
    keep = lam > k * jnp.finfo(cos.dtype).eps * jnp.max(lam)
    inv = jnp.where(keep, 1 / jnp.where(keep, lam, 1), 0)
    proj = jnp.sum(vec, axis=0)  # V^T 1
    beta = vec @ (inv * proj)
    reach = vec @ (keep.astype(cos.dtype) * proj)
    kappa = jnp.max(lam) * jnp.max(inv)
    return beta, reach, jnp.sum(inv * proj**2), kappa


def _consistent(q: Float[Array, ""], k: int) -> Bool[Array, ""]:
    """Whether some direction has an equal cosine with every non-zero row, numerically.

    q = ||U^T C^+ 1||^2 is at least 1 when u_k . x = 1 is solvable; below K * eps the
    all-ones vector is (up to rounding) orthogonal to C's range and the direction is noise.
    """
    return q > k * jnp.finfo(q.dtype).eps


def config_weights(
    norms: Float[Array, " tasks"], cos: Float[Array, "tasks tasks"]
) -> Float[Array, " tasks"]:
    """ConFIG as a weighting of the Gram matrix, in the unit-direction basis.

    beta = C^+ 1 gives g_u = sum_k beta_k u_k, the minimum-norm vector with u_k . g_u equal
    (to 1) for every k; the update is d = (sum_k g_k . gh) gh with gh = g_u / ||g_u||, i.e.
    d = s g_u with s = (sum_k ||g_k|| (C beta)_k) / (beta^T C beta).

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients (zero rows: zero rows of cos).

    Returns:
        (K,) coefficients of d on the unit directions u_k (all zero when U^+ 1 vanishes to
        rounding, e.g. for two opposite gradients).
    """
    k = cos.shape[0]
    beta, reach, q, _ = _pinv_one(cos)
    ok = _consistent(q, k)
    length = jnp.sum(norms * reach)
    return jnp.where(ok, length / jnp.where(ok, q, 1) * beta, jnp.zeros_like(beta))


@register
def config() -> Aggregator:
    """ConFIG: the update with the same (positive) cosine to every task gradient.

    With unit directions u_k = g_k / ||g_k|| (zero rows dropped) stacked as the rows of U,

        g_u = U^+ 1,   gh = g_u / ||g_u||,   d = (sum_k g_k . gh) gh.

    g_u is the minimum-norm vector whose projection on every u_k is 1, so d makes the same
    angle with every non-zero g_k, and that angle is below 90 degrees: no task is made
    worse to first order. The direction depends on the directions u_k only (rescaling any
    g_k by a positive factor leaves it unchanged); the length is the sum of the projections
    of the g_k on it.

    Computed from the K x K cosine matrix C = U U^T: g_u = U^T C^+ 1. Eigenvalues of C up
    to K * eps * lambda_max are cut (eps of the gradients' dtype). When the K equations
    u_k . x = 1 have no solution (more tasks than independent directions, or opposite
    gradients) U^+ 1 is the least-squares solution, as in the reference; when the all-ones
    vector is numerically orthogonal to C's range (e.g. two exactly opposite gradients) the
    direction is undefined and the update is zero. Safe for zero, parallel and extremely
    scaled rows.

    Returns an aggregator: K task rows in, one params-shaped gradient out; stateless.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.config()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]   # equal angles with both rows
        [0.354, 0.854]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.config() | optax.adam(1e-3)

    References:
        Liu, Chu, Thuerey. "ConFIG: Towards Conflict-free Training of Physics Informed
        Neural Networks". ICLR 2025. https://arxiv.org/abs/2408.11104 ; reference code
        `conflictfree.grad_operator.ConFIG_update`.
    """
    return gram_aggregator(lambda norms, cos, state: (config_weights(norms, cos), state))
