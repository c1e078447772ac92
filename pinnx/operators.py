"""Derivatives of a field with respect to its inputs, in forward mode.

Every operator acts on ONE point ``x`` of shape ``(d,)``; map over collocation points with
``jax.vmap``. A *field* is a callable ``f(x)`` returning a scalar ``()`` or a vector ``(m,)``.
By pinnx convention time, when present, is the LAST input coordinate.

Why forward mode. A PINN residual needs a few derivatives of a network with only a handful of
inputs (d = 2 or 3) but thousands of parameters, and training differentiates the residual once
more with respect to those parameters. Input derivatives are therefore taken by nested
``jax.jvp`` (one directional derivative per level), never by nested reverse mode.
``benchmarks/operators.py`` (Burgers residual u_t + u u_x - nu u_xx of a 4x64 tanh MLP at 2000
points, float32, jitted, medians on a shared 2-core CPU) measured for one SGD step on the mean
squared residual: nested jvp 33.6 ms, ``jax.hessian`` for u_xx 217 ms (6.4x slower; 7.8x in a
second run), grad-of-grad 35.8 ms (1.07x), Taylor mode (``jax.experimental.jet``) 37.4 ms
(1.11x); evaluating the residual alone, jet was 1.4-2.2x slower than nested jvp.

Jet does not pay off at the orders PINNs use: for `derivatives` at orders 1-4 it was
1.3-2.3x slower to evaluate, and in the parameter gradient it took 0.86-1.6x nested jvp's
time over two runs (at par at best). It also lacks rules some fields need (it fails on
``jax.nn.softplus`` in jax 0.10). For `laplacian` (d = 3) a Python loop of one
jvp-of-jvp per coordinate was fastest in the parameter gradient: ``jax.vmap`` over
coordinates was 2.3-3.1x slower (it turns every matmul into a batched one, though it
evaluates ~15% faster), vmapped jet 2.3-3.7x, the trace of ``jacfwd(jacfwd)`` (all d^2
entries) 4.8-8.3x and the trace of ``jax.hessian`` 5.3-9.1x slower.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from pinnx import operators as ops
    >>> u = lambda z: jnp.sin(z[0]) * jnp.exp(z[1])          # u(x, t)
    >>> u_xx = jax.vmap(lambda p: ops.partial(u, p, (0, 0)))
    >>> u_xx(jnp.zeros((5, 2))).shape
    (5,)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = [
    "partial",
    "derivatives",
    "grad",
    "jacobian",
    "divergence",
    "laplacian",
    "time_derivative",
    "hessian",
]

Field = Callable[[Float[Array, " d"]], Float[Array, "*m"]]


# --------------------------------------------------------------------------- helpers


def _check_point(x: Array) -> int:
    """Return d for a single point x of shape (d,), else raise ValueError."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 1:
        raise ValueError(
            f"x must be a single point of shape (d,), got shape {shape}; "
            "use jax.vmap to apply an operator over many points"
        )
    return shape[0]


def _check_dim(dim: int, d: int) -> int:
    """Normalise a (possibly negative) coordinate index into range(d), else raise ValueError."""
    dim = operator.index(dim)
    if not -d <= dim < d:
        raise ValueError(
            f"dims index {dim} is out of range for a point with d={d} coordinates "
            f"(expected an integer in [{-d}, {d - 1}])"
        )
    return dim % d


def _check_dims(dims: int | Sequence[int], d: int) -> tuple[int, ...]:
    if isinstance(dims, Sequence):
        return tuple(_check_dim(i, d) for i in dims)
    return (_check_dim(dims, d),)


def _check_order(order: int, name: str = "order") -> int:
    order = operator.index(order)
    if order < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {order}")
    return order


def _basis(x: Array, dim: int) -> Array:
    # Unit tangent with x's dtype (jvp requires tangent and primal dtypes to match). Built from
    # x's shape, not zeros_like(x), so under vmap it stays an unbatched constant.
    return jnp.zeros(x.shape, x.dtype).at[dim].set(1)


def _directional(g: Callable[[Array], Array], v: Array) -> Callable[[Array], Array]:
    """z -> d/ds g(z + s v) at s = 0, one forward-mode pass."""
    return lambda z: jax.jvp(g, (z,), (v,))[1]


def _distinct(dims: tuple[int, ...], name: str) -> None:
    if len(set(dims)) != len(dims):
        raise ValueError(f"{name}: dims must name distinct coordinates, got {dims}")


# --------------------------------------------------------------------------- operators


