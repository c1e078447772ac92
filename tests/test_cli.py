"""The command line: spec parsing, errors that list the choices, a short run end to end."""

import json

import optax
import pytest

import pinnx
from pinnx.cli import SpecError, main, parse_combiner


def test_parse_specs():
    opt = parse_combiner("cosine_gate(main=pde, threshold=0.1) | pcgrad | adam(1e-3)")
    assert isinstance(opt, pinnx.Chain) and len(opt.parts) == 3
    assert "cosine_gate(main='pde', threshold=0.1)" in repr(opt)
    assert isinstance(parse_combiner("adam"), optax.GradientTransformation)
    assert not isinstance(parse_combiner("clip(1.0) | adam"), pinnx.Combiner)
    multi = parse_combiner("per_task(scale_by_adam) | mean | sgd")
    assert isinstance(multi.parts[0], pinnx.TaskTransform)
    assert isinstance(parse_combiner("weighted([1, 10, 10]) | adam"), pinnx.Chain)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("pcgard | adam", "unknown combiner part 'pcgard'; pinnx combiners: aligned_mtl, cagrad"),
        ("pcgrad | | adam", "empty part"),
        ("pcgrad(", "cannot parse"),
        ("pcgrad(seed=1+) | adam", "cannot parse"),
        ("cosine_gate(main=f(x)) | sum", "cannot read argument"),
        ("pcgrad(bogus=1)", "bad arguments for pcgrad"),
        ("cosine_gate(main=pde) | adam", "no aggregator"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_combiner(spec)
    assert issubclass(SpecError, ValueError)


def test_unknown_problem_and_combiner_print_choices(capsys):
    assert main(["run", "navier"]) == 2
    assert "choose one of: burgers" in capsys.readouterr().err
    assert main(["run", "burgers", "--combiner", "pcgard"]) == 2
    err = capsys.readouterr().err
    assert "unknown combiner part" in err and "pcgrad" in err and "Traceback" not in err


def test_help_and_list(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "list" in out
    assert main(["list"]) == 0
    assert "burgers" in capsys.readouterr().out


@pytest.mark.slow  # end to end; test_recipe runs the CLI too
@pytest.mark.standard_promotion
def test_short_run_end_to_end(tmp_path, capsys):
    code = main(["run", "burgers", "--steps", "30", "--points", "64", "--width", "8",
                 "--depth", "2", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "relative L2 error" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 30 and 0 < metrics["relative_l2"] < 10
    assert (tmp_path / "burgers.png").stat().st_size > 10_000
