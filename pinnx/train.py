"""`fit`: the jit-compiled training loop shared by every method, and the step it scans.

Steps run inside `jax.lax.scan` over chunks of steps; between chunks the host updates the
progress bar, records diagnostics and calls the evaluation callback. The same loop runs a
pinnx chain (per-task gradients -> combiner) and a plain optax optimizer (gradient of the
summed loss, the vanilla baseline), so methods are compared in one harness.

`make_step` builds that step (a `TrainStep` acting on a `StepCarry`) for whoever times it or
drives it in a loop of their own (`pinnx.diagnostics.overhead`, `benchmarks/step_time.py`).
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

from .combine import Aggregator, Chain, Combiner, init_state
from .sampling import ModelSampler
from .tasks import _check_losses, default_extra_args, normalized_gram, task_grads

__all__ = ["fit", "make_step", "TrainStep", "StepCarry", "History", "NonFinite"]


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


class StepCarry(NamedTuple):
    """What `fit`'s step carries from one step to the next (a pytree of arrays).

    Attributes:
        params: the model's trainable leaves, `eqx.partition(model, eqx.is_inexact_array)[0]`.
        opt_state: the optimizer state.
        prev_params: the parameters before the last applied update (a step whose own losses
            are not finite goes back to them).
        prev_state: the optimizer state that goes with `prev_params`.
        batch: the batch of the last step (the next step resamples it when due).
        stop: (2,) int, `[step, task]` of the first non-finite step (task -1 when no single
            task is to blame), `[-1, -1]` while training runs; once set, steps change nothing.
    """

    params: PyTree
    opt_state: Any
    prev_params: PyTree
    prev_state: Any
    batch: PyTree
    stop: Array


@dataclasses.dataclass(frozen=True, eq=False)
class TrainStep:
    """`fit`'s training step, `step(carry, step_index) -> (carry, out)`; see `make_step`.

    Pure and jittable: `fit` scans it (`jax.lax.scan(step, carry, step_indices)`), and a
    loop of one's own may call `jax.jit(step)` once per step. `step_index` is the global step
    number (an integer scalar, counted from 0): it decides when the batch is resampled
    (every `resample_every` steps, from step `resample_every` on) and when gradients are
    recorded (every `record_every` steps).

    The step computes the losses and gradients at `carry.params` on the (resampled) batch,
    calls the optimizer's `update` and applies it. A non-finite loss, gradient or update
    sets `carry.stop` and leaves the model at its last finite state; later steps then
    change nothing and output NaN losses.

    `out` is the (K,) vector of task losses (before the step's update, in `tasks` order);
    with `record_every` it is `(losses (K,), norms (K,), cosines (K, K))`, the norms and
    pairwise cosines of the per-task gradients at steps divisible by `record_every` and NaN
    at the others.

    Attributes:
        losses: the loss function, `losses(model, batch) -> dict[str, scalar]`.
        optimizer: the optimizer (with optax's extra-argument support).
        static: the model's non-trainable part, `eqx.partition(model, ...)[1]`.
        tasks: the task names, in row order.
        per_task: True for a pinnx chain (per-task gradients, passed with `losses=`), False
            for a plain optax optimizer (gradient of the summed loss, passed with `value=`,
            `grad=` and `value_fn=`).
        sampler: `sampler(key, params) -> batch`, or None for a fixed batch.
        resample_every: the resampling interval, or None.
        sample_key: the key of step s's sample is `jax.random.fold_in(sample_key, s)`.
        record_every: the gradient-recording interval, or None.
        extra_args: `extra_args(model, batch) -> dict`, more keyword arguments of `update`.
    """

    losses: Callable[[Any, Any], Mapping[str, Array]]
    optimizer: optax.GradientTransformationExtraArgs
    static: PyTree
    tasks: tuple[str, ...]
    per_task: bool
    sampler: Callable[[PRNGKeyArray, PyTree], PyTree] | None
    resample_every: int | None
    sample_key: PRNGKeyArray
    record_every: int | None
    extra_args: Callable[[Any, Any], Mapping[str, Any]]

    def model(self, carry: StepCarry) -> Any:
        """The model at `carry`: its trainable leaves joined with the static part."""
        return eqx.combine(carry.params, self.static)

    def evaluate(self, params: PyTree, batch: PyTree) -> Mapping[str, Array]:
        """The loss dictionary at the trainable leaves `params`."""
        return self.losses(eqx.combine(params, self.static), batch)

    def __call__(self, carry: StepCarry, step: Any) -> tuple[StepCarry, Any]:
        step = jnp.asarray(step)
        shapes = jax.eval_shape(self.evaluate, carry.params, carry.batch)
        dtype = jnp.result_type(*[shapes[t].dtype for t in self.tasks])
        batch = self._resample(carry, step)
        running = carry.stop[0] < 0
        new_params, new_state, lvec, ok, task_ok, stats = jax.lax.cond(
            running, functools.partial(self._update, batch, step, dtype),
            functools.partial(self._skip, dtype), carry.params, carry.opt_state,
        )
        carry = _advance(carry, step, batch, (new_params, new_state), lvec, running & ~ok,
                         ok, task_ok)
        return carry, ((lvec, *stats) if self.record_every is not None else lvec)

    def _resample(self, carry: StepCarry, step: Array) -> PyTree:
        if self.sampler is None or self.resample_every is None:
            return carry.batch
        return jax.lax.cond(
            (step % self.resample_every == 0) & (step > 0),
            lambda: self.sampler(jax.random.fold_in(self.sample_key, step), carry.params),
            lambda: carry.batch,
        )

    def _update(self, batch, step, dtype, params, opt_state) -> tuple:
        """Losses, gradients and the optimizer's update at `params`, with finiteness flags."""
        k = len(self.tasks)
        model = eqx.combine(params, self.static)
        if self.per_task:
            loss_dict, grads = task_grads(self.losses, model, batch)
            extra = self._extra(model, batch, reserved={"losses"})
            updates, new_state = self.optimizer.update(grads, opt_state, params,
                                                       losses=loss_dict, **extra)
            rows_ok = _row_finite(grads, k)
            stats = _grad_stats(grads, step, self.record_every, k, dtype)
        else:
            def total(p):
                d = self.evaluate(p, batch)
                return sum(d[t] for t in self.tasks), d

            (value, loss_dict), g = jax.value_and_grad(total, has_aux=True)(params)
            extra = self._extra(model, batch, reserved={"value", "grad", "value_fn"})
            updates, new_state = self.optimizer.update(
                g, opt_state, params, value=value, grad=g,
                value_fn=lambda p: total(p)[0], **extra,
            )
            rows_ok = jnp.ones((k,), bool)
            stats = ()
        lvec = jnp.stack([loss_dict[t] for t in self.tasks]).astype(dtype)
        task_ok = jnp.isfinite(lvec) & rows_ok
        ok = jnp.all(task_ok) & _all_finite(updates)
        new_params = eqx.apply_updates(params, updates)
        return new_params, new_state, lvec, ok, task_ok, stats

    def _skip(self, dtype, params, opt_state) -> tuple:
        """After a stop: the state unchanged, NaN losses."""
        k = len(self.tasks)
        nan = jnp.full((k,), jnp.nan, dtype)
        stats = _nan_stats(k, dtype) if self.record_every is not None else ()
        return params, opt_state, nan, jnp.array(False), jnp.ones((k,), bool), stats

    def _extra(self, model: Any, batch: PyTree, reserved: set[str]) -> dict[str, Any]:
        extra = self.extra_args(model, batch)
        if not isinstance(extra, Mapping):
            raise ValueError("extra_args(model, batch) must return a dict of keyword "
                             f"arguments, got {type(extra).__name__}")
        clash = sorted(set(extra) & reserved)
        if clash:
            raise ValueError(f"extra_args returned {clash}, which the step passes to the "
                             f"optimizer itself (it passes {sorted(reserved)}); rename them")
        return dict(extra)


def _advance(carry: StepCarry, step: Array, batch: PyTree, new: tuple, lvec: Array,
             first_bad: Array, ok: Array, task_ok: Array) -> StepCarry:
    """The next carry: the updated state if the step was finite, else the last finite one."""
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
        lambda: (new, now),
        lambda: jax.lax.cond(lossy, lambda: ((carry.prev_params, carry.prev_state), now),
                             lambda: (now, now)),
    )
    return StepCarry(cur[0], cur[1], prev[0], prev[1], batch, stop)


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


def make_step(
    losses: Callable[[Any, Any], Mapping[str, Array]],
    model: PyTree,
    optimizer: optax.GradientTransformation,
    data: PyTree | Callable[[PRNGKeyArray], PyTree],
    *,
    key: PRNGKeyArray | None = None,
    resample_every: int | None = None,
    opt_state: optax.OptState | None = None,
    record_every: int | None = None,
    extra_args: Callable[[Any, Any], Mapping[str, Any]] | None = None,
) -> tuple[TrainStep, StepCarry]:
    """The step `fit` scans and its first carry, to time it or drive it in one's own loop.

    `step(carry, i) -> (carry, out)` is step `i` of `fit` with the same arguments: driving
    it for i = 0, 1, ... gives `fit`'s per-step losses, in a `jax.lax.scan` or one
    `jax.jit(step)` call a step (see `TrainStep` for `out`, `StepCarry` for the carry).
    The arguments mean what they mean for `fit`; the checks are `fit`'s too (the batch is
    finite, the loss dictionary holds named scalars, a pinnx chain holds an aggregator).
    The first batch is drawn here when `data` is a sampler.

    Args:
        losses: `losses(model, batch) -> dict[str, scalar]`.
        model: the initial model (its inexact-array leaves are trained).
        optimizer: a pinnx chain or any optax transform.
        data: a fixed batch, a jittable `sample(key) -> batch`, or a `ModelSampler`.
        key: PRNG key for sampling (default `jax.random.key(0)`).
        resample_every: draw a fresh batch every this many steps (needs a callable `data`).
        opt_state: optimizer state to start from (default: a fresh one).
        record_every: with a pinnx chain, also output the per-task gradient norms and
            cosines at every step divisible by this interval.
        extra_args: `extra_args(model, batch) -> dict` of extra keyword arguments for the
            optimizer's `update` (default: `pinnx.tasks.default_extra_args(losses)`).

    Returns:
        `(step, carry)`: a `TrainStep` and the `StepCarry` before step 0.

    Examples:
        >>> import jax, optax, pinnx
        >>> problem = pinnx.problems.helmholtz(n_pde=16, n_bc=16, n_test=11)
        >>> model = pinnx.nn.MLP(2, "scalar", width=8, depth=2, key=jax.random.key(0))
        >>> opt = pinnx.pcgrad() | optax.adam(1e-3)
        >>> step, carry = pinnx.make_step(problem.losses, model, opt, problem.sample,
        ...                               resample_every=5)
        >>> run = jax.jit(step)
        >>> for i in range(10):
        ...     carry, step_losses = run(carry, i)
        >>> step.tasks, step_losses.shape   # the last step's losses, in task order
        (('bc', 'pde'), (2,))
        >>> trained = step.model(carry)
    """
    per_task = _check_options(optimizer, data, resample_every, record_every, extra_args)
    key = jax.random.key(0) if key is None else key
    sample_key = jax.random.fold_in(key, 1)

    params, static = eqx.partition(model, eqx.is_inexact_array)
    if not jax.tree.leaves(params):
        raise ValueError("the model has no trainable leaves (no floating-point arrays)")
    sampler = _sampler(data, static)
    batch = sampler(jax.random.fold_in(sample_key, 0), params) if sampler else data
    _check_batch(batch)
    tasks = tuple(_check_losses(jax.eval_shape(
        lambda p, b: losses(eqx.combine(p, static), b), params, batch)))
    if opt_state is None:
        opt_state = init_state(optimizer, params, tasks=tasks)
    step = TrainStep(
        losses=losses,
        optimizer=optax.with_extra_args_support(optimizer),
        static=static,
        tasks=tasks,
        per_task=per_task,
        sampler=sampler,
        resample_every=resample_every,
        sample_key=sample_key,
        record_every=record_every,
        extra_args=default_extra_args(losses) if extra_args is None else extra_args,
    )
    return step, StepCarry(params, opt_state, params, opt_state, batch, jnp.array([-1, -1]))


def _check_options(optimizer, data, resample_every, record_every, extra_args) -> bool:
    """`make_step`'s argument checks; whether the optimizer takes per-task gradients."""
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
    if extra_args is not None and not callable(extra_args):
        raise ValueError(f"extra_args must be a function (model, batch) -> dict, got "
                         f"{extra_args!r}")
    return per_task


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
    extra_args: Callable[[Any, Any], Mapping[str, Any]] | None = None,
) -> tuple[Any, optax.OptState, History]:
    """Train `model` on `losses` with `optimizer` for `steps` steps.

    With a pinnx chain (it must hold an aggregator), every step computes the per-task
    gradients (`pinnx.task_grads`) and passes them with `losses=` through the chain. With a
    plain optax optimizer, every step uses the gradient of the summed loss and passes
    `value=`, `grad=` and `value_fn=` as extra arguments (so `optax.lbfgs` works too).
    Either way the step also passes the keyword arguments that `extra_args(model, batch)`
    returns for the step's model and batch. By default (`pinnx.tasks.default_extra_args`)
    that is, when `losses` is a `pinnx.residuals.Losses`, `ntk_traces=`, a zero-argument
    function computing the per-task NTK traces (`pinnx.ntk_traces`), which costs nothing
    unless a transform such as `pinnx.ntk_weights` calls it.

    If a step produces a non-finite loss, gradient or update, training stops: that update is
    not applied, a warning names the step and the task, and `history.nonfinite` records it.
    The model and optimizer state returned are the last ones whose losses were all finite:
    the failing step's own state when only its gradient or update was non-finite, otherwise
    the state one step earlier.

    The compiled step is `pinnx.make_step(...)`'s: `fit` prepares it, scans it in chunks
    of steps (recording diagnostics and evaluations between chunks) and builds the
    `History`.

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
        extra_args: `extra_args(model, batch) -> dict` of extra keyword arguments for the
            optimizer's `update`, called inside the compiled step with the model before the
            step's update and the step's batch (default:
            `pinnx.tasks.default_extra_args(losses)`). A hook of one's own replaces the
            default; merge it in to keep `ntk_traces=`.

    Returns:
        `(model, opt_state, history)`.

    Examples:
        A short run (a real one takes thousands of steps):

        >>> import jax, optax, pinnx
        >>> problem = pinnx.problems.helmholtz(n_pde=16, n_bc=16, n_test=11)
        >>> model = pinnx.nn.MLP(2, "scalar", width=8, depth=2, key=jax.random.key(0))
        >>> opt = pinnx.pcgrad() | optax.adam(1e-3)
        >>> model, state, history = pinnx.fit(problem.losses, model, opt, problem.sample,
        ...                                   steps=20, resample_every=5, progress=False)
        >>> history.tasks, history.losses["pde"].shape   # every step's losses
        (('bc', 'pde'), (20,))
    """
    start = time.perf_counter()
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if log_every < 1 or (eval_every is not None and eval_every < 1):
        raise ValueError("log_every and eval_every must be >= 1")
    step, carry = make_step(losses, model, optimizer, data, key=key,
                            resample_every=resample_every, opt_state=opt_state,
                            record_every=record_every, extra_args=extra_args)
    log = _Recorder(step, steps, log_every, eval_fn, eval_every or log_every)
    carry, nonfinite = _run_chunks(step, carry, steps, log, progress)
    if nonfinite is not None:
        warnings.warn(f"pinnx.fit stopped: {nonfinite.message}; returning the last finite "
                      "state", RuntimeWarning, stacklevel=2)
    history = log.history(nonfinite, time.perf_counter() - start)
    return step.model(carry), carry.opt_state, history


