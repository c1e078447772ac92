"""The adapters example runs (with few steps) and reports what it measured."""

import json

import pytest
from example_loader import load_example

pytestmark = [pytest.mark.standard_promotion, pytest.mark.slow]  # end-to-end scripts


def test_helmholtz_adapters_runs(tmp_path, capsys):
    results = load_example("helmholtz_adapters").main(
        ["--steps", "6", "--seeds", "1", "--width", "8", "--depth", "2", "--out", str(tmp_path)])
    assert set(results) == {"lra", "adapters_lra"}
    for r in results.values():
        assert len(r["errors"]) == 1 and all(e > 0 for e in r["errors"])
    runs = results["adapters_lra"]["runs"]
    assert all({"error_trunk", "error_bc_forward", "cross_losses"} <= set(r) for r in runs)
    # the adapters add parameters on top of the same trunk
    assert runs[0]["params"] > results["lra"]["runs"][0]["params"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["steps"] == 6 and saved["results"]["lra"]["errors"] == results["lra"]["errors"]
    assert (tmp_path / "helmholtz_adapters.png").stat().st_size > 5_000
    out = capsys.readouterr().out
    assert "| per-loss adapters + LRA + Adam |" in out and "trunk alone" in out
