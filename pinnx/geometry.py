"""Domains and collocation-point sampling.

Conventions:

- Points are arrays of shape ``(n, d)``; column ``i`` is the coordinate named ``names[i]``.
- In a space-time domain TIME IS THE LAST coordinate, named ``"t"``.
- Boundary sides are named ``f"{name}-"`` (the face ``x_i == lo_i``, outward normal ``-e_i``)
  and ``f"{name}+"`` (the face ``x_i == hi_i``, normal ``+e_i``), in axis order. A
  `SpaceTime` has only its spatial sides (the lateral boundary); the initial set ``t == t0``
  is not a side and is sampled with `SpaceTime.sample_initial`.
- Sampling is a pure function of a `jax.random` key (same key, same points). ``n``,
  ``method``, ``sides`` and ``dtype`` are static Python values and the key may be traced, so
  every ``sample_*`` method works inside `jax.jit` / `lax.scan` (e.g. resampling every step).
  Each call takes all its randomness from ONE ``jax.random.bits(key, ...)`` draw (uint32
  words, uint64 for float64), so use independent keys (`jax.random.split`) for different
  point sets. Calls outside jit are compiled too (once per domain, ``n``, method, sides and
  dtype).
- dtype: ``dtype=None`` means JAX's default float dtype (float32, or float64 when
  ``jax_enable_x64`` is on); pass ``dtype=`` to choose another floating dtype. Random
  fractions carry the dtype's full precision (24 random bits in float32, 53 in float64).

Sampling methods (``method=``):

- ``"uniform"``: iid uniform points.
- ``"lhs"``: Latin hypercube; along every axis each of the ``n`` equal strata holds exactly
  one point (an independent random permutation of the strata per axis, from an argsort of
  random words, plus uniform jitter inside each stratum).
- ``"sobol"``: the first ``n`` points of the unscrambled Sobol' sequence (32-bit, built once
  on the host with `scipy.stats.qmc` and cached per ``(d, n)``), randomised inside jit by a
  random *digital shift*: each coordinate's 32 bits are XORed with one random word per axis.
  Unlike a shift modulo 1, the digital shift maps dyadic boxes to dyadic boxes, so the
  (t, m, s)-net structure survives: for ``n`` a power of two the points keep Sobol's balance
  (e.g. in 2-D every dyadic box of area ``1/n`` holds exactly one point), and each point is
  uniformly distributed. For other ``n`` the set is the length-``n`` prefix of the sequence
  (the first ``n`` points of the ``2**ceil(log2 n)`` net): still low-discrepancy, but not
  balanced. Prefer powers of two.
- ``"halton"``: the first ``n`` unscrambled Halton points (host-built, cached per
  ``(d, n)``), randomised inside jit by a Cranley-Patterson rotation: ``(x + s) mod 1`` with
  one uniform ``s`` per axis (Halton's bases are not all 2, so a digital shift would not fit).
- ``"grid"``: a regular grid shifted at random. Points per axis are
  ``k_i = max(1, ceil(L_i * (n / V) ** (1 / d)))`` for side lengths ``L_i`` and volume ``V``
  (``ceil(n ** (1/d))`` per axis for a cube, so a cube and ``n == m**d`` give exactly ``n``
  points); the grid has ``prod(k_i) >= n`` points, NOT exactly ``n`` (see
  `Box.grid_shape`). The points are ``lo_i + (j + s_i) * L_i / k_i``, ``j = 0..k_i-1``, with
  one shift ``s ~ U[0, 1)^d`` drawn from the key for the whole grid (``s = 1/2`` would be the
  cell-centred grid). Rows are in C order (last axis fastest): ``x.reshape(*k, d)``.

All points lie in the closed domain (coordinates are clipped to ``[lo, hi]`` after mapping).
"""

import functools
import math
from collections.abc import Sequence
from fractions import Fraction

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray
from scipy.stats import qmc

__all__ = ["Box", "Interval", "SpaceTime", "METHODS"]

METHODS: tuple[str, ...] = ("uniform", "lhs", "sobol", "halton", "grid")
"""The valid values of ``method=``."""

_Real = float | int


# --------------------------------------------------------------------------- helpers