class _Recorder:
    """`fit`'s host side: every step's losses, diagnostics at log steps, evaluations."""

    def __init__(self, step: TrainStep, steps: int, log_every: int,
                 eval_fn: Callable[[Any], Mapping[str, float]] | None, eval_every: int):
        self.step, self.steps = step, steps
        self.log_every, self.eval_fn, self.eval_every = log_every, eval_fn, eval_every
        self.chunk = min(math.gcd(log_every, eval_every), max(steps, 1))
        self.losses: list[np.ndarray] = []
        self.log_steps: list[int] = []
        self.norms: list[np.ndarray] = []
        self.cos: list[np.ndarray] = []
        self.evals: list[tuple[int, dict[str, float]]] = []
        self.rec_norms: list[np.ndarray] = []
        self.rec_cos: list[np.ndarray] = []

        @jax.jit
        def diagnostics(params, batch):
            _, grads = task_grads(step.losses, eqx.combine(params, step.static), batch)
            return normalized_gram(grads)

        self.diagnostics = diagnostics

    def checkpoint(self, done: int, carry: StepCarry) -> None:
        """After `done` steps: gradient diagnostics and `eval_fn`, where due."""
        p, b = carry.params, carry.batch
        if done % self.log_every == 0 or done == self.steps:
            n, c = self.diagnostics(p, b)
            self.log_steps.append(done)
            self.norms.append(np.asarray(n))
            self.cos.append(np.asarray(c))
        if self.eval_fn is not None and (done % self.eval_every == 0 or done == self.steps):
            metrics = self.eval_fn(eqx.combine(p, self.step.static))
            if not isinstance(metrics, Mapping):
                raise ValueError(f"eval_fn must return a dict of numbers, got "
                                 f"{type(metrics).__name__}")
            self.evals.append((done, {m: float(v) for m, v in metrics.items()}))

    def outputs(self, done: int, taken: int, lchunk: np.ndarray, stats: tuple) -> None:
        """The first `taken` of a chunk's step outputs, the chunk starting at step `done`."""
        self.losses.append(lchunk[:taken])
        if self.step.record_every is not None:
            nchunk, cchunk = stats
            keep = (done + np.arange(taken)) % self.step.record_every == 0
            self.rec_norms.append(nchunk[:taken][keep])
            self.rec_cos.append(cchunk[:taken][keep])

    def history(self, nonfinite: NonFinite | None, wall_time: float) -> History:
        tasks = self.step.tasks
        k = len(tasks)
        all_losses = np.concatenate(self.losses) if self.losses else np.zeros((0, k))
        norms = np.array(self.norms).reshape(-1, k)
        cos = np.array(self.cos).reshape(-1, k, k)
        recorded = {}
        if self.step.record_every is not None:
            rn = np.concatenate(self.rec_norms) if self.rec_norms else np.zeros((0, k))
            rc = np.concatenate(self.rec_cos) if self.rec_cos else np.zeros((0, k, k))
            recorded = dict(
                record_steps=np.arange(0, len(all_losses), self.step.record_every,
                                       dtype=int)[: len(rn)],
                step_grad_norms={t: rn[:, i] for i, t in enumerate(tasks)},
                step_cosines=_pairs(rc, tasks),
            )
        return History(
            tasks=tasks,
            losses={t: all_losses[:, i] for i, t in enumerate(tasks)},
            log_steps=np.array(self.log_steps, dtype=int),
            grad_norms={t: norms[:, i] for i, t in enumerate(tasks)},
            cosines=_pairs(cos, tasks),
            evals=self.evals,
            nonfinite=nonfinite,
            wall_time=wall_time,
            **recorded,
        )


