"""examples/diffusion_reaction_atl.py runs (with few steps) and reports what it measured."""

import json

import pytest
from example_loader import load_example

pytestmark = [pytest.mark.standard_promotion, pytest.mark.slow]  # end-to-end scripts


def test_diffusion_reaction_atl_runs(tmp_path, capsys):
    results = load_example("diffusion_reaction_atl").main(
        ["--steps", "3", "--seeds", "2", "--modes", "hard", "--n-pde", "32",
         "--out", str(tmp_path)])
    assert list(results) == ["single", "hard", "hard+gate"]
    for r in results.values():
        assert len(r["errors"]) == 2 and all(0 < e < 10 for e in r["errors"])
    assert len(results["hard+gate"]["aux_errors"]) == 2 and not results["single"]["aux_errors"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["steps"] == 3 and saved["results"]["hard"]["errors"] == results["hard"]["errors"]
    assert (tmp_path / "atl_diffusion_reaction.png").stat().st_size > 5_000
    assert (tmp_path / "atl_solutions.png").stat().st_size > 5_000
    out = capsys.readouterr().out
    assert "| hard sharing (trunk 3 x 32, heads 1 x 32) + cosine gate |" in out
    assert "| single-task PINN (MLP 4 x 32) |" in out
