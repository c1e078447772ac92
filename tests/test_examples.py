"""The examples run (with few steps) and report honest numbers."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

pytestmark = pytest.mark.standard_promotion


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heat_own_loop_runs(capsys):
    error = _load("heat_own_loop").main(steps=30)
    assert 0 < error < 10
    assert "relative L2 error" in capsys.readouterr().out


def test_burgers_comparison_runs(capsys):
    errors = _load("burgers_adam_vs_pcgrad").main(steps=20, seeds=1)
    assert set(errors) == {"adam", "pcgrad | adam"}
    assert "median" in capsys.readouterr().out
