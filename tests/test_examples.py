"""The examples run (with few steps) and report honest numbers."""


import pytest
from example_loader import load_example

pytestmark = [pytest.mark.standard_promotion, pytest.mark.slow]  # end-to-end scripts


def test_heat_own_loop_runs(capsys):
    error = load_example("heat_own_loop").main(steps=30)
    assert 0 < error < 10
    assert "relative L2 error" in capsys.readouterr().out


def test_burgers_comparison_runs(capsys):
    errors = load_example("burgers_adam_vs_pcgrad").main(steps=20, seeds=1)
    assert set(errors) == {"adam", "pcgrad | adam"}
    assert "median" in capsys.readouterr().out


def test_helmholtz_conflict_runs(tmp_path, capsys):
    results = load_example("helmholtz_conflict").main(
        ["--steps", "4", "--seeds", "2", "--methods", "adam,pcgrad", "--out", str(tmp_path)])
    assert set(results) == {"adam", "pcgrad"}
    assert all(len(r["errors"]) == 2 and all(e > 0 for e in r["errors"])
               for r in results.values())
    assert (tmp_path / "helmholtz_conflict.png").stat().st_size > 5_000
    assert "| PCGrad + Adam |" in capsys.readouterr().out
