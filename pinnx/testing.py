"""Test your own combiner the way pinnx tests its own: hypothesis strategies and a suite.

`check_combiner(make)` runs every check of the shared suite on a factory
`make(k) -> transform` that ends at an aggregator (for a task transform, compose it with one,
e.g. `lambda k: my_weighting() | pinnx.mean()`): the result under `jax.jit` equals the eager
one, it works inside `optax.chain`, float32 and float64 are kept and the state's structure
never changes, later steps do not recompile, training on two quadratics settles on their
Pareto set (skip with `pareto=False`), and finite degenerate input (zero, parallel,
opposite, 1e-20- and 1e20-scaled rows) gives finite output. Each check is also a function
of its own, so a test suite can report them separately. pinnx's own suite
(`tests/test_combiner_suite.py`) runs these functions on every registered combiner.

The strategy `task_grads` draws per-task gradients as pytrees of K-row leaves with such
degenerate rows, for property tests of your own.

Needs hypothesis (`pip install 'pinnx[test]'`).

Examples:
    >>> import jax.numpy as jnp, pinnx
    >>> def half_sum(norms, cos, state):
    ...     return 0.5 * norms, state
    >>> make = lambda k: pinnx.combine.gram_aggregator(half_sum)
    >>> pinnx.testing.check_combiner(make, examples=5)
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .combine import Combiner, init_state

__all__ = [
    "LAYOUTS",
    "KINDS",
    "task_grads",
    "rows",
    "split",
    "flatten",
    "params_like",
    "flush",
    "check_combiner",
    "check_jit",
    "check_optax_chain",
    "check_dtypes_and_state",
    "check_no_recompilation",
    "check_pareto",
    "check_finite",
]

# leaf shapes of the parameter pytrees (kept few, so jitted code compiles few times)
LAYOUTS = (
    {"w": (3,)},
    {"w": (2, 2), "b": (2,)},
    {"a": (4,), "b": (), "c": (1, 3)},
)
KINDS = ("random", "random", "zero", "parallel", "opposite", "tiny", "huge")

Make = Callable[[int], optax.GradientTransformation]
# extra keyword arguments of `update`, from the gradients (e.g. stand-in `losses=`)
ExtraArgs = Callable[[Any], dict] | None


def split(flat: np.ndarray, layout: dict) -> dict:
    """(K, P) rows -> dict of (K, *shape) leaves in `layout`'s (sorted) key order."""
    out, i = {}, 0
    for name in sorted(layout):
        size = int(np.prod(layout[name], dtype=int))
        out[name] = flat[:, i : i + size].reshape((flat.shape[0],) + layout[name])
        i += size
    return out


def flatten(tree: dict) -> np.ndarray:
    """dict of (K, ...) leaves -> (K, P) float64 rows (inverse of `split`)."""
    leaves = [np.asarray(tree[name], np.float64) for name in sorted(tree)]
    k = leaves[0].shape[0]
    return np.concatenate([leaf.reshape(k, -1) for leaf in leaves], axis=1)


@st.composite
def rows(draw, k: int, p: int, degenerate: bool = True) -> np.ndarray:
    """(k, p) float64 task rows; with `degenerate`, some replaced by a zero row, a multiple
    (0.5, 1 or 3) of an earlier row or its opposite, or rescaled by 1e-20 or 1e20."""
    base = draw(hnp.arrays(np.float64, (k, p), elements=st.floats(-10, 10, width=32)))
    out = base.copy()
    if not degenerate:
        return out
    for i in range(k):
        kind = draw(st.sampled_from(KINDS))
        if kind == "zero":
            out[i] = 0
        elif kind in ("parallel", "opposite") and i > 0:
            j = draw(st.integers(0, i - 1))
            c = draw(st.sampled_from([0.5, 1.0, 3.0]))
            out[i] = (c if kind == "parallel" else -c) * out[j]
        elif kind == "tiny":
            out[i] = out[i] * 1e-20
        elif kind == "huge":
            out[i] = out[i] * 1e20
    return out


@st.composite
def task_grads(draw, k: int | None = None, max_k: int = 4, dtype: Any = None,
               degenerate: bool = True, layouts: Sequence = LAYOUTS):
    """Per-task gradients: `(grads, layout, dtype)`, a dict of K-row leaves.

    Args:
        k: the number of task rows (default: drawn from 1 to `max_k`).
        max_k: the largest K drawn (up to 8 is cheap).
        dtype: `jnp.float32` or `jnp.float64` (default: drawn; float32 only, unless
            `jax_enable_x64` is on).
        degenerate: include zero, parallel, opposite and extremely scaled rows.
        layouts: the parameter layouts to draw from (dicts of leaf shapes).
    """
    k = draw(st.integers(1, max_k)) if k is None else k
    layout = draw(st.sampled_from(layouts))
    p = sum(int(np.prod(s, dtype=int)) for s in layout.values())
    flat = draw(rows(k, p, degenerate))
    if dtype is None:
        dtypes = [jnp.float32, jnp.float64] if jax.config.jax_enable_x64 else [jnp.float32]
        dtype = draw(st.sampled_from(dtypes))
    grads = {n: jnp.asarray(v, dtype) for n, v in split(flat, layout).items()}
    return grads, layout, dtype