def partial(f: Field, x: Float[Array, " d"], dims: int | Sequence[int]) -> Float[Array, "*m"]:
    """Mixed partial derivative of a field at one point, by nested forward mode.

    Computes d^n f / (dx_{dims[0]} ... dx_{dims[n-1]}) (x) with n = len(dims), as n nested
    ``jax.jvp`` along unit vectors. ``dims=()`` returns f(x); an int is a first derivative.

    Args:
        f: field, maps a point of shape (d,) to a scalar () or vector (m,).
        x: the point, shape (d,).
        dims: coordinate index, or tuple of indices (repeats allowed, negatives count from
            the end), e.g. ``(0, 0)`` for f_xx, ``(0, 1)`` for f_xy.

    Returns:
        The derivative, with f(x)'s shape and dtype.

    Raises:
        ValueError: if x is not 1-D or an index is outside [-d, d).

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> f = lambda z: z[0] ** 3 * z[1]
        >>> print(ops.partial(f, jnp.array([2.0, 5.0]), (0, 0, 1)))   # 6 x
        12.0
    """
    d = _check_point(x)
    g = f
    for i in _check_dims(dims, d):
        g = _directional(g, _basis(x, i))
    return jnp.asarray(g(x))


def derivatives(
    f: Field, x: Float[Array, " d"], dim: int, order: int
) -> tuple[Float[Array, "*m"], ...]:
    """All derivatives f, f', ..., f^(order) along one coordinate, in one nested pass.

    With e the unit vector of coordinate ``dim``, returns (d^k/ds^k f(x + s e) at s = 0) for
    k = 0..order. Level k+1 is one ``jax.jvp`` of level k, which returns the lower
    derivatives as its primal outputs, so nothing is recomputed (e.g. Burgers'
    u_t + u u_x - nu u_xx gets u, u_x, u_xx from one call). Nested jvp was chosen over
    Taylor mode (``jax.experimental.jet``): for order <= 4 jet evaluated 1.3-2.3x slower
    and was at best at par in the parameter gradient (module docstring).

    Args:
        f: field, maps a point of shape (d,) to a scalar () or vector (m,).
        x: the point, shape (d,).
        dim: the coordinate (negative counts from the end).
        order: highest derivative order, >= 0.

    Returns:
        Tuple of order + 1 arrays, each with f(x)'s shape and dtype.

    Raises:
        ValueError: if x is not 1-D, dim is outside [-d, d) or order < 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> u, u_x, u_xx = ops.derivatives(lambda z: jnp.sin(z[0]), jnp.array([0.5]), 0, 2)
        >>> [round(float(v), 3) for v in (u, u_x, u_xx)]   # sin, cos, -sin at 0.5
        [0.479, 0.878, -0.479]
    """
    d = _check_point(x)
    e = _basis(x, _check_dim(dim, d))
    order = _check_order(order)

    def lift(g: Callable[[Array], tuple[Array, ...]]) -> Callable[[Array], tuple[Array, ...]]:
        def h(z: Array) -> tuple[Array, ...]:
            primals, tangents = jax.jvp(g, (z,), (e,))
            return (*primals, tangents[-1])

        return h

    g: Callable[[Array], tuple[Array, ...]] = lambda z: (jnp.asarray(f(z)),)  # noqa: E731
    for _ in range(order):
        g = lift(g)
    return g(x)


def jacobian(f: Field, x: Float[Array, " d"]) -> Float[Array, "*m d"]:
    """Jacobian of a field at one point, by forward mode (``jax.jacfwd``).

    J[i, j] = d f_i / d x_j: d jvps, the cheap direction when d is small (PINN inputs).

    Args:
        f: field, maps a point of shape (d,) to a scalar () or vector (m,).
        x: the point, shape (d,).

    Returns:
        Shape (m, d) for a vector field, (d,) for a scalar field; x's dtype.

    Raises:
        ValueError: if x is not 1-D.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> print(ops.jacobian(lambda z: jnp.stack([z[0] * z[1], z[1]]), jnp.array([1.0, 2.0])))
        [[2. 1.]
         [0. 1.]]
    """
    _check_point(x)
    return jax.jacfwd(f)(x)


def grad(f: Field, x: Float[Array, " d"]) -> Float[Array, "*m d"]:
    """Gradient of a scalar field at one point, by forward mode.

    (grad f)_j = d f / d x_j. For a vector field this is the Jacobian (m, d), as in
    `jacobian`.

    Args:
        f: field, maps a point of shape (d,) to a scalar () or vector (m,).
        x: the point, shape (d,).

    Returns:
        Shape (d,) for a scalar field, (m, d) for a vector field; x's dtype.

    Raises:
        ValueError: if x is not 1-D.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> print(ops.grad(lambda z: z[0] ** 2 + 3 * z[1], jnp.array([1.0, 0.0])))
        [2. 3.]
    """
    _check_point(x)
    return jax.jacfwd(f)(x)


