"""examples/helmholtz_lda.py runs (with a few steps) and reports what it measured."""

import json

import pytest
from example_loader import load_example

pytestmark = [pytest.mark.standard_promotion, pytest.mark.slow]  # end-to-end scripts


def test_helmholtz_lda_runs(tmp_path, capsys):
    results = load_example("helmholtz_lda").main(
        ["--steps", "3", "--seeds", "2", "--width", "6", "--depth", "1",
         "--runs", "mlp:adam,lda:pcgrad", "--out", str(tmp_path)])
    assert list(results) == ["mlp:adam", "lda:pcgrad"]
    for r in results.values():
        assert len(r["errors"]) == 2 and all(0 < e < 100 for e in r["errors"])
        assert len(r["loss_curve"]) == 3
    # 1 hidden layer of 6: MLP 3*6 + 7; LDA adds 2*6*3 (encoders) + 5*6*6 (gate)
    assert results["mlp:adam"]["params"] == 25
    assert results["lda:pcgrad"]["params"] == 25 + 2 * 6 * 3 + 5 * 6 * 6
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["lda:pcgrad"]["errors"] == results["lda:pcgrad"]["errors"]
    assert (tmp_path / "lda_helmholtz.png").stat().st_size > 5_000
    out = capsys.readouterr().out
    assert "| `lda:pcgrad` | LDA | PCGrad + Adam |" in out
    assert (tmp_path / "results.md").read_text().strip() in out


def test_helmholtz_lda_rejects_unknown_run(tmp_path):
    with pytest.raises(SystemExit):
        load_example("helmholtz_lda").main(["--runs", "lda:sgd", "--out", str(tmp_path)])