def params_like(layout: dict, dtype) -> dict:
    """Zero parameters with the leaf shapes of `layout`."""
    return {n: jnp.zeros(s, dtype) for n, s in layout.items()}


def flush(flat: np.ndarray, dtype) -> np.ndarray:
    """What the hardware sees of `flat` in `dtype`: entries below the smallest normal number
    are zero (XLA on CPU flushes subnormals). Compute references from this."""
    tiny = np.finfo(dtype).tiny
    return np.where(np.abs(flat) < tiny, 0.0, flat)


_LAYOUT = {"w": (2, 2), "b": (2,)}


def _grads(k: int, dtype, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {n: jnp.asarray(rng.normal(size=(k,) + s), dtype) for n, s in _LAYOUT.items()}


def _extra(extra_args, grads) -> dict:
    return {} if extra_args is None else dict(extra_args(grads))


def _signature(tree) -> tuple:
    return jax.tree.structure(tree), [(jnp.shape(x), jnp.result_type(x))
                                      for x in jax.tree.leaves(tree)]


def check_jit(make: Make, *, k: int = 3, extra_args: ExtraArgs = None) -> None:
    """The update under `jax.jit` equals the eager one and is params-shaped."""
    opt = make(k)
    params = params_like(_LAYOUT, jnp.float32)
    grads = _grads(k, jnp.float32)
    state = init_state(opt, params, tasks=k)
    extra = _extra(extra_args, grads)
    eager, _ = opt.update(grads, state, params, **extra)
    jitted, _ = jax.jit(lambda g, s, p: opt.update(g, s, p, **extra))(grads, state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 eager, jitted)
    if jax.tree.structure(eager) != jax.tree.structure(params):
        raise AssertionError("the update is not shaped like the parameters: does the "
                             "transform end at an aggregator?")


def check_optax_chain(make: Make, *, k: int = 3, extra_args: ExtraArgs = None) -> None:
    """`optax.chain(opt, sgd)` gives the update of `opt | sgd` (a transform with one state
    entry per task is given K at init, as a user of optax.chain does)."""
    opt = make(k)
    params = params_like(_LAYOUT, jnp.float32)
    grads = _grads(k, jnp.float32)
    extra = _extra(extra_args, grads)
    ours = opt | optax.sgd(0.1)
    u1, _ = ours.update(grads, ours.init(params, tasks=k), params, **extra)
    bound = optax.GradientTransformationExtraArgs(
        lambda p: init_state(opt, p, tasks=k), opt.update)
    theirs = optax.chain(bound, optax.sgd(0.1))
    u2, _ = theirs.update(grads, theirs.init(params), params, **extra)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), u1, u2)


def check_dtypes_and_state(make: Make, *, k: int = 3, extra_args: ExtraArgs = None,
                           dtypes: Sequence[Any] = (jnp.float32, jnp.float64)) -> None:
    """Updates keep the gradients' dtype, and the state keeps its structure, shapes and
    dtypes over steps (float64 needs `jax_enable_x64`; skipped without it)."""
    for dtype in dtypes:
        if jnp.dtype(dtype) == jnp.float64 and not jax.config.jax_enable_x64:
            continue
        opt = make(k)
        params = params_like(_LAYOUT, dtype)
        state = init_state(opt, params, tasks=k)
        before = _signature(state)
        step = jax.jit(lambda g, s, p, opt=opt: opt.update(g, s, p, **_extra(extra_args, g)))
        for seed in range(3):
            updates, state = step(_grads(k, dtype, seed), state, params)
            for leaf in jax.tree.leaves(updates):
                if leaf.dtype != dtype:
                    raise AssertionError(f"{dtype.__name__} gradients gave a {leaf.dtype} "
                                         "update")
            if _signature(state) != before:
                raise AssertionError(f"the state changed structure or dtype: {before} -> "
                                     f"{_signature(state)}")


def check_no_recompilation(make: Make, *, k: int = 3, extra_args: ExtraArgs = None) -> None:
    """A jitted update traces once over several steps (the state is a fixed pytree)."""
    opt = make(k)
    traces = []

    @jax.jit
    def step(grads, state, params):
        traces.append(1)
        return opt.update(grads, state, params, **_extra(extra_args, grads))

    params = params_like(_LAYOUT, jnp.float32)
    state = init_state(opt, params, tasks=k)
    for seed in range(4):
        _, state = step(_grads(k, jnp.float32, seed), state, params)
    if len(traces) != 1:
        raise AssertionError(f"the update was traced {len(traces)} times over 4 steps")