def _resolve_dtype(dtype: DTypeLike | None) -> np.dtype:
    dt = jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dt}")
    return dt


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; valid methods: {', '.join(METHODS)}")


def _grid_shape(lengths: Sequence[float], n: int) -> tuple[int, ...]:
    """Points per axis of the ``"grid"`` method (see the module docstring)."""
    d = len(lengths)
    per_unit = (n / math.prod(lengths)) ** (1.0 / d)
    # The relative tolerance keeps e.g. 1000 ** (1/3) = 9.999...8 or 10.000...2 at 10.
    return tuple(max(1, math.ceil(length * per_unit * (1.0 - 1e-9))) for length in lengths)


@functools.lru_cache(maxsize=32)
def _qmc_base(method: str, d: int, n: int) -> np.ndarray:
    """Host-side unrandomised QMC set: uint32 (Sobol', units of 2**-32) or float64 (Halton)."""
    if method == "sobol":
        m = (n - 1).bit_length()  # smallest m with 2**m >= n; take the first n of the net
        u = qmc.Sobol(d, scramble=False, bits=32).random_base2(m)[:n]
        base = np.ldexp(u, 32).astype(np.uint32)  # exact: u are multiples of 2**-32
    else:
        base = qmc.Halton(d, scramble=False).random(n)
    base.flags.writeable = False
    return base


def _n_words(method: str, n: int, d: int) -> int:
    """Random words that one ``(n, d)`` block of ``method`` consumes."""
    if d == 0:
        return 0
    if method == "uniform":
        return n * d
    if method == "lhs":
        return 2 * n * d  # sort keys for the strata permutations, and the jitter
    return d  # sobol, halton, grid: one shift per axis


def _to_unit(words: Array, dtype: np.dtype) -> Array:
    """Unsigned random words -> floats in ``[0, 1)`` on a grid of ``2**-b`` (exact in dtype)."""
    width = 8 * words.dtype.itemsize
    b = min(width, jnp.finfo(dtype).nmant + 1)  # 24 for float32, 53 for float64 (64-bit words)
    return (words >> (width - b)).astype(dtype) * 2.0**-b


def _unit_points(words: Array, n: int, d: int, method: str, dtype: np.dtype) -> Array:
    """``(n, d)`` points in ``[0, 1)^d`` for the non-grid methods, from ``_n_words`` words."""
    if method == "uniform":
        return _to_unit(words.reshape(n, d), dtype)
    if method == "lhs":
        # argsort of iid words: an independent uniformly random permutation of the strata
        # 0..n-1 in every column (ties, of probability < n**2 / 2**(width+1), keep index order).
        strata = jnp.argsort(words[: n * d].reshape(n, d), axis=0)
        jitter = _to_unit(words[n * d :].reshape(n, d), dtype)
        return (strata.astype(dtype) + jitter) / n
    if method == "sobol":
        # random digital shift: XOR every coordinate's 32 bits with one random word per axis
        base = jnp.asarray(_qmc_base("sobol", d, n))
        return _to_unit(base ^ words.astype(jnp.uint32)[None, :], dtype)
    # halton: Cranley-Patterson rotation, (x + shift) mod 1
    base = jnp.asarray(_qmc_base("halton", d, n), dtype)
    return jnp.mod(base + _to_unit(words, dtype)[None, :], 1.0)


def _grid_points(words: Array, shape: tuple[int, ...], dtype: np.dtype) -> Array:
    """Randomly shifted regular grid in ``[0, 1)^d``, C order, ``(prod(shape), d)``."""
    shift = _to_unit(words, dtype)
    axes = [(jnp.arange(k, dtype=dtype) + shift[i]) / k for i, k in enumerate(shape)]
    mesh = jnp.meshgrid(*axes, indexing="ij")
    return jnp.stack([m.reshape(-1) for m in mesh], axis=1)


def _sample_box(
    words: Array,
    n: int,
    lo: tuple[float, ...],
    hi: tuple[float, ...],
    method: str,
    dtype: np.dtype,
) -> Array:
    """Points in the box ``[lo, hi]``; a 0-dimensional box gives ``(n, 0)``."""
    d = len(lo)
    if d == 0:
        return jnp.zeros((n, 0), dtype)
    if method == "grid":
        u = _grid_points(words, _grid_shape(_lengths(lo, hi), n), dtype)
    else:
        u = _unit_points(words, n, d, method, dtype)
    lo_, hi_ = jnp.asarray(lo, dtype)[None, :], jnp.asarray(hi, dtype)[None, :]
    return jnp.clip(lo_ + u * (hi_ - lo_), lo_, hi_)


