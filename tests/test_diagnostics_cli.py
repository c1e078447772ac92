"""`pinnx diagnose <problem>` end to end, with check mode; errors list the choices."""

import json

import pytest

from pinnx.cli import main


@pytest.mark.slow  # end to end
@pytest.mark.standard_promotion
def test_diagnose_end_to_end(tmp_path, capsys):
    code = main(["diagnose", "klein_gordon", "--steps", "12", "--every", "2", "--points",
                 "16", "--width", "8", "--depth", "1", "--out", str(tmp_path), "--quiet",
                 "--check", "4", "--checkpoints", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "regime:" in out and "evidence:" in out and "recommendation:" in out
    assert "check" in out and "figure:" in out
    stats = json.loads((tmp_path / "diagnose_klein_gordon.json").read_text())
    assert stats["steps"] == 12 and stats["record_every"] == 2
    assert set(stats["pairs"]) == {"bc/ic", "bc/pde", "ic/pde"}
    assert stats["regime"] in ("directional", "magnitude", "mixed", "benign")
    assert stats["check"]["steps"] == 4 and stats["check"]["metric"] == "relative L2 error"
    assert (tmp_path / "diagnose_klein_gordon.png").stat().st_size > 10_000


def test_diagnose_errors(capsys):
    assert main(["diagnose", "navier"]) == 2
    assert "choose one of: burgers" in capsys.readouterr().err
    assert main(["diagnose", "helmholtz", "--steps", "1", "--quiet"]) == 2
    assert "steps >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["diagnose", "--help"])
    assert "recommended pinnx recipe" in capsys.readouterr().out
