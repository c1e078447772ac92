"""`fit`: the jit-compiled training loop shared by every method.

Steps run inside `jax.lax.scan` over chunks of steps; between chunks the host updates the
progress bar, records diagnostics and calls the evaluation callback. The same loop runs a
pinnx chain (per-task gradients -> combiner) and a plain optax optimizer (gradient of the
summed loss, the vanilla baseline), so methods are compared in one harness.
"""

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree
from tqdm.auto import tqdm

from .combine import Aggregator, Chain, Combiner
from .combine._ntk import ntk_traces
from .residuals import Losses
from .tasks import _check_losses, normalized_gram, task_grads

__all__ = ["fit", "History", "NonFinite", "ModelSampler"]


class ModelSampler:
    """A data hook for `fit` that sees the current model: `sample(key, model) -> batch`.

    `fit` calls a plain `data(key)` with the key alone. Wrap a function of the key *and the
    model* in `ModelSampler` and `fit` passes it the model being trained (its parameters at
    that step, before the step's update) every time it resamples, inside the compiled loop.
    That is what residual-based resampling needs (e.g. `pinnx.pointwise.rad_sampler`).

    The function must be jittable and return batches of one fixed structure, shape and
    dtype (the loop is compiled once): replace points, do not grow the set.

    Args:
        fn: `fn(key, model) -> batch`.

    Example:
        >>> data = pinnx.ModelSampler(lambda key, model: my_adaptive_batch(key, model))
        >>> pinnx.fit(losses, model, opt, data, steps=5000, resample_every=500)
    """

    def __init__(self, fn: Callable[[PRNGKeyArray, Any], PyTree]):
        if not callable(fn):
            raise ValueError(f"ModelSampler wraps a function fn(key, model), got {fn!r}")
        self.fn = fn

    def __call__(self, key: PRNGKeyArray, model: Any) -> PyTree:
        return self.fn(key, model)

    def __repr__(self) -> str:
        return f"ModelSampler({self.fn!r})"


@dataclasses.dataclass(frozen=True)
class NonFinite:
    """Where training stopped: the step whose update went non-finite and the culprit."""

    step: int
    task: str | None
    message: str