def _drop(values: tuple, axis: int) -> tuple:
    return values[:axis] + values[axis + 1 :]


def _lengths(lo: tuple[float, ...], hi: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(b - a for a, b in zip(lo, hi, strict=True))


# One piece of a point set, (n, axis, value): n points in the box [lo, hi] (axis None) or on
# its face {x_axis == value}.
_Piece = tuple[int, int | None, float | None]


@functools.partial(jax.jit, static_argnames=("lo", "hi", "pieces", "method", "dtype"))
def _sample_pieces(
    key: PRNGKeyArray,
    *,
    lo: tuple[float, ...],
    hi: tuple[float, ...],
    pieces: tuple[_Piece, ...],
    method: str,
    dtype: np.dtype,
) -> Array:
    """Stack the points of ``pieces``, all drawn from ONE `jax.random.bits` call on ``key``.

    One draw (rather than a key split per piece) keeps the compiled program small: on CPU,
    each random-number call site costs a noticeable share of XLA compile time.
    """
    dims = [len(lo) - (axis is not None) for _, axis, _ in pieces]
    sizes = [_n_words(method, n, d) for (n, _, _), d in zip(pieces, dims, strict=True)]
    word = jnp.uint64 if dtype.itemsize > 4 else jnp.uint32
    words = jax.random.bits(key, (sum(sizes),), word)
    parts, start = [], 0
    for (n, axis, value), size in zip(pieces, sizes, strict=True):
        chunk, start = words[start : start + size], start + size
        if axis is None:
            parts.append(_sample_box(chunk, n, lo, hi, method, dtype))
            continue
        face = _sample_box(chunk, n, _drop(lo, axis), _drop(hi, axis), method, dtype)
        column = jnp.full((face.shape[0], 1), value, dtype)
        parts.append(jnp.concatenate([face[:, :axis], column, face[:, axis:]], axis=1))
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=0)


# --------------------------------------------------------------------------- domains


