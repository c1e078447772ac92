"""Pieces shared by the loss weightings: loss vectors, row scaling, guarded estimates.

A loss weighting is a task transform that multiplies row k by a weight lambda_k kept in its
state. The state's float dtype is the parameters' (float32 when no parameters are given at
init), fixed from init on; estimates are formed in the rows' dtype, so that one that does
not fit there counts as undefined instead of overflowing when it multiplies a row.

Float limits, for every weighting (`scale_rows`): finite rows give finite rows. Row k is
lambda_k g_k (one rounding) whenever its entries fit in (1 - 4 eps) max, max the dtype's
largest finite number; where they do not (a weight that grew to 1e37 while the rows were
1e-19, applied to rows of order 1 later, say) row k is the multiple of g_k whose largest
entry is (1 - 4 eps) max instead: same direction, never inf. As everywhere, results below
the smallest normal number are flushed to zero (a weight below it is 0).
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from ..tasks import task_names

__all__ = [
    "state_dtype",
    "rows_dtype",
    "check_rows",
    "loss_vector",
    "task_vector",
    "scale_rows",
    "inverse_share",
    "ema",
    "all_positive",
    "scaled_softmax",
]


def state_dtype(params: PyTree) -> jnp.dtype:
    """The float dtype of a weighting's state: that of the parameters, else float32."""
    leaves = [x for x in jax.tree.leaves(params)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.dtype(jnp.result_type(*leaves)) if leaves else jnp.dtype(jnp.float32)


def rows_dtype(grads: PyTree[Array]) -> jnp.dtype:
    return jnp.dtype(jnp.result_type(*jax.tree.leaves(grads)))


def check_rows(k_state: int, k: int, who: str) -> None:
    if k_state != k:
        raise ValueError(f"{who} was initialised for {k_state} tasks but got {k} task rows")


def task_vector(values: Any, k: int, who: str, what: str, dtype) -> Float[Array, " tasks"]:
    """A (K,) vector from a dict name -> scalar (rows in sorted name order) or a (K,) array."""
    if isinstance(values, Mapping):
        names = task_names(values)
        items = [values[n] for n in names]
        for name, v in zip(names, items, strict=True):
            if jnp.shape(v) != ():
                raise ValueError(f"{who}: {what}[{name!r}] must be a scalar, got shape "
                                 f"{jnp.shape(v)}")
        if len(items) != k:
            raise ValueError(f"{who}: {what}= has {len(items)} tasks {names} but the "
                             f"gradients have {k} task rows")
        return jnp.stack([jnp.asarray(v).astype(dtype) for v in items])
    vec = jnp.asarray(values)
    if vec.shape != (k,):
        raise ValueError(f"{who}: {what}= must be a dict of {k} scalars or a ({k},) array, "
                         f"got shape {vec.shape}")
    return vec.astype(dtype)


def loss_vector(losses: Any, k: int, who: str, dtype) -> Float[Array, " tasks"]:
    """The loss values of the `losses=` extra argument as a (K,) vector in row order."""
    if losses is None:
        raise ValueError(
            f"{who} weighs the tasks by their loss values, so its update needs them: "
            "opt.update(grads, state, params, losses=losses) (pinnx.fit passes them)"
        )
    return task_vector(losses, k, who, "losses", dtype)


def scale_rows(weights: Float[Array, " tasks"], grads: PyTree[Array]) -> PyTree[Array]:
    """Row k of every leaf times weights[k], saturating instead of overflowing.

    Row k is multiplied by weights[k] clipped to +-c_k, c_k = (1 - 4 eps) max / max(1, m_k),
    m_k = max|g_k| over all leaves (max and eps of the leaves' narrowest dtype; m_k = 1 for a
    zero or non-finite row). So row k is weights[k] g_k (one rounding) whenever that and the
    weight are at most (1 - 4 eps) max in size, and otherwise +-c_k g_k (for m_k >= 1, the
    multiple of g_k whose largest entry is (1 - 4 eps) max): finite rows and weights give
    finite rows, never inf or NaN.
    """
    leaves = jax.tree.leaves(grads)
    k = leaves[0].shape[0]
    dtype = rows_dtype(grads)
    narrow = min((jnp.finfo(leaf.dtype) for leaf in leaves), key=lambda f: f.bits)
    limit = jnp.asarray(float(narrow.max) * (1 - 4 * float(narrow.eps)), dtype)
    peak = jnp.max(jnp.stack([jnp.max(jnp.abs(jnp.reshape(g, (k, -1))), axis=1, initial=0)
                              .astype(dtype) for g in leaves]), axis=0)
    cap = limit / jnp.where(jnp.isfinite(peak), jnp.maximum(peak, 1), 1)
    factor = jnp.clip(weights.astype(dtype), -cap, cap)

    def scale(g):
        return g * jnp.reshape(factor.astype(g.dtype), (-1,) + (1,) * (g.ndim - 1))

    return jax.tree.map(scale, grads)


def inverse_share(values: Float[Array, " tasks"]
                  ) -> tuple[Float[Array, " tasks"], Bool[Array, " tasks"]]:
    """(sum_j v_j) / v_k, and where it is defined (v_k > 0 and the ratio finite)."""
    tiny = jnp.finfo(values.dtype).tiny
    ok = jnp.isfinite(values) & (values >= tiny)
    total = jnp.sum(jnp.where(ok, values, 0))
    est = total / jnp.where(ok, values, 1)
    ok = ok & jnp.isfinite(est) & jnp.all(jnp.isfinite(values))
    return jnp.where(ok, est, 0), ok


def ema(weights: Float[Array, " tasks"], estimate: Float[Array, " tasks"],
        defined: Bool[Array, " tasks"], alpha: float, due: Bool[Array, ""]
        ) -> tuple[Float[Array, " tasks"], Bool[Array, ""]]:
    """lambda <- (1 - alpha) lambda + alpha lambda_hat where due and defined.

    Returns the new weights and whether some due estimate was undefined (left unchanged).
    """
    est = jnp.where(defined, estimate, 0).astype(weights.dtype)
    defined = defined & jnp.isfinite(est)
    new = jnp.where(due & defined, (1 - alpha) * weights + alpha * est, weights)
    return new, due & ~jnp.all(defined)


def all_positive(values: Float[Array, "..."]) -> Bool[Array, ""]:
    """Every value finite and positive (what ratio-based weightings need of the losses)."""
    return jnp.all(jnp.isfinite(values) & (values > 0))


def scaled_softmax(logits: Float[Array, " tasks"]) -> Float[Array, " tasks"]:
    """K * softmax(logits): weights that average to 1 (all 1 for equal logits).

    Formed as exp(z_k - log(S / K)), z = logits - max, S = sum_k exp(z_k), so that only the
    weight itself can underflow: a weight that is a normal number is never 0 (K exp(z_k) / S
    lost those whose exp(z_k) alone was below the smallest normal number); one below it is 0.
    """
    z = logits - jnp.max(logits)
    total = jnp.sum(jnp.exp(z))  # in [1, K]: exactly K for equal logits, so weights 1
    return jnp.exp(z - jnp.log(total / logits.shape[0]))
