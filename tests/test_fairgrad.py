"""FairGrad: its defining condition G w = w^(-1/alpha), Nash-MTL at alpha = 1, the closed
form for orthogonal rows, homogeneity, and the reference procedure (LibMTL's
scipy.optimize.least_squares on G w - w^(-1/alpha))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st
from strategies import examples, flatten, task_grads

import pinnx
from pinnx.combine.functional import fairgrad_weights
from pinnx.tasks import normalized_gram

ALPHAS = [0.5, pytest.param(1.0, marks=pytest.mark.slow), 2.0,
              pytest.param(5.0, marks=pytest.mark.slow)]


def _weights(grads, alpha, reg=0.0):
    """FairGrad's loss weights w (on the rows, w_k = b_k / ||g_k||) and the update d."""
    norms, cos = normalized_gram(grads)
    scaled, info = fairgrad_weights(norms, cos, alpha, reg=reg)
    b = np.asarray(scaled.beta * scaled.scale, np.float64)
    n = np.asarray(norms, np.float64)
    w = np.where(n > 0, b / np.where(n > 0, n, 1), 0)
    d = w @ flatten(grads)
    return w, d, info


@pytest.mark.parametrize("alpha", ALPHAS)
@examples(25)
@given(data=st.data())
def test_progress_of_every_task_is_its_fair_share(alpha, data):
    """g_k . d = w_k^(-1/alpha) for every task (the alpha-fair optimality condition), for
    linearly independent rows in float64; every task makes positive progress."""
    grads, _, _ = data.draw(task_grads(max_k=3, dtype=jnp.float64, degenerate=False,
                                       layouts=({"w": (2, 2), "b": (2,)},)))
    rows = flatten(grads)
    if np.linalg.matrix_rank(rows, tol=1e-3 * np.linalg.norm(rows)) < rows.shape[0]:
        return  # the condition has no solution without the ridge
    w, d, info = _weights(grads, alpha)
    progress = rows @ d
    assert bool(info.converged)
    np.testing.assert_allclose(progress * w ** (1 / alpha), 1.0, rtol=1e-6)
    assert np.all(progress > 0)


@examples(25)
@given(data=st.data())
def test_alpha_one_is_nash_mtl(data):
    grads, layout, dtype = data.draw(task_grads(max_k=4, dtype=jnp.float64))
    params = pinnx.testing.params_like(layout, dtype)
    ours, _ = pinnx.fairgrad(alpha=1.0).update(grads, pinnx.fairgrad().init(params), params)
    nash, _ = pinnx.nash_mtl().update(grads, pinnx.nash_mtl().init(params), params)
    scale = max(np.max(np.linalg.norm(flatten(grads), axis=1)), 1e-300)
    # both solve the same strictly convex problem to their tolerance; on nearly singular
    # rows (parallel and opposite ones, where the ridge alone bounds the weights) the
    # update is sensitive to where each solver stops
    np.testing.assert_allclose(flatten(jax.tree.map(lambda x: x[None], ours)) / scale,
                               flatten(jax.tree.map(lambda x: x[None], nash)) / scale,
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_orthogonal_rows_closed_form(alpha):
    """G = diag(n^2): n_k^2 w_k = w_k^(-1/alpha), so w_k = n_k^(-2 alpha / (1 + alpha))."""
    n = np.array([0.3, 2.0, 7.0])
    grads = {"w": jnp.asarray(np.diag(n))}
    w, _, info = _weights(grads, alpha)
    np.testing.assert_allclose(w, n ** (-2 * alpha / (1 + alpha)), rtol=1e-9)
    assert bool(info.converged)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_homogeneous_of_degree_one_minus_alpha_over_one_plus_alpha(alpha):
    rng = np.random.default_rng(0)
    grads = {"w": jnp.asarray(rng.normal(size=(3, 5)))}
    _, d1, _ = _weights(grads, alpha)
    for s in (1e-8, 1e8):
        _, ds, _ = _weights({"w": grads["w"] * s}, alpha)
        np.testing.assert_allclose(ds, d1 * s ** ((1 - alpha) / (1 + alpha)), rtol=1e-7)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_agrees_with_the_reference_procedure(alpha):
    """LibMTL's FairGrad: scipy.optimize.least_squares on G w - w^(-1/alpha) from w = 1/K,
    w in [0, inf). Random well-conditioned problems, float64."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        k = int(rng.integers(2, 6))
        rows = rng.normal(size=(k, 8)) * rng.uniform(0.1, 10, size=(k, 1))
        gram = rows @ rows.T
        ref = scipy.optimize.least_squares(
            lambda x, gram=gram: gram @ x - np.power(1 / x, 1 / alpha), np.ones(k) / k,
            bounds=(0, np.inf), xtol=1e-15, ftol=1e-15, gtol=1e-15).x
        w, d, _ = _weights({"w": jnp.asarray(rows)}, alpha)
        np.testing.assert_allclose(w, ref, rtol=1e-6)
        np.testing.assert_allclose(d, ref @ rows, rtol=1e-6, atol=1e-9 * np.abs(d).max())


def test_zero_rows_get_no_weight_and_bad_alpha_is_refused():
    grads = {"w": jnp.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])}
    w, _, info = _weights(grads, 2.0)
    assert w[1] == 0 and np.all(w[[0, 2]] > 0) and bool(info.converged)
    with pytest.raises(ValueError, match="alpha must be positive"):
        pinnx.fairgrad(alpha=0.0)
