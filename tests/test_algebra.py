"""The `|` algebra: composition rules, errors at build time, optax interoperability."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pinnx.combine as pc

pytestmark = pytest.mark.standard_promotion

PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros(())}
GRADS = {"w": jnp.array([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.0]]), "b": jnp.array([1.0, -2.0])}


def test_kinds_and_flattening():
    chain = pc.cosine_gate(main=0) | (pc.pcgrad() | optax.adam(1e-3))
    assert isinstance(chain, pc.Chain) and isinstance(chain, optax.GradientTransformationExtraArgs)
    assert [type(p).__name__ for p in chain.parts[:2]] == ["TaskTransform", "Aggregator"]
    assert len(chain.parts) == 3 and chain.has_aggregator
    assert "cosine_gate" in repr(chain) and "pcgrad" in repr(chain)
    rows_only = pc.cosine_gate(main=0) | pc.per_task(optax.identity())
    assert not rows_only.has_aggregator


def test_chain_equals_sequential_application():
    chain = pc.cosine_gate(main=0) | pc.sum() | optax.scale(-0.5)
    out, _ = chain.update(GRADS, chain.init(PARAMS), PARAMS)
    gated, _ = pc.cosine_gate(main=0).update(GRADS, None)
    summed, _ = pc.sum().update(gated, None)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, -0.5 * b), out, summed)


def test_plain_optax_after_aggregator_and_apply_updates():
    opt = pc.pcgrad() | optax.clip_by_global_norm(1.0) | optax.sgd(0.1)
    state = opt.init(PARAMS)
    updates, state = jax.jit(opt.update)(GRADS, state, PARAMS)
    new = optax.apply_updates(PARAMS, updates)
    assert jax.tree.structure(new) == jax.tree.structure(PARAMS)
    assert float(optax.tree.norm(updates)) <= 0.1 + 1e-6


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: pc.cosine_gate(main=0) | optax.adam(1e-3), "no aggregator before"),
        (lambda: pc.per_task(optax.identity()) | optax.adam(1e-3), "no aggregator before"),
        (lambda: pc.pcgrad() | pc.sum(), "exactly one aggregator, got two"),
        (lambda: pc.sum() | optax.adam(1e-3) | pc.mean(), "exactly one aggregator"),
        (lambda: optax.clip(1.0) | pc.pcgrad(), "comes before the aggregator"),
        (lambda: optax.clip(1.0) | (pc.cosine_gate(main=0) | pc.mean()),
         "comes before the aggregator"),
        (lambda: pc.sum() | pc.cosine_gate(main=0), "comes after the aggregator"),
    ],
)
def test_composition_errors_at_build_time(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_plain_optax_on_the_left_of_a_task_chain_is_rejected_with_advice():
    with pytest.raises(ValueError, match=r"pinnx\.per_task"):
        optax.clip(1.0) | pc.pcgrad()


def test_or_with_non_transform_is_a_type_error():
    with pytest.raises(TypeError):
        pc.pcgrad() | 3


def test_as_aggregator_and_as_task_transform():
    def mine():
        def update(updates, state, params=None):
            return jax.tree.map(lambda g: g[0], updates), state

        return optax.GradientTransformation(lambda p: optax.EmptyState(), update)

    opt = pc.as_task_transform(optax.identity()) | pc.as_aggregator(mine(), "first()")
    assert "first()" in repr(opt)
    opt = opt | optax.scale(2.0)
    out, _ = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    np.testing.assert_allclose(out["w"], [2.0, 0.0, 4.0])


def test_inject_hyperparams_after_the_aggregator():
    opt = pc.pcgrad() | optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    state = opt.init(PARAMS)
    u1, state = opt.update(GRADS, state, PARAMS)
    state[1].hyperparams["learning_rate"] = jnp.asarray(0.2)
    u2, _ = opt.update(GRADS, state, PARAMS)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(2 * a, b, rtol=1e-6), u1, u2)


def test_state_from_another_optimizer_is_rejected():
    opt = pc.sum() | optax.sgd(0.1)
    with pytest.raises(ValueError, match="2 parts but the state has"):
        opt.update(GRADS, (optax.EmptyState(),), PARAMS)


@pytest.mark.parametrize(
    "grads, message",
    [
        ({"w": jnp.ones((2, 3)), "b": jnp.ones((3,))}, "disagree on the number of tasks"),
        ({"w": jnp.ones((2, 3)), "b": jnp.ones(())}, "leading task axis"),
        ({}, "no array leaves"),
    ],
)
def test_malformed_task_rows(grads, message):
    for opt in (pc.sum(), pc.pcgrad(), pc.cosine_gate(main=0)):
        with pytest.raises(ValueError, match=message):
            opt.update(grads, opt.init(None))


def test_task_count_argument():
    opt = pc.per_task(optax.scale_by_adam()) | pc.mean()
    with pytest.raises(ValueError, match="the string"):
        opt.init(PARAMS, tasks="pde")
    with pytest.raises(ValueError, match="at least 1"):
        opt.init(PARAMS, tasks=0)


def test_per_task_keeps_its_task_count_inside_a_chain():
    """per_task(tx, tasks=K) inside a `|` chain initialised without tasks= uses its own K."""
    chain = pc.per_task(optax.scale_by_adam(), tasks=3) | pc.mean()
    state = chain.init({"w": jnp.zeros(2)})
    assert state[0].inner.mu["w"].shape == (3, 2)
