"""Aligned-MTL: independent component alignment (Senushkin et al., CVPR 2023)."""

from collections.abc import Sequence
from typing import Literal

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._base import Aggregator, concrete
from ._gram import gram_aggregator
from ._registry import register

__all__ = ["aligned_mtl", "aligned_mtl_weights", "balance_transform"]

ScaleMode = Literal["min", "median", "rmse"]


def balance_transform(
    gram: Float[Array, "tasks tasks"], scale_mode: ScaleMode = "min"
) -> Float[Array, "tasks tasks"]:
    """Aligned-MTL's balance matrix B = sqrt(s) V L^(-1/2) V^T of a Gram matrix G = V L V^T.

    Only the eigenvalues above K * eps * lambda_max count (the rank r; eps of G's dtype);
    V and L are restricted to them. s is the smallest kept eigenvalue (`"min"`), their
    lower median (`"median"`) or their mean (`"rmse"`). Then B G B = s P with P the
    orthogonal projector onto G's range: the aligned rows B J are orthogonal with equal
    norms sqrt(s) (P = I when G has full rank). B does not change when G is rescaled; for
    G = 0 it is the identity.

    Args:
        gram: (K, K) symmetric positive semi-definite matrix.
        scale_mode: which eigenvalue sets the common norm.

    Returns:
        (K, K) symmetric matrix B.
    """
    k = gram.shape[0]
    lam, vec = jnp.linalg.eigh(gram)  # ascending: the kept eigenvalues are a suffix
    keep = lam > k * jnp.finfo(gram.dtype).eps * jnp.max(lam)
    rank = jnp.sum(keep)
    first = jnp.clip(k - rank, 0, k - 1)
    if scale_mode == "min":
        scale = lam[first]
    elif scale_mode == "median":  # the lower median, as torch.median
        scale = lam[jnp.clip(first + (rank - 1) // 2, 0, k - 1)]
    elif scale_mode == "rmse":
        scale = jnp.sum(jnp.where(keep, lam, 0)) / jnp.maximum(rank, 1).astype(lam.dtype)
    else:
        raise ValueError(f"scale_mode must be 'min', 'median' or 'rmse', got {scale_mode!r}")
    root = jnp.sqrt(jnp.where(keep, lam, 1))
    factor = jnp.where(keep, jnp.sqrt(jnp.where(keep, scale, 1)) / root, 0)
    b = (vec * factor[None, :]) @ vec.T
    return jnp.where(rank > 0, b, jnp.eye(k, dtype=gram.dtype))


def aligned_mtl_weights(
    norms: Float[Array, " tasks"],
    cos: Float[Array, "tasks tasks"],
    pref: Float[Array, " tasks"],
    scale_mode: ScaleMode = "min",
) -> Float[Array, " tasks"]:
    """Aligned-MTL as a weighting of the Gram matrix, in the unit-direction basis.

    alpha = B w with B = `balance_transform(G)` and w the preference weights, so that
    d = J^T alpha = sum_k (alpha_k ||g_k||) u_k. B is computed from G / max_k ||g_k||^2
    (B does not depend on G's scale), so rows of any magnitude are safe.

    Args:
        norms: (K,) task gradient norms.
        cos: (K, K) cosine matrix of the task gradients.
        pref: (K,) preference weights w.
        scale_mode: see `balance_transform`.

    Returns:
        (K,) coefficients of d on the unit directions.
    """
    top = jnp.max(norms)
    rel = norms / jnp.where(top > 0, top, 1)
    b = balance_transform(rel[:, None] * cos * rel[None, :], scale_mode)
    return (b @ pref) * norms


@register
def aligned_mtl(
    weights: Sequence[float] | Float[Array, " tasks"] | None = None,
    *,
    scale_mode: ScaleMode = "min",
) -> Aggregator:
    """Aligned-MTL: align the task gradients into orthogonal ones of equal norm, then sum.

    With J the K x P matrix of task gradients and G = J J^T = V L V^T, Aligned-MTL replaces
    J by the aligned rows B J, where

        B = sqrt(lambda_min) V L^(-1/2) V^T,   so that  (B J)(B J)^T = lambda_min I:

    the aligned task gradients are orthogonal, all of norm sqrt(lambda_min) (J's condition
    number becomes 1; its smallest singular value sets the scale). The update is
    d = (B J)^T w = J^T B w, with preference weights w (default 1/K each).

    Singular G (zero, parallel or linearly dependent rows): as in the reference, only the
    eigenvalues above K * eps * lambda_max count (eps of the gradients' dtype); V, L and
    lambda_min are restricted to them, and the aligned rows are then orthogonal with equal
    norm within G's range (B G B = lambda_min P, P the projector onto the range). All-zero
    gradients give a zero update. B is computed from the scale-free G / max_k ||g_k||^2,
    so extreme magnitudes are safe; a row much smaller than the others (relative norm below
    about sqrt(K eps)) falls under the cut and contributes (almost) nothing.

    Args:
        weights: preference weights w, one per task in row order (default 1/K each).
        scale_mode: the scale of the aligned rows: `"min"` (lambda_min, the paper's
            Algorithm 1), `"median"` (the lower median of the kept eigenvalues) or
            `"rmse"` (their mean, as in the authors' code).

    Returns an aggregator: K task rows in, one params-shaped gradient out; stateless.

    Examples:
        >>> import jax.numpy as jnp, optax, pinnx
        >>> grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}   # 2 task rows, in conflict
        >>> agg = pinnx.aligned_mtl()
        >>> update, _ = agg.update(grads, agg.init({"w": jnp.zeros(2)}, tasks=2))
        >>> [round(v, 3) for v in update["w"].tolist()]
        [0.138, 0.415]

        In training, a plain optax optimizer follows the aggregator:

        >>> opt = pinnx.aligned_mtl() | optax.adam(1e-3)

    References:
        Senushkin, Patakin, Kuznetsov, Konushin. "Independent Component Alignment for
        Multi-Task Learning". CVPR 2023. https://arxiv.org/abs/2305.19000 ; reference code
        torchjd `AlignedMTL`.
    """
    if scale_mode not in ("min", "median", "rmse"):
        raise ValueError(f"scale_mode must be 'min', 'median' or 'rmse', got {scale_mode!r}")
    if weights is not None:
        shape = jnp.shape(jnp.asarray(weights)) if not concrete(weights) else np.shape(weights)
        if len(shape) != 1 or shape[0] < 1:
            raise ValueError(f"aligned_mtl() needs a 1-D sequence of weights, got {weights!r}")
        if concrete(weights) and not np.all(np.isfinite(np.asarray(weights, np.float64))):
            raise ValueError(f"aligned_mtl() needs finite weights, got {weights!r}")

    def preference(k, dtype):
        if weights is None:
            return jnp.full((k,), 1 / k, dtype)
        if shape[0] != k:
            raise ValueError(
                f"aligned_mtl() has {shape[0]} weights but the gradients have {k} task rows"
            )
        if concrete(weights):
            return jnp.asarray(np.asarray(weights, np.float64), dtype)
        return jnp.asarray(weights).astype(dtype)

    def alignment(norms, cos, state):
        pref = preference(norms.shape[0], norms.dtype)
        return aligned_mtl_weights(norms, cos, pref, scale_mode), state

    return gram_aggregator(alignment)