def _pairs(cos: np.ndarray, tasks: tuple[str, ...]) -> dict[tuple[str, str], np.ndarray]:
    """(n, K, K) cosines as {(task_a, task_b): (n,)} for a before b in row order."""
    return {(a, b): cos[:, i, j] for i, a in enumerate(tasks)
            for j, b in enumerate(tasks) if i < j}


def _run_chunks(step: TrainStep, carry: StepCarry, steps: int, log: _Recorder,
                progress: bool) -> tuple[StepCarry, NonFinite | None]:
    """Scan `step` over `steps` steps, `log.chunk` steps per compiled call, recording in
    between; stop after the chunk holding the first non-finite step."""

    @functools.partial(jax.jit, static_argnums=2)
    def run_chunk(carry, first_step, length):
        return jax.lax.scan(step, carry, first_step + jnp.arange(length))

    bar = tqdm(total=steps, disable=not progress, desc="pinnx.fit", dynamic_ncols=True)
    log.checkpoint(0, carry)
    done = 0
    nonfinite = None
    while done < steps:
        length = min(log.chunk, steps - done)
        carry, out = run_chunk(carry, jnp.asarray(done), length)
        out = jax.tree.map(np.asarray, out)
        lchunk, stats = (out[0], out[1:]) if step.record_every is not None else (out, ())
        stop_at = np.asarray(carry.stop)
        taken = int(stop_at[0]) - done if stop_at[0] >= 0 else length
        log.outputs(done, taken, lchunk, stats)
        bar.update(taken)
        if stop_at[0] >= 0:
            nonfinite = _nonfinite(step, carry, stop_at, lchunk[taken])
            break
        done += length
        bar.set_postfix_str(" ".join(f"{t}={v:.2e}" for t, v in zip(step.tasks, lchunk[-1],
                                                                     strict=True)))
        log.checkpoint(done, carry)
    bar.close()
    return carry, nonfinite