def divergence(
    f: Field, x: Float[Array, " d"], dims: Sequence[int] | None = None
) -> Float[Array, ""]:
    """Divergence of a vector field at one point, one jvp per component.

    div f = sum_i d f_i / d x_{dims[i]}: component i is differentiated along coordinate
    ``dims[i]`` (e.g. ``dims=(0, 1)`` for the spatial divergence of a velocity field of
    (x, y, t)).

    Args:
        f: vector field, maps a point of shape (d,) to shape (m,).
        x: the point, shape (d,).
        dims: m distinct coordinates, one per component; default ``range(m)``.

    Returns:
        Scalar, x's dtype.

    Raises:
        ValueError: if x is not 1-D, f(x) is not a vector, len(dims) != m, an index is out of
            range or repeated.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> print(ops.divergence(lambda z: z ** 2, jnp.array([1.0, 2.0])))      # 2x + 2y
        6.0
    """
    d = _check_point(x)
    out = jax.eval_shape(f, x)  # m without evaluating f
    if len(out.shape) != 1 or out.shape[0] == 0:
        raise ValueError(
            f"divergence needs a vector field f(x) of shape (m,), m >= 1, got shape {out.shape}"
        )
    m = out.shape[0]
    if m > d:
        raise ValueError(
            f"divergence: f(x) has m={m} components but x has only d={d} coordinates "
            "(each component needs its own coordinate, so m <= d)"
        )
    dims = tuple(range(m)) if dims is None else tuple(dims)
    if len(dims) != m:
        raise ValueError(
            f"divergence needs one coordinate per component: f(x) has m={m} components "
            f"but dims={dims} has {len(dims)} entries"
        )
    dims = tuple(_check_dim(i, d) for i in dims)
    _distinct(dims, "divergence")
    # One jvp per component, looped: like laplacian, vmapped jvps are slower under grad.
    total = None
    for comp, i in enumerate(dims):
        term = jax.jvp(f, (x,), (_basis(x, i),))[1][comp]
        total = term if total is None else total + term
    return total


def laplacian(
    f: Field, x: Float[Array, " d"], dims: Sequence[int] | None = None
) -> Float[Array, "*m"]:
    """Laplacian of a scalar or vector (componentwise) field at one point.

    Delta f = sum_{i in dims} d^2 f / d x_i^2, one jvp-of-jvp per coordinate: only the d
    diagonal Hessian entries are formed. A Python loop measured faster than ``jax.vmap``
    over coordinates in the parameter gradient (module docstring).

    Args:
        f: field, maps a point of shape (d,) to a scalar () or vector (m,).
        x: the point, shape (d,).
        dims: distinct coordinates to sum over; default all d (pass e.g. ``(0, 1)`` to skip
            the time coordinate of (x, y, t)).

    Returns:
        f(x)'s shape and dtype.

    Raises:
        ValueError: if x is not 1-D, dims is empty, out of range or has repeats.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> print(ops.laplacian(lambda z: z[0] ** 2 + z[1] ** 3, jnp.array([1.0, 2.0])))  # 2 + 6y
        14.0
    """
    d = _check_point(x)
    dims = tuple(range(d)) if dims is None else _check_dims(dims, d)
    if not dims:
        raise ValueError("laplacian: dims must name at least one coordinate, got ()")
    _distinct(dims, "laplacian")
    total = None
    for i in dims:
        e = _basis(x, i)
        term = _directional(_directional(f, e), e)(x)
        total = term if total is None else total + term
    return jnp.asarray(total)


def time_derivative(
    f: Field, x: Float[Array, " d"], order: int = 1, time_dim: int = -1
) -> Float[Array, "*m"]:
    """Derivative of a field along the time coordinate, d^k f / dt^k.

    Equal to ``partial(f, x, (time_dim,) * order)``; pinnx puts time last, hence the
    default ``time_dim=-1``.

    Args:
        f: field, maps a point of shape (d,) to a scalar () or vector (m,).
        x: the point, shape (d,), time at index ``time_dim``.
        order: derivative order k >= 0 (0 returns f(x)).
        time_dim: index of the time coordinate.

    Returns:
        f(x)'s shape and dtype.

    Raises:
        ValueError: if x is not 1-D, time_dim is out of range or order < 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> print(ops.time_derivative(lambda z: z[0] * z[1] ** 2, jnp.array([3.0, 2.0])))  # 2xt
        12.0
    """
    d = _check_point(x)
    return partial(f, x, (_check_dim(time_dim, d),) * _check_order(order))


def hessian(f: Field, x: Float[Array, " d"]) -> Float[Array, "*m d d"]:
    """Hessian of a field at one point, forward-over-forward (``jacfwd`` of ``jacfwd``).

    H[j, k] = d^2 f / (d x_j d x_k). Forms all d^2 entries; for a Laplacian or a few second
    derivatives `laplacian` / `partial` are cheaper.

    Args:
        f: field, maps a point of shape (d,) to a scalar () or vector (m,).
        x: the point, shape (d,).

    Returns:
        Shape (d, d) for a scalar field ((m, d, d) for a vector field); x's dtype.

    Raises:
        ValueError: if x is not 1-D.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx import operators as ops
        >>> print(ops.hessian(lambda z: z[0] ** 2 * z[1], jnp.array([1.0, 2.0])))
        [[4. 2.]
         [2. 0.]]
    """
    _check_point(x)
    return jax.jacfwd(jax.jacfwd(f))(x)
