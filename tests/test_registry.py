"""The one registry of combiners: every other list is derived from it or checked here."""

import pathlib
import re

import pytest
from combiners import CASES

import pinnx
import pinnx.combine as pc
from pinnx.cli import COMBINERS

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def test_every_registered_combiner_is_exported():
    for name, factory in pc.registry().items():
        assert getattr(pc, name) is factory, name
        assert getattr(pinnx, name) is factory, name
        assert name in pinnx.__all__ and name in pc.__all__, name


# the lower-case callables of pinnx.combine that are tools, not combiner factories
TOOLS = {"as_aggregator", "as_task_transform", "count_tasks", "ema_weighting",
         "gram_aggregator", "init_state", "inject_hyperparams", "loss_weighting", "ntk_traces",
         "owners", "register", "registry", "resolve_task"}


def test_every_exported_factory_is_registered():
    """A public factory that builds a combiner is in the registry (so the CLI, the suite and
    the docs know it)."""
    for name in pc.__all__:
        obj = getattr(pc, name)
        if callable(obj) and name[0].islower() and name not in TOOLS:
            assert name in pc.registry(), name


def test_the_cli_table_is_the_registry():
    assert COMBINERS == pc.registry(cli=True)
    assert set(pc.registry()) - set(COMBINERS) == {"route", "accumulate"}


def test_every_registered_combiner_has_a_shared_suite_case():
    missing = [n for n in pc.registry()
               if not any(c == n or c.startswith(n + "_") for c in CASES)]
    assert not missing, f"add a case to tests/combiners*.py for {missing}"


def test_every_registered_combiner_has_an_api_page():
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: pinnx\.(?:combine\.)?(\w+)\s*$", text, re.M))
    missing = sorted(set(pc.registry()) - documented)
    assert not missing, f"add `::: pinnx.<name>` to a page under docs/api/ for {missing}"


def test_labels_come_from_the_arguments():
    assert repr(pc.cagrad(c=0.4)) == "cagrad(c=0.4)"
    assert repr(pc.pcgrad()) == "pcgrad()"
    assert repr(pc.lra(main="bc", every=5)) == "lra(every=5, main='bc')"
    assert repr(pc.weighted([1.0, 2.0])) == "weighted(weights=[1.0, 2.0])"
    assert repr(pc.multiadam().parts[0]) == "per_task(tx=scale_by_adam)"
    assert repr(pc.dcgd("projection")) == "dcgd(variant='projection')"


def test_labels_survive_replace_make_and_tree_round_trips():
    import jax

    opt = pc.cagrad(c=0.4)
    assert repr(opt._replace(init=opt.init)) == "cagrad(c=0.4)"
    assert repr(type(opt)._make(tuple(opt))) == "cagrad(c=0.4)"
    leaves, tree = jax.tree.flatten(opt)
    assert repr(jax.tree.unflatten(tree, leaves)) == "cagrad(c=0.4)"
    chain = pc.cosine_gate(main=0) | pc.pcgrad()
    again = jax.tree.unflatten(*reversed(jax.tree.flatten(chain)))
    assert again.parts == chain.parts and again.has_aggregator


def test_a_name_is_registered_once():
    def sum():  # noqa: A001 - the clash is the point
        return pc.mean()

    with pytest.raises(ValueError, match="registered already"):
        pc.register(sum)