def _nonfinite(step: TrainStep, carry: StepCarry, stop_at: np.ndarray,
               losses_at_stop: np.ndarray) -> NonFinite:
    """What stopped training: the step, the task to blame (if one) and a message."""
    at, task = int(stop_at[0]), int(stop_at[1])
    if task >= 0:
        name = step.tasks[task]
        what = "loss" if not np.isfinite(losses_at_stop[task]) else "gradient"
        message = f"non-finite {what} of task {name!r} at step {at}"
    elif not step.per_task:
        name, message = _culprit(step.evaluate, carry, step.tasks, at)
    else:
        name = None
        message = f"non-finite combined update at step {at} (every task gradient finite)"
    return NonFinite(step=at, task=name, message=message)


def _culprit(evaluate, carry, tasks, step) -> tuple[str | None, str]:
    """For the summed-loss path: find which task's gradient is non-finite."""
    params, batch = carry.params, carry.batch
    _, grads = jax.jit(lambda p, b: task_grads(lambda q, c: evaluate(q, c), p, b))(params, batch)
    ok = np.asarray(_row_finite(grads, len(tasks)))
    if not ok.all():
        name = tasks[int(np.argmin(ok))]
        return name, f"non-finite gradient of task {name!r} at step {step}"
    return None, f"non-finite update at step {step} (every task gradient finite)"