class _AxisAlignedDomain(eqx.Module):
    """Shared logic of axis-aligned product domains.

    Subclasses provide ``lo``, ``hi``, ``names`` (tuples) and ``_side_axes`` (the axes that
    carry boundary sides).
    """

    @property
    def dim(self) -> int:
        """Number of coordinates ``d``."""
        return len(self.lo)

    @property
    def volume(self) -> float:
        """Lebesgue measure of the domain (space-time volume for a `SpaceTime`)."""
        return math.prod(_lengths(self.lo, self.hi), start=1.0)

    @property
    def sides(self) -> tuple[str, ...]:
        """Boundary side names, ``(f"{name}-", f"{name}+")`` per (spatial) axis, in axis order."""
        return tuple(f"{self.names[i]}{s}" for i in self._side_axes for s in "-+")

    def _side(self, side: str) -> tuple[int, bool]:
        """``(axis, is_upper)`` of a side name, or ValueError."""
        if side not in self.sides:
            hint = ""
            if isinstance(self, SpaceTime) and side in ("t-", "t+"):
                hint = " (t = t0 is the initial set: use sample_initial)"
            raise ValueError(f"unknown side {side!r}{hint}; valid sides: {', '.join(self.sides)}")
        return self.names.index(side[:-1]), side.endswith("+")

    def _resolve_sides(self, sides: str | Sequence[str] | None) -> tuple[str, ...]:
        if sides is None:
            return self.sides
        sides = (sides,) if isinstance(sides, str) else tuple(sides)
        if not sides:
            raise ValueError(f"sides must not be empty; valid sides: {', '.join(self.sides)}")
        for side in sides:
            self._side(side)
        if len(set(sides)) != len(sides):
            raise ValueError(f"repeated side in {sides}")
        return sides

    def _side_measure(self, side: str) -> float:
        axis, _ = self._side(side)
        return math.prod(_lengths(_drop(self.lo, axis), _drop(self.hi, axis)), start=1.0)

    def _shares(self, n: int, names: tuple[str, ...]) -> list[int]:
        """Largest-remainder split of ``n`` over ``names`` in proportion to side measure."""
        _check_n(n)
        measures = [Fraction(self._side_measure(s)) for s in names]  # exact arithmetic
        quotas = [n * m / sum(measures) for m in measures]
        shares = [math.floor(q) for q in quotas]
        by_remainder = sorted(range(len(names)), key=lambda i: (shares[i] - quotas[i], i))
        for i in by_remainder[: n - sum(shares)]:
            shares[i] += 1
        return shares

    def grid_shape(self, n: int) -> tuple[int, ...]:
        """Points per axis that ``sample_interior(key, n, method="grid")`` uses.

        ``k_i = max(1, ceil(L_i * (n / volume) ** (1 / d)))``; the grid has ``prod(k_i) >= n``
        points (exactly ``n`` for a cube when ``n`` is a perfect ``d``-th power).

        Args:
            n: requested number of points, ``>= 1``.

        Returns:
            The tuple ``(k_0, ..., k_{d-1})``.

        Examples:
            >>> from pinnx.geometry import Box
            >>> Box((0.0, 0.0), (2.0, 1.0)).grid_shape(50)
            (10, 5)
        """
        _check_n(n)
        return _grid_shape(_lengths(self.lo, self.hi), n)

    def boundary_counts(
        self, n: int, sides: str | Sequence[str] | None = None, method: str = "uniform"
    ) -> dict[str, int]:
        """Rows per side that `sample_boundary` returns, in the order it stacks them.

        ``n`` is split across the sides in proportion to their measure (area of the face;
        for 1-D domains every endpoint has measure 1) by the largest-remainder rule: each
        side gets ``floor(n * w_s)`` and the remaining points go one each to the sides with
        the largest fractional parts (ties: earlier side first), so the shares sum to exactly
        ``n``. A side may get 0. With ``method="grid"`` a side with share ``m > 0`` instead
        holds its face grid of about ``m`` points (``grid_shape`` rule on the face).

        Args:
            n: total number of boundary points, ``>= 1``.
            sides: a side name, a sequence of side names, or None for all `sides`.
            method: the sampling method (only ``"grid"`` changes the counts).

        Returns:
            A dict ``{side: rows}`` in stacking order.

        Examples:
            >>> from pinnx.geometry import Box
            >>> Box((0.0, 0.0), (2.0, 1.0)).boundary_counts(10)
            {'x0-': 2, 'x0+': 2, 'x1-': 3, 'x1+': 3}
        """
        _check_method(method)
        names = self._resolve_sides(sides)
        counts = {}
        for side, share in zip(names, self._shares(n, names), strict=True):
            axis, _ = self._side(side)
            if method == "grid" and share > 0 and self.dim > 1:
                lengths = _lengths(_drop(self.lo, axis), _drop(self.hi, axis))
                share = math.prod(_grid_shape(lengths, share))
            counts[side] = share
        return counts

    def normal(self, side: str, dtype: DTypeLike | None = None) -> Float[Array, " d"]:
        """Outward unit normal of a side.

        Args:
            side: a side name, e.g. ``"x0+"``.
            dtype: float dtype; None means JAX's default float dtype.

        Returns:
            ``(d,)`` array: ``-e_i`` for ``f"{name_i}-"``, ``+e_i`` for ``f"{name_i}+"``.

        Examples:
            >>> from pinnx.geometry import Box
            >>> Box((0.0, 0.0), (1.0, 1.0)).normal("x1-").tolist()
            [0.0, -1.0]
        """
        axis, upper = self._side(side)
        sign = 1.0 if upper else -1.0
        return jnp.asarray(
            [sign if j == axis else 0.0 for j in range(self.dim)], _resolve_dtype(dtype)
        )

    def sample_interior(
        self,
        key: PRNGKeyArray,
        n: int,
        method: str = "uniform",
        dtype: DTypeLike | None = None,
    ) -> Float[Array, "m d"]:
        """Collocation points in the domain.

        Args:
            key: a `jax.random` key (may be traced).
            n: number of points, ``>= 1`` (static).
            method: one of `METHODS` (static): ``"uniform"``, ``"lhs"``, ``"sobol"``,
                ``"halton"``, ``"grid"``.
            dtype: float dtype (static); None means JAX's default float dtype.

        Returns:
            ``(n, d)`` points; for ``method="grid"`` ``(prod(grid_shape(n)), d)`` points.

        Examples:
            >>> import jax
            >>> from pinnx.geometry import Box
            >>> box = Box((0.0, -1.0), (1.0, 1.0))
            >>> sample = jax.jit(box.sample_interior, static_argnums=(1, 2))
            >>> x = sample(jax.random.key(0), 256, "sobol")  # the key may be traced
            >>> x.shape
            (256, 2)
        """
        _check_n(n)
        _check_method(method)
        return self._sample(key, ((n, None, None),), method, dtype)

    def sample_boundary(
        self,
        key: PRNGKeyArray,
        n: int,
        sides: str | Sequence[str] | None = None,
        method: str = "uniform",
        dtype: DTypeLike | None = None,
    ) -> Float[Array, "m d"]:
        """Collocation points on boundary sides.

        ``n`` is split across the sides in proportion to their measure (see
        `boundary_counts`, which also gives the row ranges); the points of each side are
        stacked in the order of ``sides`` and sampled with ``method`` on that face (each face
        is its own LHS / QMC set / grid). The fixed coordinate equals ``lo_i`` or ``hi_i``
        exactly (after conversion to ``dtype``).

        Args:
            key: a `jax.random` key (may be traced).
            n: total number of points, ``>= 1`` (static).
            sides: a side name, a sequence of side names, or None for all `sides` (static).
            method: one of `METHODS` (static).
            dtype: float dtype (static); None means JAX's default float dtype.

        Returns:
            ``(n, d)`` points (``(sum(boundary_counts(...).values()), d)`` for ``"grid"``).

        Examples:
            >>> import jax
            >>> from pinnx.geometry import Box
            >>> box = Box((0.0, 0.0), (1.0, 1.0))
            >>> x = box.sample_boundary(jax.random.key(0), 100, sides=("x0-", "x0+"))
            >>> x.shape
            (100, 2)
            >>> bool((x[:50, 0] == 0).all() and (x[50:, 0] == 1).all())   # side by side
            True
        """
        _check_method(method)
        names = self._resolve_sides(sides)
        pieces = []
        for side, share in zip(names, self._shares(n, names), strict=True):
            if share > 0:
                axis, upper = self._side(side)
                value = self.hi[axis] if upper else self.lo[axis]
                pieces.append((share, axis, value))
        return self._sample(key, tuple(pieces), method, dtype)

    def _sample(
        self,
        key: PRNGKeyArray,
        pieces: tuple,
        method: str,
        dtype: DTypeLike | None,
    ) -> Array:
        return _sample_pieces(
            key,
            lo=self.lo,
            hi=self.hi,
            pieces=pieces,
            method=method,
            dtype=_resolve_dtype(dtype),
        )


