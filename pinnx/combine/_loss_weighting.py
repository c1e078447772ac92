"""Loss weightings: the two factories and the pieces they share.

A loss weighting is a task transform that multiplies row k by a weight lambda_k kept in its
state. `loss_weighting` owns what every one of them does: the task count (`tasks=` at the
factory or at init), the state's dtype, the check of the task rows against the state and
the scaling of the rows; a method is its `init` and its `weigh` step. `ema_weighting` is the
family whose weights follow a moving average of an estimate every `every` steps (LRA,
gradient-norm weights, NTK weights): a method is its estimate function. The state's float
dtype is the parameters' (float32 when no parameters are given at init), fixed from init on;
estimates are formed in the rows' dtype, so that one that does
not fit there counts as undefined instead of overflowing when it multiplies a row.

Float limits, for every weighting (`scale_rows`): finite rows give finite rows. Row k is
lambda_k g_k (one rounding) whenever its entries fit in (1 - 4 eps) max, max the dtype's
largest finite number; where they do not (a weight that grew to 1e37 while the rows were
1e-19, applied to rows of order 1 later, say) row k is the multiple of g_k whose largest
entry is (1 - 4 eps) max instead: same direction, never inf. As everywhere, results below
the smallest normal number are flushed to zero (a weight below it is 0).
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PyTree

from ..tasks import num_tasks, task_names
from ._base import (
    FloatLike,
    IntLike,
    Tasks,
    TaskTransform,
    check,
    concrete,
    count_tasks,
    resolve_task,
)

__all__ = [
    "loss_weighting",
    "ema_weighting",
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
        defined: Bool[Array, " tasks"], alpha: FloatLike, due: Bool[Array, ""]
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


def loss_weighting(
    init: Callable[[int, Any], Any],
    weigh: Callable[..., tuple[Float[Array, " tasks"], Any]],
    *,
    name: str,
    tasks: Tasks = None,
) -> TaskTransform:
    """A task transform that multiplies row k by a weight computed from its state.

    Args:
        init: `init(k, dtype) -> state`, a NamedTuple with a (K,) `weights` field (of the
            float dtype given: the parameters').
        weigh: `weigh(grads, state, losses, **extra_args) -> (weights, state)`: the (K,)
            weights of this step and the new state. `losses` is the `losses=` argument of
            the update (a dict by task name, or None); `loss_vector` turns it into a (K,)
            vector in row order and refuses a missing one.
        name: the method's name, for error messages.
        tasks: the number of tasks (or their names), when init cannot be given it (inside
            `optax.chain`).

    Returns:
        A `TaskTransform`: K rows in, row k times weights[k] out (saturating instead of
        overflowing, see `scale_rows`).
    """
    bound = tasks

    def init_fn(params: PyTree, *, tasks: Tasks = None) -> Any:
        k = count_tasks(bound if tasks is None else tasks, name)
        return init(k, state_dtype(params))

    def update(updates, state, params=None, *, losses=None, **extra_args):
        del params
        k = num_tasks(updates)
        check_rows(state.weights.shape[0], k, name)
        weights, state = weigh(updates, state, losses, **extra_args)
        return scale_rows(weights, updates), state

    return TaskTransform(init_fn, update)


def ema_weighting(
    estimate: Callable[..., tuple[Float[Array, " tasks"], Bool[Array, " tasks"]]],
    *,
    alpha: FloatLike,
    every: IntLike,
    state: type,
    name: str,
    main: str | int | None = None,
    tasks: Tasks = None,
) -> TaskTransform:
    """Weights that follow a moving average of an estimate, updated every `every` steps.

    At every `every`-th update (from the first on) lambda <- (1 - alpha) lambda +
    alpha lambda_hat where the estimate is defined; an undefined one keeps its weight and
    `state.skipped` counts the step (`ema`). A step uses the weights updated at that step.

    Args:
        estimate: `estimate(grads, weights, *, due, main, **extra_args) -> (lambda_hat,
            defined)`: (K,) estimates and where they are defined. `due` (a traced bool) says
            whether this step updates the weights (an expensive estimate can skip its work
            otherwise, inside `lax.cond`); `main` is the main task's row or None.
        alpha: weight of the new estimate, in (0, 1].
        every: update period in steps, a positive int.
        state: the state's NamedTuple class, with fields `(weights, count, skipped)`.
        name: the method's name, for error messages.
        main: a task whose weight stays 1 (by name, looked up in `losses=`, or row index).
        tasks: as in `loss_weighting`.
    """
    check(alpha, lambda v: (0 < v) & (v <= 1), f"{name} alpha must lie in (0, 1], got {alpha}")
    if concrete(every) and (not isinstance(every, (int, np.integer)) or isinstance(every, bool)
                            or every < 1):
        raise ValueError(f"{name} every must be a positive int, got {every!r}")

    def init(k, dtype):
        zero = jnp.zeros((), jnp.int32)
        return state(jnp.ones((k,), dtype), zero, zero)

    def weigh(grads, s, losses, **extra_args):
        k = s.weights.shape[0]
        row = None if main is None else resolve_task(main, k, losses, name)
        due = s.count % every == 0
        est, defined = estimate(grads, s.weights, due=due, main=row, **extra_args)
        weights, skip = ema(s.weights, est, defined, alpha, due)
        if row is not None:
            weights = weights.at[row].set(1)
        return weights, state(weights, s.count + 1, s.skipped + skip.astype(jnp.int32))

    return loss_weighting(init, weigh, name=name, tasks=tasks)
