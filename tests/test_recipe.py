"""Recipes: every problem states its own, their fields are valid, and the CLI reads them."""

import dataclasses
import inspect

import numpy as np
import optax
import pytest

from pinnx import cli, train
from pinnx.problems import PROBLEMS, SCHEDULES, Recipe, burgers, klein_gordon

VALID = dict(combiner="pcgrad | adam", steps=100, width=8, depth=2, n_pde=16, lr=1e-3,
             resample_every=10, schedule="warmup_cosine")


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_problem_has_a_valid_recipe(name):
    factory = PROBLEMS[name]
    recipe = factory.recipe
    assert isinstance(recipe, Recipe)
    # plain data: a later TOML file holds exactly these fields
    assert all(isinstance(v, str | int | float) for v in dataclasses.asdict(recipe).values())
    assert recipe.schedule in SCHEDULES
    # the factory's default batch is the recipe's
    assert inspect.signature(factory).parameters["n_pde"].default == recipe.n_pde
    # the chain parses and its schedule gives finite rates over the run
    cli.parse_combiner(recipe.combiner, recipe.learning_rate())
    rates = [float(recipe.learning_rate()(s)) for s in (0, recipe.steps // 2, recipe.steps)]
    assert all(np.isfinite(rates)) and max(rates) <= recipe.lr


def test_recipe_checks_its_fields():
    Recipe(**VALID)
    for field, bad in [("steps", 0), ("width", 0), ("depth", True), ("n_pde", -1),
                       ("resample_every", 0), ("lr", 0.0), ("lr", float("nan")),
                       ("schedule", "cosine"), ("combiner", " ")]:
        with pytest.raises(ValueError, match=field):
            Recipe(**dict(VALID, **{field: bad}))


def test_schedules_are_the_cli_schedules_of_before():
    """The same numbers as the schedules `pinnx run` built before recipes existed."""
    old_warmup = optax.warmup_cosine_decay_schedule(0.0, 2e-3, 500, 25000, 1e-5)
    old_decay = optax.exponential_decay(1e-3, transition_steps=1000, decay_rate=0.9,
                                        staircase=True)
    new_warmup = burgers.recipe.learning_rate()
    new_decay = klein_gordon.recipe.learning_rate()
    for step in (0, 1, 250, 500, 999, 1000, 12345, 25000):
        assert float(new_warmup(step)) == float(old_warmup(step))
        assert float(new_decay(step)) == float(old_decay(step))
    assert float(dataclasses.replace(burgers.recipe, schedule="constant",
                                     lr=3e-4).learning_rate()(777)) == 3e-4


class _Stop(Exception):
    pass


def _capture_run(monkeypatch, argv, stand_in=None):
    """Run `pinnx run ...` up to `fit` and return what it was given (fit not run)."""
    seen = {}
    parse = cli.parse_combiner

    def parse_combiner(spec, learning_rate):
        seen.update(combiner=spec, learning_rate=learning_rate)
        return parse(spec, learning_rate)

    def fit(losses, model, optimizer, data, *, steps, key, resample_every, **kwargs):
        seen.update(steps=steps, resample_every=resample_every, depth=len(model.layers) - 1,
                    width=model.layers[0].out_features, n_pde=data(key)["pde"].shape[0])
        raise _Stop

    monkeypatch.setattr(cli, "parse_combiner", parse_combiner)
    monkeypatch.setattr(train, "fit", fit)
    if stand_in is not None:
        monkeypatch.setitem(PROBLEMS, argv[0], stand_in)
    with pytest.raises(_Stop):
        cli.main(["run", *argv, "--quiet"])
    return seen


def test_cli_runs_burgers_with_its_recipe(monkeypatch):
    seen = _capture_run(monkeypatch, ["burgers"])
    assert seen.pop("learning_rate")(250) == burgers.recipe.learning_rate()(250)
    assert seen == dict(combiner="pcgrad | adam", steps=25000, resample_every=200, depth=4,
                        width=32, n_pde=2000)
    # options replace single fields; the schedule follows the given steps and lr
    seen = _capture_run(monkeypatch, ["burgers", "--steps", "40", "--lr", "1e-2",
                                      "--points", "64", "--width", "8", "--combiner", "adam"])
    expected = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, 40, 1e-5)
    assert float(seen.pop("learning_rate")(20)) == float(expected(20))
    assert seen == dict(combiner="adam", steps=40, resample_every=200, depth=4, width=8,
                        n_pde=64)


def test_cli_runs_diffusion_reaction_with_its_own_recipe(monkeypatch):
    """No fallback to Burgers' settings. Klein-Gordon stands in for the problem itself
    (its reference costs nothing); the recipe read is diffusion_reaction's."""
    recipe = PROBLEMS["diffusion_reaction"].recipe

    def stand_in(n_pde):
        return klein_gordon(n_pde=n_pde)

    stand_in.recipe = recipe
    seen = _capture_run(monkeypatch, ["diffusion_reaction"], stand_in)
    assert float(seen.pop("learning_rate")(1000)) == 1e-3
    assert seen == dict(combiner=recipe.combiner, steps=1500, resample_every=1, depth=4,
                        width=32, n_pde=500)
    assert recipe != burgers.recipe


def test_help_lists_every_recipe(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name, factory in PROBLEMS.items():
        r = factory.recipe
        assert f"{name}: \"{r.combiner}\", {r.steps} steps, {r.depth}x{r.width} tanh" in out
