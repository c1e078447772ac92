"""Soft parameter sharing (ATL-PINN's "soft" mode): cross-stitch units or a distance penalty."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._multitask import (
    Layers,
    MultiTaskNet,
    check_out_size,
    check_point,
    check_sizes,
    dense,
    mask_where,
    resolve_dtype,
    run,
    stack_outputs,
)

__all__ = ["SoftSharing"]


class SoftSharing(MultiTaskNet):
    """K task networks coupled softly: by cross-stitch units or by a parameter-distance penalty.

    Each task has its own column of `depth` tanh layers and its own head (a tanh MLP with
    `head_depth` hidden layers and a linear output); task k's output is head_k(h_k), with
    h_k the output of column k's last layer after coupling. The two soft-sharing forms:

    - `coupling="cross_stitch"` (default): after every layer l the K columns' activations
      a_1..a_K (each of `width` units) are mixed by a learned K x K cross-stitch matrix S_l:
      h_k = sum_j S_l[k, j] a_j, the input of column k's next layer (Misra et al. 2016, one
      scalar per task pair and layer). S_l starts at `stitch_self` on the diagonal and
      (1 - stitch_self) / (K - 1) elsewhere, so each task starts mostly on its own column.
      Shared (K >= 2): the columns and the cross-stitch matrices (every output depends on
      every column through S). Task-specific: the heads.
    - `coupling="distance"`: no mixing (`stitches` is None); the columns are independent
      networks, initialised equal (so the penalty starts at 0, as one hard-shared trunk),
      coupled only through the penalty `distance()`, the squared Euclidean
      distance between every pair of columns' parameters, layer by layer (Duong et al.
      2015), which the loss adds with a weight (`pinnx.atl.distance_penalty`). No parameter
      is shared by construction: `shared_mask` is False everywhere, so a cosine gate on the
      shared parameters has nothing to gate; the penalty's gradient is its own task row.

        Args:
        in_size: input dimension d.
        out_size: per-task output width m, or "scalar".
        num_tasks: K.
        width: units per layer of every column and head.
        depth: column layers (>= 1), each followed by a cross-stitch unit.
        key: PRNG key.
        head_depth: hidden layers of each head (>= 0).
        stitch_self: initial diagonal of every cross-stitch matrix, in (0, 1] (1 when K = 1);
            only with `coupling="cross_stitch"`.
        coupling: "cross_stitch" or "distance" (see above).
        activation: elementwise nonlinearity.
        dtype: parameter dtype.

    Shapes: `model(x)` maps x (in_size,) to (K,) for "scalar", else (K, m).

    Examples:
        >>> import jax, pinnx
        >>> net = pinnx.nn.SoftSharing(2, "scalar", 2, width=16, depth=3,
        ...                            key=jax.random.key(0))
        >>> net.stitches.shape        # (depth, K, K)
        (3, 2, 2)
        >>> twins = pinnx.nn.SoftSharing(2, "scalar", 2, width=16, depth=3,
        ...                              key=jax.random.key(0), coupling="distance")
        >>> float(twins.distance())   # 0 only when the columns are equal, as at first
        0.0

    References:
        Misra, Shrivastava, Gupta, Hebert. "Cross-stitch Networks for Multi-task Learning".
        CVPR 2016. https://arxiv.org/abs/1604.03539 ; Yan, Chen, Wang, Zhou, Liu.
        "Auxiliary-Tasks Learning for Physics-Informed Neural Network-Based Partial
        Differential Equations Solving". 2023. https://arxiv.org/abs/2307.06167 ; Duong,
        Cohn, Bird, Cook. "Low Resource Dependency Parsing: Cross-lingual Parameter Sharing
        in a Neural Network Parser". ACL 2015 (the distance penalty).
    """

    columns: tuple[Layers, ...]
    stitches: Float[Array, "depth tasks tasks"] | None
    heads: tuple[Layers, ...]
    in_size: int = eqx.field(static=True)
    out_size: int | str = eqx.field(static=True)
    num_tasks: int = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)
    coupling: str = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int | str,
        num_tasks: int,
        width: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        head_depth: int = 1,
        stitch_self: float = 0.9,
        coupling: str = "cross_stitch",
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
    ):
        check_sizes("SoftSharing", in_size=in_size, num_tasks=num_tasks, width=width,
                    depth=depth)
        if not isinstance(head_depth, int) or head_depth < 0:
            raise ValueError(f"SoftSharing: head_depth must be an int >= 0, got {head_depth!r}")
        if coupling not in ("cross_stitch", "distance"):
            raise ValueError(f"SoftSharing: coupling must be 'cross_stitch' or 'distance', got "
                             f"{coupling!r}")
        if not 0 < stitch_self <= 1:
            raise ValueError(f"SoftSharing: stitch_self must lie in (0, 1], got {stitch_self}")
        m = check_out_size("SoftSharing", out_size)
        dtype = resolve_dtype(dtype)
        keys = jax.random.split(key, 2 * num_tasks)
        # distance coupling: the columns start equal (penalty 0), i.e. as one hard-shared
        # trunk, and the penalty limits how far they drift apart
        column_keys = keys[:num_tasks] if coupling == "cross_stitch" else [keys[0]] * num_tasks
        self.columns = tuple(dense([in_size] + [width] * depth, k, dtype)
                             for k in column_keys)
        self.heads = tuple(dense([width] * (head_depth + 1) + [m], k, dtype)
                           for k in keys[num_tasks:])
        eye = jnp.eye(num_tasks, dtype=dtype)
        s = eye  # one task: nothing to stitch
        if num_tasks > 1:
            s = stitch_self * eye + (1 - stitch_self) / (num_tasks - 1) * (1 - eye)
        self.stitches = (jnp.broadcast_to(s, (depth, num_tasks, num_tasks)).astype(dtype)
                         if coupling == "cross_stitch" else None)
        self.in_size, self.out_size, self.num_tasks = in_size, out_size, num_tasks
        self.activation = activation
        self.coupling = coupling

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, "tasks ..."]:
        """The K task outputs at one point x: (K,) or (K, m)."""
        check_point("SoftSharing", x, self.in_size)
        h = [x] * self.num_tasks
        for layer in range(len(self.columns[0])):
            h = [self.activation(col[layer](hk)) for col, hk in zip(self.columns, h,
                                                                     strict=True)]
            if self.stitches is not None:
                mixed = self.stitches[layer] @ jnp.stack(h)
                h = [mixed[k] for k in range(self.num_tasks)]
        return stack_outputs([run(head, hk, self.activation, linear_last=True)
                              for head, hk in zip(self.heads, h, strict=True)], self.out_size)

    def shared_mask(self, params: Any = None) -> PyTree[bool]:
        """Cross-stitch: True on the columns and cross-stitch matrices, False on the heads.
        Distance: False everywhere (nothing is shared by construction)."""
        if self.stitches is None:
            return jax.tree.map(lambda _: False, self)
        return mask_where(self, lambda m: (m.columns, m.stitches))

    def distance(self) -> Float[Array, ""]:
        """The coupling penalty sum_l sum_{j<k} ||W_j^l - W_k^l||_F^2 + ||b_j^l - b_k^l||^2
        over the columns' layers l and the pairs of tasks j < k (heads excluded); 0 for
        K = 1. Defined for both couplings; only `coupling="distance"` relies on it."""
        leaves = [jax.tree.leaves(col) for col in self.columns]
        total = jnp.zeros((), jnp.result_type(*leaves[0]))
        for j in range(self.num_tasks):
            for k in range(j + 1, self.num_tasks):
                total = total + sum(jnp.sum((a - b) ** 2)
                                    for a, b in zip(leaves[j], leaves[k], strict=True))
        return total