class Box(_AxisAlignedDomain):
    """An axis-aligned box ``[lo_0, hi_0] x ... x [lo_{d-1}, hi_{d-1}]``.

    Args:
        lo: lower corner, ``d`` finite numbers.
        hi: upper corner, ``d`` finite numbers with ``lo < hi`` elementwise.
        names: axis names; default ``("x",)`` for ``d == 1``, else ``("x0", "x1", ...)``.

    Examples:
        >>> import jax
        >>> from pinnx.geometry import Box
        >>> box = Box((0.0, 0.0), (1.0, 2.0), names=("x", "y"))
        >>> box.sides
        ('x-', 'x+', 'y-', 'y+')
        >>> box.sample_interior(jax.random.key(0), 128, "lhs").shape
        (128, 2)
    """

    lo: tuple[float, ...] = eqx.field(static=True)
    hi: tuple[float, ...] = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)

    def __init__(
        self,
        lo: Sequence[_Real],
        hi: Sequence[_Real],
        names: Sequence[str] | None = None,
    ):
        lo = tuple(float(v) for v in lo)
        hi = tuple(float(v) for v in hi)
        if len(lo) == 0 or len(lo) != len(hi):
            raise ValueError(f"lo and hi must be non-empty and of equal length, got {lo}, {hi}")
        ordered = all(a < b for a, b in zip(lo, hi, strict=True))
        if not ordered or not all(math.isfinite(v) for v in lo + hi):
            raise ValueError(f"need finite lo < hi elementwise, got lo={lo}, hi={hi}")
        if names is None:
            names = ("x",) if len(lo) == 1 else tuple(f"x{i}" for i in range(len(lo)))
        names = tuple(names)
        if len(names) != len(lo) or len(set(names)) != len(names) or not all(names):
            raise ValueError(f"need {len(lo)} distinct non-empty axis names, got {names}")
        self.lo, self.hi, self.names = lo, hi, names

    @property
    def _side_axes(self) -> tuple[int, ...]:
        return tuple(range(self.dim))


