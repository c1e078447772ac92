"""Hypothesis strategies for per-task gradients, shared by the combiner tests.

Rows are drawn as random vectors, then some are replaced by degenerate ones: zero, parallel
or opposite to an earlier row, or rescaled to 1e-20 / 1e20. They are split into a pytree of
several leaves so that every combiner is exercised on real pytrees.
"""

import jax.numpy as jnp
import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# leaf shapes of the parameter pytrees (kept few, so jitted code compiles few times)
LAYOUTS = (
    {"w": (3,)},
    {"w": (2, 2), "b": (2,)},
    {"a": (4,), "b": (), "c": (1, 3)},
)
KINDS = ("random", "random", "zero", "parallel", "opposite", "tiny", "huge")


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
    """(k, p) float64 task rows, some of them degenerate."""
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
def task_grads(draw, k: int | None = None, max_k: int = 4, dtype=None, degenerate=True,
               layouts=LAYOUTS):
    """(grads, layout, dtype): a dict pytree of per-task gradients with K rows."""
    k = draw(st.integers(1, max_k)) if k is None else k
    layout = draw(st.sampled_from(layouts))
    p = sum(int(np.prod(s, dtype=int)) for s in layout.values())
    flat = draw(rows(k, p, degenerate))
    dtype = draw(st.sampled_from([jnp.float32, jnp.float64])) if dtype is None else dtype
    grads = {n: jnp.asarray(v, dtype) for n, v in split(flat, layout).items()}
    return grads, layout, dtype


def params_like(layout: dict, dtype) -> dict:
    return {n: jnp.zeros(s, dtype) for n, s in layout.items()}


def examples(n: int) -> settings:
    """`n` examples under the default profile; the profile's own count when it asks for more
    (the `thorough` profile runs every property 10^4 times)."""
    return settings(max_examples=max(n, settings.default.max_examples)
                    if settings.default.max_examples > 100 else n)


def flush(flat: np.ndarray, dtype) -> np.ndarray:
    """What the hardware and pinnx see of `flat` in `dtype`: subnormal entries are zero (XLA
    on CPU flushes them: FTZ/DAZ), so a row whose entries are all below the dtype's smallest
    normal number is a zero row. The smallest normal number itself is a number: pinnx's
    scale-safe norms resolve a row of it. References in the tests are computed from this."""
    tiny = np.finfo(dtype).tiny
    return np.where(np.abs(flat) < tiny, 0.0, flat)
