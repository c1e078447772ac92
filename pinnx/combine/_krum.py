"""Krum and Multi-Krum (Blanchard et al., NeurIPS 2017)."""

import operator
import warnings

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Aggregator
from ._gram import gram_aggregator
from ._registry import register
from ._trimmed_mean import row_mean

__all__ = ["krum", "krum_scores", "krum_weights"]


def krum_scores(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    n_byzantine: int,
    squared: bool = True,
) -> Float[Array, " tasks"]:
    """Krum's score of every row: the sum of its distances to its K - f - 2 nearest rows.

    Distances come from the Gram matrix, ||g_i - g_j||^2 = n_i^2 + n_j^2 - 2 n_i n_j c_ij,
    in units of the largest norm (so 1e20-scale rows do not overflow in float32); the
    scores are therefore divided by max_k ||g_k||^2 (squared) or max_k ||g_k||. Rounding
    leaves an absolute error of about eps (squared) or sqrt(eps) (not squared) on each
    scaled distance, so near-duplicate rows may be ranked either way.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        n_byzantine: f, the number of rows that may be arbitrary; needs K >= f + 3.
        squared: sum squared distances (Blanchard et al.); False sums distances (torchjd).

    Returns:
        scores: (K,), lower is more central.
    """
    k = norms.shape[0]
    n_closest = k - n_byzantine - 2
    if n_closest < 1:
        raise ValueError(
            f"krum(n_byzantine={n_byzantine}) scores each row by its K - {n_byzantine} - 2 "
            f"nearest rows, so it needs at least {n_byzantine + 3} task rows; got {k}"
        )
    top = jnp.max(norms)
    r = norms / jnp.where(top > 0, top, 1)
    d2 = jnp.maximum(r[:, None] ** 2 + r[None, :] ** 2 - 2 * r[:, None] * r[None, :] * cos, 0)
    dist = d2 if squared else jnp.sqrt(d2)
    dist = jnp.where(jnp.eye(k, dtype=bool), jnp.inf, dist)  # a row is not its own neighbour
    return jnp.sum(jnp.sort(dist, axis=1)[:, :n_closest], axis=1)


def krum_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    n_byzantine: int,
    n_selected: int = 1,
    squared: bool = True,
) -> Float[Array, " tasks"]:
    """(Multi-)Krum as a weighting of the Gram matrix: 1/m on the m lowest-scored rows.

    Ties go to the lower row index. With too few rows to score (K < f + 3) every row gets
    1/K (the mean; see `krum`).

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        n_byzantine: f, the number of rows that may be arbitrary.
        n_selected: m, how many rows to average (m = 1 is Krum, m > 1 Multi-Krum).
        squared: as in `krum_scores`.

    Returns:
        weights: (K,).
    """
    k = norms.shape[0]
    if k < n_byzantine + 3:
        return jnp.full((k,), 1 / k, norms.dtype)
    if n_selected > k:
        raise ValueError(f"krum(n_selected={n_selected}) selects more rows than the {k} "
                         "task rows")
    chosen = jnp.argsort(krum_scores(norms, cos, n_byzantine, squared), stable=True)
    return jnp.zeros((k,), norms.dtype).at[chosen[:n_selected]].set(1 / n_selected)


def _count(value, name: str, least: int) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"krum({name}=...) needs an int, got {value!r}") from None
    if value < least:
        raise ValueError(f"krum({name}=...) must be at least {least}, got {value}")
    return value


@register
def krum(n_byzantine: int = 0, n_selected: int = 1, *, squared: bool = True) -> Aggregator:
    """Krum: the task row closest to its nearest neighbours (Multi-Krum: the mean of m).

    With f = `n_byzantine`, each row i gets the score
    s(i) = sum over the K - f - 2 rows j nearest to g_i of ||g_i - g_j||^2;
    Krum returns the row with the lowest score, and Multi-Krum (m = `n_selected` > 1) the
    mean of the m lowest-scored rows. A row far from the others (an outlier, or in a PINN a
    loss whose gradient disagrees with the rest) is never selected while f + 3 <= K; the
    selection is invariant to rescaling all rows together, not to rescaling one row.

    Computed from the K x K cosine matrix and the K norms (a Gram weighting: one pass over
    the gradients for the Gram matrix, one for the mean), then a sort of K scores. Ties go
    to the lower row index. The mean of the m rows is formed as in `trimmed_mean` (scaled
    by a power of two per coordinate, see `row_mean`): within (m - 1) u sum_k |g_k| / m +
    u |mean| of the exact mean (u = eps / 2; a mean below the smallest normal number is
    flushed to 0), finite, and within the range of the rows averaged.

    Too few rows: K is static, and K < f + 3 leaves no neighbour to score a row by, so no
    row can be told apart from the others: krum then returns the mean of all rows, and warns
    when the update is traced. (Blanchard et al.'s resilience guarantee needs 2 f + 2 < K.)

    Args:
        n_byzantine: f, the number of rows that may be arbitrary (an int >= 0).
        n_selected: m, the number of rows averaged (an int >= 1, at most K).
        squared: True (default) scores by squared distances as in Blanchard et al.;
            False by distances, as torchjd's `Krum` does. The two can select different rows.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [0.9, 0.1], [1.1, -0.1],
        ...                          [-5.0, 5.0]])}   # 4 task rows, the last an outlier
        >>> agg = pinnx.krum(n_byzantine=1)
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=4))
        >>> [round(v, 3) for v in update["w"].tolist()]   # row 0, nearest to its neighbours
        [1.0, 0.0]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.krum(n_byzantine=1) | optax.adam(1e-3)

    References:
        Blanchard, El Mhamdi, Guerraoui, Stainer. "Machine Learning with Adversaries:
        Byzantine Tolerant Gradient Descent". NeurIPS 2017.
        https://proceedings.neurips.cc/paper/2017/file/f4b9ec30ad9f68f89b29639786cb62ef-Paper.pdf
    """
    n_byzantine = _count(n_byzantine, "n_byzantine", 0)
    n_selected = _count(n_selected, "n_selected", 1)

    def selection(norms, cos, state):
        k = norms.shape[0]
        if k < n_byzantine + 3:
            warnings.warn(
                f"krum(n_byzantine={n_byzantine}) needs at least {n_byzantine + 3} task rows "
                f"to score them, got {k}: it returns the mean of the rows", stacklevel=4)
        return krum_weights(norms, cos, n_byzantine, n_selected, squared), state

    def selected_mean(w, norms, grads):
        # the mean of the selected rows, formed scale-safe (`row_mean`): 1/m times a row
        # of the smallest normal number underflows, a sum of 1e38 rows overflows
        return jax.tree.map(lambda g: row_mean(g, w > 0), grads)

    return gram_aggregator(selection, combine=selected_mean)
