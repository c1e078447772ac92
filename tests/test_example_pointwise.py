"""The per-point weighting examples run (few steps) and report honest numbers."""


import pytest
from example_loader import load_example

pytestmark = [pytest.mark.standard_promotion, pytest.mark.slow]  # end-to-end scripts


def test_pointwise_race_runs(tmp_path, capsys):
    results = load_example("pointwise_race").main(["--steps", "200", "--seeds", "2", "--out",
                                             str(tmp_path)])
    assert set(results) == {"uniform", "grad_norm", "sa_sigmoid", "sa_square"}
    for r in results.values():
        assert len(r["seeds"]) == 2
        assert all(s["centre"] > 0 and s["outer"] > 0 and s["ratio"] > 0 for s in r["seeds"])
    assert results["uniform"]["seeds"][0]["centre_weight_share"] == pytest.approx(6 / 30)
    assert (tmp_path / "pointwise_race.png").stat().st_size > 5_000
    assert "centre/outer" in capsys.readouterr().out


def test_burgers_sa_runs(tmp_path, capsys):
    results = load_example("burgers_sa").main(["--steps", "6", "--n-pde", "64", "--out",
                                         str(tmp_path)])
    assert set(results) == {"uniform", "sa"}
    assert all(0 < r[0]["rel_l2"] < 10 for r in results.values())
    assert (tmp_path / "burgers_sa.png").stat().st_size > 5_000
    assert "| sa |" in capsys.readouterr().out
