"""GradVac: gradient vaccine (Wang et al., ICLR 2021)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, Key

from ._base import Aggregator, FloatLike, IntLike, check, count_tasks
from ._gram import gram_aggregator, relative_norms, unit_combination
from ._pcgrad import _others, _random_others
from ._registry import register

__all__ = ["gradvac", "gradvac_rows", "GradVacState", "TARGET_CAP"]

# Raising cos(g_i, g_j) to a target t adds a multiple 1 / sqrt(1 - t^2) of g_j: targets
# are capped here so that the multiple stays below ~700 (1 is reachable only in the limit).
TARGET_CAP = 1 - 1e-6


class GradVacState(NamedTuple):
    """State of `gradvac`.

    Attributes:
        phi: (K, K) the EMA targets phi_hat[i, j] of cos(g_i, g_j) (the diagonal is unused).
        key: the key of the next order draw; None with `random_order=False`.
    """

    phi: Float[Array, "tasks tasks"]
    key: Key[Array, ""] | None


def gradvac_rows(
    cos: Float[Array, "tasks tasks"],
    phi: Float[Array, "tasks tasks"],
    order: Int[Array, "tasks steps"],
    beta: float | Float[ArrayLike, ""],
) -> tuple[Float[Array, "tasks tasks"], Float[Array, "tasks tasks"]]:
    """GradVac's adjusted rows and new targets, from the cosine matrix alone.

    Row i starts at v = u_i (GradVac is homogeneous in g_i, so it runs on the unit row and
    is scaled by ||g_i|| afterwards) and is tracked by its coefficients c on the unit
    directions u_k. For each j in `order[i]`, with phi = cos(v, g_j) and t = the target
    phi_hat[i, j] (capped at `TARGET_CAP`): if phi < t, add
    ||v|| (t sqrt(1 - phi^2) - phi sqrt(1 - t^2)) / sqrt(1 - t^2) u_j to v, which makes
    cos(v, g_j) = t; then phi_hat[i, j] <- (1 - beta) phi_hat[i, j] + beta phi (phi measured
    before the adjustment). Rows are independent, so all K rows advance together. A row
    that cancels to rounding noise (||v|| <= sqrt(K eps) sum_k |c_k|, as when a pair that
    is exactly opposite is raised) counts as a zero row from then on: cosine 0, nothing
    raised. Likewise, where the part of v orthogonal to u_j (||v|| sqrt(1 - phi^2)) is
    below that level, v counts as parallel or opposite to u_j: raising it towards an
    opposite g_j leaves nothing of it (the formula's limit), whatever the target, rather
    than that noise divided by sqrt(1 - t^2). A zero row j (cos[j, j] = 0) is never raised
    towards.

    Floats (u = eps / 2): v is known only through c, so ||v||^2 = c' cos c and v . u_j
    carry the cosines' rounding (about (2 P + 6) u each, from `normalized_gram` over P
    coordinates) times (sum_k |c_k|)^2 and sum_k |c_k|, plus 2 K u of their own. With
    rho = sum_k |c_k| / ||v|| >= 1 (how far row i has cancelled), phi and (relatively) ||v||
    are off by at most delta = (3 P + 2 K + 10) u rho^2, and a raise lands within
    4 delta / (1 - phi^2) of its target (the sine of the angle before divides twice), plus
    about (K + 10) eps rho' (rho' after the raise).

    Args:
        cos: (K, K) cosine matrix of the task gradients (zero rows: all-zero cosines).
        phi: (K, K) current targets.
        order: (K, S) for each row i, the other tasks in visiting order (S = K - 1 for a
            full step; fewer columns give the intermediate state after S visits).
        beta: EMA rate of the targets.

    Returns:
        `(c, new_phi)`: (K, K) with g_i^vac = ||g_i|| sum_k c[i, k] u_k, and the targets.
    """
    k = cos.shape[0]
    rows = jnp.arange(k)
    c = jnp.eye(k, dtype=cos.dtype)
    new_phi = phi.astype(cos.dtype)
    # ||v||^2 = c^T cos c carries a rounding error of about eps (sum |c|)^2: a row that
    # cancels below sqrt(eps) sum |c| (raising a pair that is exactly opposite) has no
    # reliable direction left and counts as a zero row (cosine 0, nothing raised)
    noise = jnp.sqrt(k * jnp.finfo(cos.dtype).eps)
    nonzero = jnp.diagonal(cos) > 0  # a zero row (u_j = 0) has nothing to raise towards

    def visit(carry, j):  # every row i visits its next task j[i]
        c, phi = carry
        dot = jnp.sum(c * cos[:, j].T, axis=1)  # v_i . u_j for every row i
        norm = jnp.sqrt(jnp.maximum(jnp.einsum("ik,kl,il->i", c, cos, c), 0))
        floor = noise * jnp.sum(jnp.abs(c), axis=1)
        live = norm > floor
        now = jnp.where(live, jnp.clip(dot / jnp.where(live, norm, 1), -1, 1), 0)
        target = phi[rows, j]
        t = jnp.minimum(target, TARGET_CAP)
        sin_now = jnp.sqrt(jnp.maximum(1 - now**2, 0))
        # the part of v orthogonal to u_j (norm * sin_now) is rounding noise by the same
        # measure: v is (anti)parallel to u_j. Otherwise raising an exactly opposite pair
        # (float32 cosine -1 + 1 ulp) would leave that noise, divided by sin_t, as a row
        flat = live & (norm * sin_now <= floor)
        now_r = jnp.where(flat, jnp.sign(now), now)
        sin_now = jnp.where(flat, 0, sin_now)
        sin_t = jnp.sqrt(jnp.maximum(1 - t**2, 0))
        # sin_t = 0 only for t = -1, which nothing is below: no raise, safe denominator
        w = norm * (t * sin_now - now_r * sin_t) / jnp.where(sin_t > 0, sin_t, 1)
        c = c.at[rows, j].add(jnp.where((now_r < t) & live & nonzero[j], w, 0))
        phi = phi.at[rows, j].set((1 - beta) * target + beta * now)
        return (c, phi), None

    # a scan, not an unrolled loop: one compiled visit whatever K
    (c, new_phi), _ = jax.lax.scan(visit, (c, new_phi), jnp.asarray(order).T)
    return c, new_phi


def _dtype(params):
    leaves = [x for x in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(x),
                                                                     jnp.inexact)]
    return jnp.result_type(*leaves) if leaves else jnp.float32


@register
def gradvac(beta: FloatLike = 0.5, *, seed: IntLike = 0, random_order: bool = True) -> Aggregator:
    """GradVac: raise each pair's gradient cosine to an EMA target of its own history.

    For each task i, start from g_i; for every other task j (in a random order, drawn
    afresh for each i at every step) compare phi_ij = cos(current g_i, g_j) with the target
    phi_hat_ij. If phi_ij < phi_hat_ij, add
    ||g_i|| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) / (||g_j|| sqrt(1 - phi_hat^2)) g_j
    to the current g_i, which sets its cosine with g_j to exactly phi_hat_ij; then
    phi_hat_ij <- (1 - beta) phi_hat_ij + beta phi_ij. The update is the sum of the K
    adjusted rows. Targets start at 0 (PCGrad's implicit target, as in the paper), so
    conflicting pairs are first made orthogonal, and later pulled towards the cosines the
    pair usually has; as the targets catch up with the observed cosines the adjustment
    fades and GradVac tends to the sum. With all targets at -1 and beta = 0 nothing is
    ever raised and GradVac is the sum.

    Guards: targets are capped at `TARGET_CAP` = 1 - 1e-6 when raising (a target of 1 would
    need an infinite multiple of g_j). Raising a row that is exactly opposite to g_j leaves
    nothing of it (it has no component orthogonal to g_j: the formula's limit), and a row
    that has cancelled to rounding noise counts as zero from then on (see `gradvac_rows`).
    Zero rows have cosine 0 with every row. The update is the sum of the rows as given
    (`jnp.sum`, exactly that when nothing is raised) plus what the raises added, formed on
    the unit directions relative to the largest norm (`unit_combination`); the accuracy of
    a raise is stated in `gradvac_rows`.

    The state (`GradVacState`) holds the K x K targets, so init needs the number of tasks
    (`opt.init(params, tasks=K)`; `pinnx.fit` passes it), and a key for the orders. A Gram
    weighting: one pass over the gradients for the cosines, O(K^3) work per step on the
    K x K matrices (K - 1 rounds of K simultaneous visits), one pass for the weighted sum.

    Args:
        beta: EMA rate of the targets, in [0, 1] (0: targets never move). The default 0.5
            is torchjd's and LibMTL's; smaller values remember longer.
        seed: seed of the key held in the state; each update splits it.
        random_order: False visits the other tasks in ascending order (deterministic).

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.gradvac(beta=0.5)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]
        [0.5, 1.5]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.gradvac(beta=0.5) | optax.adam(1e-3)

    References:
        Wang, Tsvetkov, Firat, Cao. "Gradient Vaccine: Investigating and Improving
        Multi-task Optimization in Massively Multilingual Models". ICLR 2021.
        https://arxiv.org/abs/2010.05874
    """
    check(beta, lambda v: (0 <= v) & (v <= 1), f"gradvac(beta=...) must lie in [0, 1], got "
          f"{beta!r}")

    def init(params, tasks):
        k = count_tasks(tasks, "gradvac")
        phi = jnp.zeros((k, k), _dtype(params))
        return GradVacState(phi=phi, key=jax.random.key(seed) if random_order else None)

    def weights(norms, cos, state):
        k = norms.shape[0]
        if state.phi.shape != (k, k):
            raise ValueError(f"gradvac was initialised for {state.phi.shape[0]} tasks but got "
                             f"{k} task rows")
        key = state.key
        if random_order:
            key, sub = jax.random.split(key)
            order = _random_others(sub, k)
        else:
            order = _others(k)
        c, phi = gradvac_rows(cos, state.phi, order, beta)
        return c, GradVacState(phi.astype(state.phi.dtype), key)

    def rows_plus_raises(c, norms, grads):
        # g_i^vac = g_i + ||g_i|| sum_{k != i} c_ik u_k (c_ii = 1 is never changed): the rows
        # summed as they are, plus what the raises added, on the unit directions relative to
        # the largest norm and scaled last (||g_i|| c_ik u_k of float32 rows near the
        # smallest normal number is subnormal: flushed to zero)
        added = c - jnp.eye(c.shape[0], dtype=c.dtype)
        top, rel = relative_norms(norms)
        extra = unit_combination(jnp.sum(rel[:, None] * added, axis=0), norms, grads, top)
        any_raised = jnp.any(added != 0)
        return jax.tree.map(lambda g, e: jnp.sum(g, axis=0) + jnp.where(any_raised, e, 0),
                            grads, extra)

    return gram_aggregator(weights, init=init, combine=rows_plus_raises)