@dataclasses.dataclass
class History:
    """What `fit` recorded.

    Attributes:
        tasks: task names, in row order.
        losses: per-task loss at every step (before that step's update), {task: (steps,)}.
        log_steps: steps at which gradient diagnostics were recorded, (L,).
        grad_norms: per-task gradient norm at each log step, {task: (L,)}.
        cosines: cosine between every pair of task gradients at each log step,
            {(task_a, task_b): (L,)} for a < b in row order.
        evals: `(step, metrics)` for every call of the evaluation callback.
        nonfinite: set if training stopped early on a non-finite step.
        wall_time: seconds spent in `fit`, compilation included.
        record_steps: steps whose per-task gradients were recorded inside the compiled step
            (`fit(record_every=...)`), (R,); empty otherwise.
        step_grad_norms: per-task gradient norm at each recorded step, {task: (R,)}.
        step_cosines: pairwise cosines at each recorded step, {(task_a, task_b): (R,)}.
    """

    tasks: tuple[str, ...]
    losses: dict[str, np.ndarray]
    log_steps: np.ndarray
    grad_norms: dict[str, np.ndarray]
    cosines: dict[tuple[str, str], np.ndarray]
    evals: list[tuple[int, dict[str, float]]]
    nonfinite: NonFinite | None
    wall_time: float
    record_steps: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((0,), int))
    step_grad_norms: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    step_cosines: dict[tuple[str, str], np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of steps taken (updates applied)."""
        return len(next(iter(self.losses.values())))

    @property
    def total_loss(self) -> np.ndarray:
        """Sum of the task losses at every step, (steps,)."""
        return np.sum([self.losses[t] for t in self.tasks], axis=0)


class _Carry(NamedTuple):
    params: PyTree
    opt_state: Any
    prev_params: PyTree  # the state before the last applied update
    prev_state: Any
    batch: PyTree
    stop: Array  # [step, task] of the first non-finite step, or [-1, -1]


def _uses_task_grads(optimizer: optax.GradientTransformation) -> bool:
    if isinstance(optimizer, Combiner):
        if isinstance(optimizer, Aggregator) or (
            isinstance(optimizer, Chain) and optimizer.has_aggregator
        ):
            return True
        raise ValueError(
            f"the optimizer {optimizer!r} has no aggregator: it passes K task rows, not an "
            "update. Add one, e.g. `... | pinnx.pcgrad() | optax.adam(1e-3)`"
        )
    return False


def _check_batch(batch: PyTree) -> None:
    flat, _ = jax.tree_util.tree_flatten_with_path(batch)
    for path, leaf in flat:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr)))
            raise ValueError(
                f"batch entry {jax.tree_util.keystr(path)} has {bad} non-finite value(s)"
            )


def _all_finite(tree: PyTree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _row_finite(grads: PyTree, k: int) -> Array:
    rows = [jnp.all(jnp.isfinite(jnp.reshape(g, (k, -1))), axis=1) for g in jax.tree.leaves(grads)]
    return jnp.all(jnp.stack(rows), axis=0)


def _make_step(losses, tx, static, tasks, per_task, sampler, resample_every, sample_key,
               record_every=None):
    """One training step on a `_Carry`, as `fit` scans it (also timed by the benchmarks).

    The step outputs the (K,) loss vector; with `record_every` (per-task path only) it
    outputs `(losses, norms (K,), cosines (K, K))`, the statistics of the per-task gradients
    the step computed anyway, at steps divisible by `record_every` (NaN elsewhere).
    """
    k = len(tasks)

    def evaluate(p, b):
        return losses(eqx.combine(p, static), b)

    def one_step(carry: _Carry, step):
        batch = carry.batch
        shapes = jax.eval_shape(evaluate, carry.params, batch)
        loss_dtype = jnp.result_type(*[shapes[t].dtype for t in tasks])
        if sampler is not None and resample_every is not None:
            batch = jax.lax.cond(
                (step % resample_every == 0) & (step > 0),
                lambda: sampler(jax.random.fold_in(sample_key, step), carry.params),
                lambda: batch,
            )

        def update(params, opt_state):
            if per_task:
                model = eqx.combine(params, static)
                loss_dict, grads = task_grads(losses, model, batch)
                extra = {}
                if isinstance(losses, Losses):  # lazy: traced only by transforms calling it
                    extra["ntk_traces"] = lambda: ntk_traces(losses, model, batch)
                updates, new_state = tx.update(grads, opt_state, params, losses=loss_dict,
                                               **extra)
                rows_ok = _row_finite(grads, k)
                stats = _grad_stats(grads, step, record_every, k, loss_dtype)
            else:
                def total(p):
                    d = evaluate(p, batch)
                    return sum(d[t] for t in tasks), d

                (value, loss_dict), g = jax.value_and_grad(total, has_aux=True)(params)
                updates, new_state = tx.update(
                    g, opt_state, params, value=value, grad=g,
                    value_fn=lambda p: total(p)[0],
                )
                rows_ok = jnp.ones((k,), bool)
                stats = ()
            lvec = jnp.stack([loss_dict[t] for t in tasks]).astype(loss_dtype)
            task_ok = jnp.isfinite(lvec) & rows_ok
            ok = jnp.all(task_ok) & _all_finite(updates)
            new_params = eqx.apply_updates(params, updates)
            return new_params, new_state, lvec, ok, task_ok, stats

        def skip(params, opt_state):
            nan = jnp.full((k,), jnp.nan, loss_dtype)
            stats = _nan_stats(k, loss_dtype) if record_every is not None else ()
            return params, opt_state, nan, jnp.array(False), jnp.ones((k,), bool), stats

        running = carry.stop[0] < 0
        new_params, new_state, lvec, ok, task_ok, stats = jax.lax.cond(
            running, update, skip, carry.params, carry.opt_state
        )
        first_bad = running & ~ok
        culprit = jnp.where(jnp.all(task_ok), -1, jnp.argmin(task_ok))
        stop = jnp.where(
            first_bad,
            jnp.stack([step.astype(carry.stop.dtype), culprit.astype(carry.stop.dtype)]),
            carry.stop,
        )
        # success: advance, remembering this step's state; failure: keep this step's state,
        # or go back one step if this state's own losses are not finite
        lossy = first_bad & ~jnp.all(jnp.isfinite(lvec))
        now = (carry.params, carry.opt_state)
        cur, prev = jax.lax.cond(
            ok,
            lambda: ((new_params, new_state), now),
            lambda: jax.lax.cond(lossy, lambda: ((carry.prev_params, carry.prev_state), now),
                                 lambda: (now, now)),
        )
        out = (lvec, *stats) if record_every is not None else lvec
        return _Carry(cur[0], cur[1], prev[0], prev[1], batch, stop), out

    return one_step


def _sampler(data: Any, static: PyTree) -> Callable[[PRNGKeyArray, PyTree], PyTree] | None:
    """`fit`'s data hook as `draw(key, params) -> batch`, or None for a fixed batch."""
    if isinstance(data, ModelSampler):
        return lambda key, params: data(key, eqx.combine(params, static))
    if callable(data):
        return lambda key, params: data(key)
    return None


def _nan_stats(k: int, dtype) -> tuple[Array, Array]:
    return jnp.full((k,), jnp.nan, dtype), jnp.full((k, k), jnp.nan, dtype)


def _grad_stats(grads, step, record_every, k, dtype) -> tuple:
    """Norms and cosines of the step's own per-task gradients, every `record_every` steps."""
    if record_every is None:
        return ()

    def compute():
        norms, cos = normalized_gram(grads)
        return norms.astype(dtype), cos.astype(dtype)

    if record_every == 1:
        return compute()
    return jax.lax.cond(step % record_every == 0, compute, lambda: _nan_stats(k, dtype))


def fit(
    losses: Callable[[Any, Any], Mapping[str, Array]],
    model: PyTree,
    optimizer: optax.GradientTransformation,
    data: PyTree | Callable[[PRNGKeyArray], PyTree],
    *,
    steps: int,
    key: PRNGKeyArray | None = None,
    resample_every: int | None = None,
    log_every: int = 100,
    eval_fn: Callable[[Any], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    opt_state: optax.OptState | None = None,
    progress: bool = True,
    record_every: int | None = None,
) -> tuple[Any, optax.OptState, History]:
    """Train `model` on `losses` with `optimizer` for `steps` steps.

    With a pinnx chain (it must hold an aggregator), every step computes the per-task
    gradients (`pinnx.task_grads`) and passes them with `losses=` through the chain; when
    `losses` is a `pinnx.residuals.Losses` it also passes `ntk_traces=`, a zero-argument
    function computing the per-task NTK traces (`pinnx.ntk_traces`), which costs nothing
    unless a transform such as `pinnx.ntk_weights` calls it. With a
    plain optax optimizer, every step uses the gradient of the summed loss and passes
    `value=`, `grad=` and `value_fn=` as extra arguments (so `optax.lbfgs` works too).

    If a step produces a non-finite loss, gradient or update, training stops: that update is
    not applied, a warning names the step and the task, and `history.nonfinite` records it.
    The model and optimizer state returned are the last ones whose losses were all finite:
    the failing step's own state when only its gradient or update was non-finite, otherwise
    the state one step earlier.

    Args:
        losses: `losses(model, batch) -> dict[str, scalar]` (e.g. a `pinnx.residuals.Losses`).
        model: the initial model (any pytree; its inexact-array leaves are trained).
        optimizer: a pinnx chain or any optax transform.
        data: a fixed batch, or a function `sample(key) -> batch` (jittable: it is called
            inside the compiled loop when resampling), or a `ModelSampler`, called as
            `sample(key, model)` with the model being trained.
        steps: number of optimisation steps.
        key: PRNG key for sampling (default `jax.random.key(0)`).
        resample_every: draw a fresh batch every this many steps (needs a callable `data`).
        log_every: record per-task gradient norms and cosines every this many steps (and
            after the last step); also the progress bar's refresh interval.
        eval_fn: `eval_fn(model) -> dict of floats`, called every `eval_every` steps and at
            the end; results go to `history.evals`.
        eval_every: interval of `eval_fn` calls (default: `log_every`).
        opt_state: optimizer state to resume from (default: a fresh `optimizer.init`).
        progress: show a tqdm progress bar with the current losses.
        record_every: with a pinnx chain, record the per-task gradient norms and pairwise
            cosines inside the compiled step, from the per-task gradients that step computes
            anyway (no extra backward pass), at every step divisible by this interval;
            results go to `history.record_steps`, `step_grad_norms` and `step_cosines`
            (`pinnx.diagnostics.profile` uses it). They describe the gradients at the
            parameters *before* that step's update, on that step's batch.

    Returns:
        `(model, opt_state, history)`.

    Example:
        >>> model, state, history = pinnx.fit(losses, model, pinnx.pcgrad() | optax.adam(1e-3),
        ...                                   problem.sample, steps=5000, resample_every=100)
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if log_every < 1 or (eval_every is not None and eval_every < 1):
        raise ValueError("log_every and eval_every must be >= 1")
    if resample_every is not None and (resample_every < 1 or not callable(data)):
        raise ValueError(
            "resample_every needs a positive interval and a callable data(key) -> batch"
        )
    per_task = _uses_task_grads(optimizer)
    if record_every is not None:
        if not isinstance(record_every, int) or record_every < 1:
            raise ValueError(f"record_every must be a positive int, got {record_every!r}")
        if not per_task:
            raise ValueError(
                "record_every records the per-task gradients a pinnx chain computes; a plain "
                "optax optimizer only computes the summed gradient. Use e.g. "
                "`pinnx.sum() | optax.adam(1e-3)` (the same update as optax.adam)"
            )
    key = jax.random.key(0) if key is None else key
    sample_key = jax.random.fold_in(key, 1)
    start = time.perf_counter()

    params, static = eqx.partition(model, eqx.is_inexact_array)
    if not jax.tree.leaves(params):
        raise ValueError("the model has no trainable leaves (no floating-point arrays)")
    sampler = _sampler(data, static)
    batch = sampler(jax.random.fold_in(sample_key, 0), params) if sampler else data
    _check_batch(batch)

    def evaluate(p, b):
        return losses(eqx.combine(p, static), b)

    tasks = tuple(_check_losses(jax.eval_shape(evaluate, params, batch)))
    k = len(tasks)
    if opt_state is None:
        opt_state = optimizer.init(params, tasks=tasks) if isinstance(
            optimizer, Combiner) else optimizer.init(params)
    tx = optax.with_extra_args_support(optimizer)

    one_step = _make_step(losses, tx, static, tasks, per_task, sampler, resample_every,
                          sample_key, record_every)

    @functools.partial(jax.jit, static_argnums=2)
    def run_chunk(carry, first_step, length):
        return jax.lax.scan(one_step, carry, first_step + jnp.arange(length))

    @jax.jit
    def diagnostics(params, batch):
        _, grads = task_grads(losses, eqx.combine(params, static), batch)
        return normalized_gram(grads)

    eval_every = eval_every or log_every
    chunk = min(math.gcd(log_every, eval_every), max(steps, 1))
    loss_log: list[np.ndarray] = []
    log_steps: list[int] = []
    norms_log: list[np.ndarray] = []
    cos_log: list[np.ndarray] = []
    evals: list[tuple[int, dict[str, float]]] = []
    rec_norms: list[np.ndarray] = []
    rec_cos: list[np.ndarray] = []
    carry = _Carry(params, opt_state, params, opt_state, batch, jnp.array([-1, -1]))

    def record(step: int, carry: _Carry) -> None:
        p, b = carry.params, carry.batch
        if step % log_every == 0 or step == steps:
            n, c = diagnostics(p, b)
            log_steps.append(step)
            norms_log.append(np.asarray(n))
            cos_log.append(np.asarray(c))
        if eval_fn is not None and (step % eval_every == 0 or step == steps):
            metrics = eval_fn(eqx.combine(p, static))
            if not isinstance(metrics, Mapping):
                raise ValueError(f"eval_fn must return a dict of numbers, got "
                                 f"{type(metrics).__name__}")
            evals.append((step, {m: float(v) for m, v in metrics.items()}))

    bar = tqdm(total=steps, disable=not progress, desc="pinnx.fit", dynamic_ncols=True)
    record(0, carry)
    done = 0
    nonfinite = None
    while done < steps:
        chunk_len = min(chunk, steps - done)
        carry, lchunk = run_chunk(carry, jnp.asarray(done), chunk_len)
        if record_every is not None:
            lchunk, nchunk, cchunk = (np.asarray(a) for a in lchunk)
        lchunk = np.asarray(lchunk)
        stop_at = np.asarray(carry.stop)
        taken = int(stop_at[0]) - done if stop_at[0] >= 0 else chunk_len
        if record_every is not None:
            keep = (done + np.arange(taken)) % record_every == 0
            rec_norms.append(nchunk[:taken][keep])
            rec_cos.append(cchunk[:taken][keep])
        if stop_at[0] >= 0:
            loss_log.append(lchunk[:taken])
            done = int(stop_at[0])
            nonfinite = _report(stop_at, tasks, lchunk[taken], per_task, evaluate, carry)
            bar.update(taken)
            break
        loss_log.append(lchunk)
        done += chunk_len
        bar.update(chunk_len)
        bar.set_postfix_str(" ".join(f"{t}={v:.2e}" for t, v in zip(tasks, lchunk[-1],
                                                                     strict=True)))
        record(done, carry)
    bar.close()

    params, opt_state = carry.params, carry.opt_state
    all_losses = np.concatenate(loss_log) if loss_log else np.zeros((0, k))
    norms = np.array(norms_log).reshape(-1, k)
    cos = np.array(cos_log).reshape(-1, k, k)
    recorded = {}
    if record_every is not None:
        taken_steps = len(all_losses)
        rn = np.concatenate(rec_norms) if rec_norms else np.zeros((0, k))
        rc = np.concatenate(rec_cos) if rec_cos else np.zeros((0, k, k))
        recorded = dict(
            record_steps=np.arange(0, taken_steps, record_every, dtype=int)[: len(rn)],
            step_grad_norms={t: rn[:, i] for i, t in enumerate(tasks)},
            step_cosines={(a, b): rc[:, i, j] for i, a in enumerate(tasks)
                          for j, b in enumerate(tasks) if i < j},
        )
    history = History(
        tasks=tasks,
        losses={t: all_losses[:, i] for i, t in enumerate(tasks)},
        log_steps=np.array(log_steps, dtype=int),
        grad_norms={t: norms[:, i] for i, t in enumerate(tasks)},
        cosines={(a, b): cos[:, i, j] for i, a in enumerate(tasks)
                 for j, b in enumerate(tasks) if i < j},
        evals=evals,
        nonfinite=nonfinite,
        wall_time=time.perf_counter() - start,
        **recorded,
    )
    return eqx.combine(params, static), opt_state, history


def _report(stop_at, tasks, losses_at_stop, per_task, evaluate, carry) -> NonFinite:
    step, task = int(stop_at[0]), int(stop_at[1])
    if task >= 0:
        name = tasks[task]
        what = "loss" if not np.isfinite(losses_at_stop[task]) else "gradient"
        message = f"non-finite {what} of task {name!r} at step {step}"
    elif not per_task:
        name, message = _culprit(evaluate, carry, tasks, step)
    else:
        name = None
        message = f"non-finite combined update at step {step} (every task gradient finite)"
    warnings.warn(f"pinnx.fit stopped: {message}; returning the last finite state",
                  RuntimeWarning, stacklevel=3)
    return NonFinite(step=step, task=name, message=message)


def _culprit(evaluate, carry, tasks, step) -> tuple[str | None, str]:
    """For the summed-loss path: find which task's gradient is non-finite."""
    params, batch = carry.params, carry.batch
    _, grads = jax.jit(lambda p, b: task_grads(lambda q, c: evaluate(q, c), p, b))(params, batch)
    ok = np.asarray(_row_finite(grads, len(tasks)))
    if not ok.all():
        name = tasks[int(np.argmin(ok))]
        return name, f"non-finite gradient of task {name!r} at step {step}"
    return None, f"non-finite update at step {step} (every task gradient finite)"
