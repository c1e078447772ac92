"""Per-task gradients: layer 2 of pinnx (losses -> per-task gradients).

A PINN's loss function returns a dictionary of scalar losses, one per task. `task_grads`
differentiates each entry separately and stacks the results: the *per-task gradients* are a
plain pytree shaped like the model's trainable leaves, every leaf with a leading axis of size
K (one row per task). Row k belongs to the k-th key of the returned loss dictionary.

**Task order.** Rows follow the order in which JAX flattens the dictionary, which is sorted
by key; a dictionary that leaves a `jax.jit` comes back in that same order. So
`tuple(losses)` of the dictionary `task_grads` returns names the rows, inside or outside jit.

The helpers `gram`, `task_norms` and `cosines` summarise per-task gradients; `task_norms` and
`cosines` are computed on rows rescaled by their largest entry, so they stay finite for rows
of any magnitude (1e-20 or 1e20 in float32), where a plain Gram matrix would under- or
overflow.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .residuals import Losses

__all__ = ["task_grads", "num_tasks", "gram", "task_norms", "cosines", "task_names",
           "ntk_traces", "default_extra_args"]


def _check_losses(losses: Any) -> dict[str, Any]:
    if not isinstance(losses, Mapping) or not losses:
        raise ValueError(
            "the loss function must return a non-empty dict mapping task names to scalar "
            f"losses, got {type(losses).__name__}"
        )
    for name, value in losses.items():
        if not isinstance(name, str):
            raise ValueError(f"task names must be strings, got {name!r}")
        shape = jnp.shape(value)
        if shape != ():
            hint = " (a per-point loss? reduce it, e.g. with jnp.mean)" if len(shape) == 1 else ""
            raise ValueError(f"loss {name!r} must be a scalar, got shape {shape}{hint}")
        if not jnp.issubdtype(jnp.result_type(value), jnp.inexact):
            raise ValueError(
                f"loss {name!r} must be a floating-point scalar, got dtype "
                f"{jnp.result_type(value)}"
            )
    return {name: losses[name] for name in sorted(losses)}


def task_names(losses: Mapping[str, Any]) -> tuple[str, ...]:
    """The task names of a loss dictionary, in row order (sorted, as JAX flattens dicts)."""
    return tuple(sorted(losses))


def task_grads(
    losses: Callable[..., Mapping[str, Float[Array, ""]]],
    model: PyTree,
    *args: Any,
    **kwargs: Any,
) -> tuple[dict[str, Float[Array, ""]], PyTree[Float[Array, "tasks ..."]]]:
    """Loss dictionary and per-task gradients of `losses(model, *args, **kwargs)`.

    Each row is its own `jax.grad` of one entry of the loss dictionary. Inside one `jax.jit`
    XLA shares the forward computations and drops what a task does not use, so this costs
    about the same as one gradient of the summed loss (stacking the loss vector and calling
    `jax.jacrev` measured 4.4x slower).

    Args:
        losses: `losses(model, *args, **kwargs) -> dict[str, scalar]`, one entry per task.
        model: the parameters: any pytree (e.g. an equinox Module). Its inexact-array leaves
            are differentiated; every other leaf is held fixed.
        *args: passed to `losses` (typically the batch of points).
        **kwargs: passed to `losses`.

    Non-finite inputs are not checked here (that would cost a reduction inside every
    jitted step): NaN propagates into the affected rows. `pinnx.fit` refuses non-finite
    batches and stops on the first non-finite step, naming the task.

    Returns:
        `(loss_dict, grads)`: the losses as a dict whose key order (sorted) is the row
        order, and the per-task gradients, shaped like `eqx.filter(model,
        eqx.is_inexact_array)` (None where a leaf is not trainable) with a leading axis K
        on every leaf.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> def loss_fn(params, batch):
        ...     r = params["w"] * batch - 1.0
        ...     return {"pde": jnp.mean(r ** 2), "bc": params["w"] ** 2}
        >>> params = {"w": jnp.array(2.0)}
        >>> losses, grads = pinnx.task_grads(loss_fn, params, jnp.array([1.0, 3.0]))
        >>> tuple(losses), grads["w"].tolist()   # one row per task, in sorted order
        (('bc', 'pde'), [4.0, 16.0])
        >>> opt = pinnx.sum() | optax.sgd(0.1)
        >>> updates, state = opt.update(grads, opt.init(params, tasks=2), params, losses=losses)
        >>> float(updates["w"])   # -0.1 (4 + 16)
        -2.0
    """
    params, static = eqx.partition(model, eqx.is_inexact_array)
    if not jax.tree.leaves(params):
        raise ValueError(
            "the model has no trainable leaves (no floating-point arrays) to differentiate"
        )

    def evaluate(p):
        return losses(eqx.combine(p, static), *args, **kwargs)

    names = tuple(_check_losses(jax.eval_shape(evaluate, params)))

    def entry(p, name):
        out = evaluate(p)
        return out[name], out

    rows, values = [], None
    for name in names:
        (_, out), g = jax.value_and_grad(functools.partial(entry, name=name), has_aux=True)(
            params
        )
        values = out if values is None else values
        rows.append(g)
    grads = jax.tree.map(lambda *r: jnp.stack(r), *rows)
    return {name: values[name] for name in names}, grads


def num_tasks(grads: PyTree[Array]) -> int:
    """The number of task rows K of a per-task gradient pytree (its common leading axis).

    Raises:
        ValueError: if there are no array leaves, a leaf has no leading axis, or the leaves
            disagree on K.
    """
    leaves = jax.tree.leaves(grads)
    if not leaves:
        raise ValueError("the per-task gradients have no array leaves")
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    if None in sizes:
        raise ValueError(
            "every leaf of the per-task gradients needs a leading task axis; got a scalar "
            "leaf (did you pass an ordinary gradient instead of pinnx.task_grads output?)"
        )
    if len(sizes) != 1:
        raise ValueError(
            f"the leaves of the per-task gradients disagree on the number of tasks: "
            f"leading axes {sorted(sizes)}"
        )
    (k,) = sizes
    if k < 1:
        raise ValueError("the per-task gradients have zero task rows")
    return int(k)


def _row_sum(fn: Callable[[Array], Array], grads: PyTree[Array]) -> Array:
    """Sum over leaves of `fn(leaf)`, where `fn` maps a (K, ...) leaf to a (K, ...) result."""
    return sum(fn(leaf) for leaf in jax.tree.leaves(grads))


def _flat(leaf: Array) -> Array:
    return jnp.reshape(leaf, (leaf.shape[0], -1))


def gram(grads: PyTree[Float[Array, "tasks ..."]]) -> Float[Array, "tasks tasks"]:
    """The K x K Gram matrix G = J J^T of the per-task gradients (J's rows are the tasks).

    Summed over leaves; no flattened copy of J is built. In float32, rows above about 1e19
    overflow and rows below about 1e-19 underflow here: use `task_norms` and `cosines`
    (scale-safe) where magnitudes are extreme.
    """
    num_tasks(grads)
    return _row_sum(lambda g: _flat(g) @ _flat(g).T, grads)


def _row_scales(grads: PyTree[Array]) -> Array:
    """Largest absolute entry of each row, over all leaves; 1 for a (numerically) zero row."""
    peak = jnp.max(jnp.stack([jnp.max(jnp.abs(_flat(g)), axis=1)
                              for g in jax.tree.leaves(grads)]), axis=0)
    # rows below the smallest normal number are zero (flushed); 1/tiny is finite
    return jnp.where(peak >= jnp.finfo(peak.dtype).tiny, peak, jnp.ones_like(peak))


def normalized_gram(
    grads: PyTree[Float[Array, "tasks ..."]],
) -> tuple[Float[Array, " tasks"], Float[Array, "tasks tasks"]]:
    """Norms and cosine matrix of the task rows, safe for any finite magnitude.

    Rows are rescaled by their largest entry before the Gram matrix is formed, so neither
    1e20 nor 1e-20 rows overflow or underflow in float32. A zero row has norm 0 and cosine 0
    with every row (itself included).

    Returns:
        `(norms, cos)`: shapes (K,) and (K, K); `G = outer(norms, norms) * cos`.
    """
    num_tasks(grads)
    scale = _row_scales(grads)
    inv = 1 / scale
    scaled = jax.tree.map(lambda g: g * jnp.reshape(inv, (-1,) + (1,) * (g.ndim - 1)), grads)
    g_scaled = _row_sum(lambda g: _flat(g) @ _flat(g).T, scaled)
    sq = jnp.diagonal(g_scaled)
    root = jnp.sqrt(sq)
    norms = scale * root
    safe = jnp.where(root > 0, root, jnp.ones_like(root))
    cos = g_scaled / safe[:, None] / safe[None, :]
    cos = jnp.where((root[:, None] > 0) & (root[None, :] > 0), cos, jnp.zeros_like(cos))
    return norms, jnp.clip(cos, -1, 1)


def task_norms(grads: PyTree[Float[Array, "tasks ..."]]) -> Float[Array, " tasks"]:
    """Euclidean norm of each task row over all leaves, shape (K,); scale-safe."""
    return normalized_gram(grads)[0]


def cosines(grads: PyTree[Float[Array, "tasks ..."]]) -> Float[Array, "tasks tasks"]:
    """Pairwise cosine similarities of the task rows, shape (K, K); scale-safe.

    Entries involving a zero row are 0; the diagonal is 1 for non-zero rows.
    """
    return normalized_gram(grads)[1]


def ntk_traces(
    losses: Losses,
    model: Any,
    batch: Mapping[str, Any],
    *,
    mean: bool = False,
    batch_size: int | None = None,
) -> dict[str, Float[Array, ""]]:
    """Trace of each task's block of the neural tangent kernel: sum_i ||d r_i / d theta||^2.

    For task k with per-point residuals r_i (its `Term` evaluated at each point of its batch
    entry; vector residuals contribute every component), the diagonal block K_kk of the NTK
    has entries (d r_i / d theta) . (d r_j / d theta), so tr(K_kk) = sum_i ||d r_i/d theta||^2
    over the model's trainable (inexact-array) leaves. Each point's Jacobian is one
    `jax.jacrev`, mapped over the points.

    Args:
        losses: the loss function, a `pinnx.residuals.Losses` (it knows the per-point
            residuals).
        model: the model (its inexact-array leaves are the parameters theta).
        batch: the batch, one entry per task, as `losses` takes it.
        mean: average over the task's points instead of summing (the jaxpi code's variant,
            which does not grow with the number of points).
        batch_size: points per vectorised chunk (`jax.lax.map`), to bound the memory of the
            per-point Jacobians (N x P per task at once by default).

    Returns:
        {task: scalar trace}, in sorted task order (the row order).

    Examples:
        >>> import jax, pinnx
        >>> problem = pinnx.problems.helmholtz(n_pde=16, n_bc=16, n_test=11)
        >>> model = pinnx.nn.MLP(2, "scalar", width=8, depth=2, key=jax.random.key(0))
        >>> traces = pinnx.ntk_traces(problem.losses, model, problem.sample(jax.random.key(1)))
        >>> sorted(traces), all(float(t) > 0 for t in traces.values())
        (['bc', 'pde'], True)
    """
    if not isinstance(losses, Losses):
        raise ValueError(
            "ntk_traces needs per-point residuals: a pinnx.residuals.Losses, got "
            f"{type(losses).__name__}"
        )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    out = {}
    for name in sorted(losses.terms):
        term = losses.terms[name]
        if name not in batch:
            raise ValueError(f"the batch has no entry {name!r} (the points of task {name!r})")

        def residual(p, point, term=term):
            one = jax.tree.map(lambda a: a[None], point)
            return jnp.ravel(term(eqx.combine(p, static), one))

        def squared_norm(point, residual=residual):
            jac = jax.jacrev(residual)(params, point)
            return sum(jnp.sum(j**2) for j in jax.tree.leaves(jac))

        per_point = jax.lax.map(squared_norm, batch[name], batch_size=batch_size or 0)
        out[name] = jnp.mean(per_point) if mean else jnp.sum(per_point)
    return out


def default_extra_args(
    losses: Callable[..., Mapping[str, Any]],
) -> Callable[[Any, Any], dict[str, Any]]:
    """The extra arguments `pinnx.fit` passes to the chain's `update` unless told otherwise.

    For a `pinnx.residuals.Losses`, `{"ntk_traces": fn}`, where `fn()` computes
    `ntk_traces(losses, model, batch)` for the step's model and batch. The function is lazy:
    only a transform that calls it (`pinnx.ntk_weights`, at its update steps) traces the
    per-point Jacobians, so it costs nothing otherwise. For any other loss function, `{}`.

    Args:
        losses: the loss function given to `fit`.

    Returns:
        `extra_args(model, batch) -> dict`, the default of `fit(..., extra_args=...)` and
        `pinnx.make_step(..., extra_args=...)`.

    Examples:
        A hook of one's own that keeps the default (`ntk_traces=`) and adds an argument:

        >>> import pinnx
        >>> problem = pinnx.problems.helmholtz(n_pde=16, n_bc=16, n_test=11)
        >>> default = pinnx.tasks.default_extra_args(problem.losses)
        >>> hook = lambda model, batch: {**default(model, batch), "scale": 2.0}
        >>> sorted(hook(None, None))   # the traces are computed only if called
        ['ntk_traces', 'scale']

        It is passed as `pinnx.fit(..., extra_args=hook)` or `pinnx.make_step(...,
        extra_args=hook)`.
    """
    if not isinstance(losses, Losses):
        return lambda model, batch: {}

    def extra_args(model: Any, batch: Any) -> dict[str, Any]:
        return {"ntk_traces": lambda: ntk_traces(losses, model, batch)}

    return extra_args
