"""The ModSync example runs (with few steps) and reports what it measured."""

import json

import pytest
from example_loader import load_example

pytestmark = [pytest.mark.standard_promotion, pytest.mark.slow]  # end-to-end scripts


def test_burgers_modsync_runs(tmp_path, capsys):
    results = load_example("burgers_modsync").main(
        ["--steps", "4", "--seeds", "1", "--width", "8", "--depth", "2", "--n-pde", "32",
         "--resample-every", "2", "--out", str(tmp_path)])
    assert set(results) == {"adam", "dcgd", "dcgd_modsync"}
    for r in results.values():
        assert len(r["errors"]) == 1 and all(e > 0 for e in r["errors"])
    run = results["dcgd_modsync"]["runs"][0]
    assert len(run["sparsity"]) == 3 and all(0 <= s <= 1 for s in run["sparsity"])
    # the thresholds add one vector per objective and layer on top of the same weights
    assert run["params"] > results["dcgd"]["runs"][0]["params"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["steps"] == 4 and saved["results"]["adam"]["errors"] == results["adam"]["errors"]
    assert (tmp_path / "burgers_modsync.png").stat().st_size > 5_000
    assert "| DCGD + ModSync" in capsys.readouterr().out