def check_pareto(make: Make, *, coordinatewise: bool = False, steps: int = 1500) -> None:
    """On two quadratics with optima a and b, `make(2) | adam` settles on their Pareto set,
    the segment [a, b] (where no direction decreases both losses); with `coordinatewise`
    (methods that rescale each coordinate per task, like per-task Adam), inside the box
    spanned by a and b. The losses are passed as `losses=` (named t0, t1)."""
    a = jnp.array([1.0, -2.0, 0.5])
    b = jnp.array([-1.0, 1.0, 2.0])

    def losses(x):
        return {"t0": jnp.sum((x["w"] - a) ** 2), "t1": 3.0 * jnp.sum((x["w"] - b) ** 2)}

    opt = make(2) | optax.adam(optax.exponential_decay(0.05, 200, 0.5))
    x = {"w": jnp.zeros(3)}
    state = opt.init(x, tasks=2)

    @jax.jit
    def step(x, state):
        vals = losses(x)
        grads = jax.tree.map(lambda *r: jnp.stack(r),
                             *[jax.grad(lambda y, t=t: losses(y)[t])(x) for t in sorted(vals)])
        updates, state = opt.update(grads, state, x, losses=vals)
        return optax.apply_updates(x, updates), state

    path = []
    for _ in range(steps):
        x, state = step(x, state)
        path.append(np.asarray(x["w"]))
    w = path[-1]
    if np.linalg.norm(path[-1] - path[-100]) >= 1e-3:
        raise AssertionError(f"did not settle: moved {np.linalg.norm(path[-1] - path[-100])} "
                             "over the last 100 steps")
    tol = 2e-2 * np.linalg.norm(b - a)
    if coordinatewise:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        if not np.all((w > lo - tol) & (w < hi + tol)):
            raise AssertionError(f"settled at {w}, outside the box of the optima")
        return
    s = np.clip(np.dot(w - a, b - a) / np.dot(b - a, b - a), 0, 1)
    dist = np.linalg.norm(w - (a + s * (b - a)))
    if dist >= tol:
        raise AssertionError(f"settled at {w}, {dist:.3g} away from the Pareto set")


def check_finite(make: Make, *, examples: int = 20, max_k: int = 4,
                 extra_args: ExtraArgs = None, layouts: Sequence = LAYOUTS[2:]) -> None:
    """Finite degenerate rows (zero, parallel, opposite, 1e-20- and 1e20-scaled, drawn by
    `task_grads`) give finite updates of the same dtype, over two steps."""
    compiled: dict[int, Any] = {}

    @settings(max_examples=examples, deadline=None, database=None)
    @given(data=st.data())
    def run(data):
        grads, layout, dtype = data.draw(task_grads(max_k=max_k, layouts=layouts))
        k = jax.tree.leaves(grads)[0].shape[0]
        if k not in compiled:
            opt = make(k)
            compiled[k] = opt, jax.jit(
                lambda g, s, p, opt=opt: opt.update(g, s, p, **_extra(extra_args, g)))
        opt, update = compiled[k]
        params = params_like(layout, dtype)
        state = init_state(opt, params, tasks=k)
        for _ in range(2):
            updates, state = update(grads, state, params)
            for leaf in jax.tree.leaves(updates):
                assert leaf.dtype == dtype, (leaf.dtype, dtype)
                assert np.all(np.isfinite(np.asarray(leaf))), (updates, grads)

    run()


def check_combiner(make: Make, *, pareto: bool = True, coordinatewise: bool = False,
                   examples: int = 20, extra_args: ExtraArgs = None) -> None:
    """Every check of the shared suite on `make(k) -> transform ending at an aggregator`.

    Args:
        make: builds the transform for K tasks.
        pareto: run `check_pareto` (False for methods whose fixed points are not
            Pareto-stationary by design, e.g. random or robust aggregation).
        coordinatewise: `check_pareto` accepts the box of the optima instead of the segment.
        examples: hypothesis examples of `check_finite`.
        extra_args: `extra_args(grads) -> dict` of extra keyword arguments for `update`
            (e.g. stand-in `losses=` for a loss-based weighting).

    Raises:
        AssertionError: naming the first check that failed.
    """
    if not isinstance(make(1), optax.GradientTransformation):
        raise ValueError("make(k) must return an optax transform (a pinnx combiner or chain)")
    if not isinstance(make(1), Combiner):
        raise ValueError("make(k) must return a pinnx transform: mark your own with "
                         "pinnx.as_aggregator(...) or build it with gram_aggregator")
    check_jit(make, k=1, extra_args=extra_args)
    check_jit(make, k=3, extra_args=extra_args)
    check_optax_chain(make, extra_args=extra_args)
    check_dtypes_and_state(make, extra_args=extra_args)
    check_no_recompilation(make, extra_args=extra_args)
    if pareto:
        check_pareto(make, coordinatewise=coordinatewise)
    check_finite(make, examples=examples, extra_args=extra_args)
