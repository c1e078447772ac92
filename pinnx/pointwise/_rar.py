"""Residual-based adaptive sampling: RAR (greedy), RAR-D (add by density), RAD (resample).

Wu, Zhu, Tan, Kartha, Lu 2023 compare: from a large candidate set S, with residual
magnitude e(x) = |r(x)| under the current model,

- RAR (greedy, Lu et al. 2021): add the m candidates with the largest e;
- RAR-D: add m candidates drawn without replacement with probability
  p(x) ∝ e(x)^k / mean_S(e^k) + c (paper default k = 2, c = 0);
- RAD: replace the whole set by N candidates drawn from the same density (default k = 1,
  c = 1).

RAD keeps the set's size, so it can run *inside* `pinnx.fit`: `rad_sampler` is a
`pinnx.ModelSampler`, a data hook that `fit` calls with the model being trained at every
resample step, in the compiled loop:

    data = rad_sampler(problem.sample, losses, domain_candidates, task="pde")
    model, state, _ = pinnx.fit(losses, model, opt, data, steps=20_000, resample_every=2000)

RAR and RAR-D grow the set, which changes the batch shape, so they run *between* rounds of
`fit`, which resumes from its state:

    for r in range(rounds):
        model, state, _ = pinnx.fit(losses, model, opt, freeze_tasks(sample, {"pde": pts}),
                                    steps=1000, resample_every=100, opt_state=state)
        batch = rar_d(losses, model, batch, candidates(key_r), key_r, task="pde", m=50)
        pts = batch["pde"]

`freeze_tasks` keeps the adaptive set fixed while `fit` resamples the other tasks. A growing
set changes the batch shape: `fit` compiles once per round (it compiles per call anyway).
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..residuals import Losses
from ..sampling import ModelSampler

__all__ = ["residual_magnitude", "rar_density", "rar", "rar_d", "rad", "rad_sampler"]


def _check(losses: Any, batch: Mapping[str, Any], candidates: Any, task: str) -> Array:
    if not isinstance(losses, Losses):
        raise ValueError("adaptive sampling needs per-point residuals: a "
                         f"pinnx.residuals.Losses, got {type(losses).__name__}")
    if task not in losses.terms:
        raise ValueError(f"unknown task {task!r}; the tasks are {sorted(losses.terms)}")
    if task not in batch:
        raise ValueError(f"the batch has no entry {task!r}")
    points = batch[task]
    candidates = jnp.asarray(candidates)
    if jnp.ndim(points) != 2:
        raise ValueError(f"adaptive sampling works on tasks with an (N, d) points entry; "
                         f"task {task!r} has {type(points).__name__} {jnp.shape(points)}")
    if candidates.ndim != 2 or candidates.shape[1] != points.shape[1]:
        raise ValueError(f"candidates must be (M, {points.shape[1]}), got {candidates.shape}")
    # traced candidates (drawn inside fit's loop) cannot be read: checked where concrete
    if not isinstance(candidates, jax.core.Tracer) and not np.all(
            np.isfinite(np.asarray(candidates))):
        raise ValueError("candidates hold non-finite values")
    return candidates.astype(jnp.result_type(points))


def residual_magnitude(losses: Losses, model: Any, points: Float[Array, "m d"], *, task: str
                       ) -> Float[Array, " m"]:
    """e(x) = |r(x)| of one task at the given points (Euclidean norm of vector residuals).

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(
        ...     pde=pinnx.residuals.pde(lambda u, x: u(x) - x[0] ** 2))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 8)[:, None]}
        >>> candidates = jnp.linspace(-1.0, 1.0, 101)[:, None]
        >>> from pinnx.pointwise import residual_magnitude
        >>> residual_magnitude(losses, net, candidates, task="pde").shape   # (M,)
        (101,)
    """
    r = losses.terms[task](model, points)
    return jnp.sqrt(jnp.sum(jnp.reshape(r**2, (r.shape[0], -1)), axis=1))


def rar_density(e: Float[Array, " m"], k: float, c: float) -> Float[Array, " m"]:
    """Sampling probabilities p ∝ e^k / mean(e^k) + c, normalised to sum to 1.

    Uniform when e^k is zero everywhere (and c = 0) or not finite.

    Examples:
        >>> import jax.numpy as jnp
        >>> from pinnx.pointwise import rar_density
        >>> p = rar_density(jnp.array([0.0, 1.0, 3.0]), k=1.0, c=0.0)
        >>> [round(v, 3) for v in p.tolist()]
        [0.0, 0.25, 0.75]
    """
    if k < 0 or c < 0:
        raise ValueError(f"RAR density needs k >= 0 and c >= 0, got k={k}, c={c}")
    ek = e ** jnp.asarray(k, e.dtype)
    mean = jnp.mean(ek)
    ok = (mean > 0) & jnp.isfinite(mean)
    dens = jnp.where(ok, ek / jnp.where(ok, mean, jnp.ones_like(mean)), jnp.zeros_like(ek))
    dens = dens + jnp.asarray(c, e.dtype)
    total = jnp.sum(dens)
    good = (total > 0) & jnp.isfinite(total)
    uniform = jnp.full_like(dens, 1 / dens.shape[0])
    return jnp.where(good, dens / jnp.where(good, total, jnp.ones_like(total)), uniform)


def rar(
    losses: Losses,
    model: Any,
    batch: Mapping[str, Any],
    candidates: Float[Array, "m d"],
    *,
    task: str,
    m: int,
) -> dict[str, Any]:
    """RAR (greedy): append the `m` candidates with the largest |residual| to `task`'s points.

    Args:
        losses: the loss function (per-point residuals of `task`).
        model: the current model.
        batch: the current batch; `batch[task]` is an (N, d) array.
        candidates: (M, d) candidate points, M >= m (e.g. a fresh uniform draw).
        task: the task whose points grow.
        m: the number of points to add.

    Returns:
        The batch with `batch[task]` of shape (N + m, d), the new points last.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(
        ...     pde=pinnx.residuals.pde(lambda u, x: u(x) - x[0] ** 2))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 8)[:, None]}
        >>> candidates = jnp.linspace(-1.0, 1.0, 101)[:, None]
        >>> from pinnx.pointwise import rar
        >>> rar(losses, net, batch, candidates, task="pde", m=4)["pde"].shape   # N + m
        (12, 1)

    References:
        Lu, Meng, Mao, Karniadakis. "DeepXDE: A deep learning library for solving
        differential equations". SIAM Review 63, 2021. https://arxiv.org/abs/1907.04502
    """
    candidates = _check(losses, batch, candidates, task)
    if not 0 < m <= candidates.shape[0]:
        raise ValueError(f"m must lie in [1, {candidates.shape[0]}] (the candidates), got {m}")
    e = residual_magnitude(losses, model, candidates, task=task)
    _, idx = jax.lax.top_k(e, m)
    return dict(batch) | {task: jnp.concatenate([batch[task], candidates[idx]])}


def rar_d(
    losses: Losses,
    model: Any,
    batch: Mapping[str, Any],
    candidates: Float[Array, "m d"],
    key: PRNGKeyArray,
    *,
    task: str,
    m: int,
    k: float = 2.0,
    c: float = 0.0,
) -> dict[str, Any]:
    """RAR-D: append `m` candidates drawn (without replacement) with p ∝ e^k/mean(e^k) + c.

    Args:
        losses: as for `rar`.
        model: as for `rar`.
        batch: as for `rar`.
        candidates: as for `rar`.
        task: as for `rar`.
        m: as for `rar`.
        key: PRNG key of the draw (same key, same points).
        k: the residual exponent (paper default for RAR-D: 2).
        c: the uniform share (paper default for RAR-D: 0).

    Returns:
        The batch with `batch[task]` of shape (N + m, d), the new points last.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(
        ...     pde=pinnx.residuals.pde(lambda u, x: u(x) - x[0] ** 2))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 8)[:, None]}
        >>> candidates = jnp.linspace(-1.0, 1.0, 101)[:, None]
        >>> from pinnx.pointwise import rar_d
        >>> new = rar_d(losses, net, batch, candidates, jax.random.key(1), task="pde", m=4)
        >>> new["pde"].shape   # N + m
        (12, 1)

    References:
        Wu, Zhu, Tan, Kartha, Lu. "A comprehensive study of non-adaptive and residual-based
        adaptive sampling for physics-informed neural networks". Comput. Methods Appl. Mech.
        Eng. 403, 2023. https://arxiv.org/abs/2207.10289
    """
    candidates = _check(losses, batch, candidates, task)
    if not 0 < m <= candidates.shape[0]:
        raise ValueError(f"m must lie in [1, {candidates.shape[0]}] (the candidates), got {m}")
    p = rar_density(residual_magnitude(losses, model, candidates, task=task), k, c)
    idx = jax.random.choice(key, candidates.shape[0], (m,), replace=False, p=p)
    return dict(batch) | {task: jnp.concatenate([batch[task], candidates[idx]])}


def rad(
    losses: Losses,
    model: Any,
    batch: Mapping[str, Any],
    candidates: Float[Array, "m d"],
    key: PRNGKeyArray,
    *,
    task: str,
    n: int | None = None,
    k: float = 1.0,
    c: float = 1.0,
) -> dict[str, Any]:
    """RAD: replace `task`'s points by `n` candidates drawn with p ∝ e^k/mean(e^k) + c.

    Args:
        losses: as for `rar_d`.
        model: as for `rar_d`.
        batch: as for `rar_d`.
        candidates: as for `rar_d`.
        key: as for `rar_d`.
        task: as for `rar_d`.
        n: the new number of points (default: the current one, so shapes stay fixed and
            SA weights can be carried over with `sa_transfer`).
        k: the density's exponent (paper default for RAD: 1).
        c: the density's uniform share (paper default for RAD: 1).

    Returns:
        The batch with `batch[task]` of shape (n, d).

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(
        ...     pde=pinnx.residuals.pde(lambda u, x: u(x) - x[0] ** 2))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 8)[:, None]}
        >>> candidates = jnp.linspace(-1.0, 1.0, 101)[:, None]
        >>> from pinnx.pointwise import rad
        >>> rad(losses, net, batch, candidates, jax.random.key(1), task="pde")["pde"].shape
        (8, 1)

    References:
        Wu, Zhu, Tan, Kartha, Lu 2023 (see `rar_d`). https://arxiv.org/abs/2207.10289
    """
    candidates = _check(losses, batch, candidates, task)
    n = batch[task].shape[0] if n is None else n
    if not 0 < n <= candidates.shape[0]:
        raise ValueError(f"n must lie in [1, {candidates.shape[0]}] (the candidates), got {n}")
    p = rar_density(residual_magnitude(losses, model, candidates, task=task), k, c)
    idx = jax.random.choice(key, candidates.shape[0], (n,), replace=False, p=p)
    return dict(batch) | {task: candidates[idx]}


def rad_sampler(
    sample: Callable[[PRNGKeyArray], Mapping[str, Any]],
    losses: Losses,
    candidates: Callable[[PRNGKeyArray], Float[Array, "m d"]] | Float[Array, "m d"],
    *,
    task: str,
    k: float = 1.0,
    c: float = 1.0,
) -> ModelSampler:
    """RAD as `pinnx.fit`'s data hook: every resample, draw `task`'s points by residual.

    At each resample step `fit` calls it with a fresh key and the current model; it draws a
    batch with `sample`, then replaces `batch[task]` by as many points drawn from the
    candidates with p ∝ e^k / mean(e^k) + c (`rad`). The batch keeps its shapes, so the
    compiled loop is reused; the first batch (step 0) is drawn from the initial model.

    Args:
        sample: `sample(key) -> batch`, e.g. `problem.sample` (its `task` entry sets n).
        losses: the loss function (per-point residuals of `task`).
        candidates: `candidates(key) -> (M, d)` (a fresh draw per resample, e.g.
            `lambda key: domain.sample_interior(key, 10_000)`) or a fixed (M, d) array;
            M must be at least `batch[task]`'s n.
        task: the task whose points are drawn by residual.
        k: the density's exponent (paper default for RAD: 1).
        c: the density's uniform share (paper default for RAD: 1).

    Returns:
        A `pinnx.ModelSampler` to pass as `fit`'s `data`, with `resample_every`.

    Examples:
        >>> import jax, jax.numpy as jnp, pinnx
        >>> losses = pinnx.residuals.losses(
        ...     pde=pinnx.residuals.pde(lambda u, x: u(x) - x[0] ** 2))
        >>> net = pinnx.nn.MLP(1, "scalar", width=8, depth=1, key=jax.random.key(0))
        >>> batch = {"pde": jnp.linspace(-1.0, 1.0, 8)[:, None]}
        >>> candidates = jnp.linspace(-1.0, 1.0, 101)[:, None]
        >>> from pinnx.pointwise import rad_sampler
        >>> data = rad_sampler(lambda key: batch, losses, candidates, task="pde")
        >>> data(jax.random.key(1), net)["pde"].shape   # fit calls it with the model
        (8, 1)

        In training, with fresh candidates at every resample:
        `pinnx.fit(losses, model, opt, rad_sampler(problem.sample, losses, lambda key:
        domain.sample_interior(key, 10_000), task="pde"), steps=20_000,
        resample_every=1000)`.

    References:
        Wu, Zhu, Tan, Kartha, Lu 2023 (see `rar_d`). https://arxiv.org/abs/2207.10289
    """
    if not callable(sample):
        raise ValueError(f"rad_sampler needs a sample(key) -> batch function, got {sample!r}")
    if not isinstance(losses, Losses):
        raise ValueError("adaptive sampling needs per-point residuals: a "
                         f"pinnx.residuals.Losses, got {type(losses).__name__}")
    if task not in losses.terms:
        raise ValueError(f"unknown task {task!r}; the tasks are {sorted(losses.terms)}")
    rar_density(jnp.ones((1,)), k, c)  # validates k and c now, not at the first resample
    fixed = None if callable(candidates) else jnp.asarray(candidates)

    def draw(key: PRNGKeyArray, model: Any) -> dict[str, Any]:
        k_batch, k_cand, k_pick = jax.random.split(key, 3)
        cands = fixed if fixed is not None else candidates(k_cand)
        return rad(losses, model, sample(k_batch), cands, k_pick, task=task, k=k, c=c)

    return ModelSampler(draw)