def Interval(lo: _Real, hi: _Real, name: str = "x") -> Box:
    """The 1-D box ``[lo, hi]``, with sides ``f"{name}-"`` and ``f"{name}+"``.

    Args:
        lo: left end.
        hi: right end, ``> lo``.
        name: axis name.

    Returns:
        ``Box((lo,), (hi,), names=(name,))``.

    Examples:
        >>> from pinnx.geometry import Interval
        >>> Interval(-1.0, 1.0).sides
        ('x-', 'x+')
    """
    return Box((lo,), (hi,), names=(name,))


class SpaceTime(_AxisAlignedDomain):
    """The product ``space x [t0, t1]``; points are ``(space coords..., t)``, time LAST.

    `sides` are the spatial sides only (the lateral boundary ``boundary(space) x [t0, t1]``);
    the initial set ``space x {t0}`` is sampled with `sample_initial`. Interior methods treat
    time as one more axis (e.g. LHS strata and grid spacing include ``t``).

    Args:
        space: the spatial `Box` (no axis may be named ``"t"``).
        t0: initial time.
        t1: final time, ``> t0``.

    Examples:
        >>> from pinnx.geometry import Interval, SpaceTime
        >>> dom = SpaceTime(Interval(-1.0, 1.0), 0.0, 1.0)
        >>> dom.names, dom.sides
        (('x', 't'), ('x-', 'x+'))
    """

    space: Box
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)

    def __init__(self, space: Box, t0: _Real, t1: _Real):
        t0, t1 = float(t0), float(t1)
        if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
            raise ValueError(f"need finite t0 < t1, got t0={t0}, t1={t1}")
        if "t" in space.names:
            raise ValueError(f"the space axis names {space.names} must not contain 't'")
        self.space, self.t0, self.t1 = space, t0, t1

    @property
    def lo(self) -> tuple[float, ...]:
        """Lower corner ``(*space.lo, t0)``."""
        return self.space.lo + (self.t0,)

    @property
    def hi(self) -> tuple[float, ...]:
        """Upper corner ``(*space.hi, t1)``."""
        return self.space.hi + (self.t1,)

    @property
    def names(self) -> tuple[str, ...]:
        """Axis names ``(*space.names, "t")``."""
        return self.space.names + ("t",)

    @property
    def _side_axes(self) -> tuple[int, ...]:
        return tuple(range(self.space.dim))

    def sample_initial(
        self,
        key: PRNGKeyArray,
        n: int,
        method: str = "uniform",
        dtype: DTypeLike | None = None,
    ) -> Float[Array, "m d"]:
        """Points of the initial set ``space x {t0}``.

        Args:
            key: a `jax.random` key (may be traced).
            n: number of points, ``>= 1`` (static).
            method: one of `METHODS` (static); ``"grid"`` gives
                ``prod(space.grid_shape(n))`` points.
            dtype: float dtype (static); None means JAX's default float dtype.

        Returns:
            ``(n, d)`` points whose last column equals ``t0`` exactly.

        Examples:
            >>> import jax
            >>> from pinnx.geometry import Box, SpaceTime
            >>> dom = SpaceTime(Box((0.0, 0.0), (1.0, 1.0)), 0.0, 2.0)
            >>> x0 = dom.sample_initial(jax.random.key(0), 64, "halton")
            >>> x0.shape, bool((x0[:, -1] == 0).all())   # time is the last column
            ((64, 3), True)
        """
        _check_n(n)
        _check_method(method)
        return self._sample(key, ((n, self.space.dim, self.t0),), method, dtype)
