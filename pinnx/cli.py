"""The `pinnx` command line: `pinnx run <problem>`, `pinnx diagnose <problem>`, `pinnx list`.

A combiner is given as a chain of parts separated by `|`, each a name with optional
arguments, e.g. `"cosine_gate(main=pde) | pcgrad | adam(1e-3)"`. Bare words inside the
parentheses are strings (`main=pde`); numbers are numbers; `per_task(...)` takes an optax
transform spec (`per_task(scale_by_adam) | mean | adam`).
"""

import argparse
import ast
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optax

from . import combine
from .combine import Combiner

__all__ = ["main", "parse_combiner", "COMBINERS", "OPTIMIZERS"]


COMBINERS: dict[str, Callable[..., Any]] = combine.registry(cli=True)
"""pinnx combiners the command line knows, by name: the registry (`pinnx.combine.registry`)
less the factories whose arguments a spec cannot write (pytrees, functions)."""

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "sgd": optax.sgd,
    "lion": optax.lion,
    "rmsprop": optax.rmsprop,
    "lbfgs": optax.lbfgs,
    "scale_by_adam": optax.scale_by_adam,
    "clip": optax.clip,
    "clip_by_global_norm": optax.clip_by_global_norm,
    "identity": optax.identity,
}
"""Plain optax transforms the command line knows (a learning rate is the first argument)."""

_NEEDS_LR = {"adam", "adamw", "sgd", "lion", "rmsprop"}


class SpecError(ValueError):
    """A combiner spec that cannot be parsed or names an unknown part."""


def _split(spec: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in spec:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    if any(not p.strip() for p in parts):
        raise SpecError(f"empty part in combiner spec {spec!r}")
    return [p.strip() for p in parts]


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name):
        return node.id
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise SpecError(f"cannot read argument {ast.unparse(node)!r}: use numbers, words, "
                        "lists or {'name': value} dicts") from None


def _part(text: str, learning_rate: Any) -> Any:
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise SpecError(f"cannot parse {text!r}") from None
    if isinstance(node, ast.Name):
        name, args, kwargs = node.id, [], {}
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name == "per_task":
            if len(node.args) != 1 or node.keywords:
                raise SpecError("per_task takes one optax transform, e.g. per_task(scale_by_adam)")
            return COMBINERS["per_task"](_part(ast.unparse(node.args[0]), learning_rate))
        args = [_literal(a) for a in node.args]
        kwargs = {k.arg: _literal(k.value) for k in node.keywords}
    else:
        raise SpecError(f"cannot parse {text!r}: expected name or name(arguments)")
    if name in COMBINERS:
        factory = COMBINERS[name]
    elif name in OPTIMIZERS:
        factory = OPTIMIZERS[name]
        if name in _NEEDS_LR and not args and "learning_rate" not in kwargs:
            args = [learning_rate]
    else:
        raise SpecError(
            f"unknown combiner part {name!r}; pinnx combiners: {', '.join(COMBINERS)}; "
            f"optax transforms: {', '.join(sorted(OPTIMIZERS))}"
        )
    try:
        return factory(*args, **kwargs)
    except TypeError as err:
        raise SpecError(f"bad arguments for {name}: {err}") from None


def parse_combiner(spec: str, learning_rate: Any = 1e-3) -> optax.GradientTransformation:
    """Build an optimizer from a spec such as `"cosine_gate(main=pde) | pcgrad | adam"`.

    Optimizers written without a learning rate get `learning_rate` (a float or an optax
    schedule). A spec with no pinnx part (e.g. `"adam"`) is a plain optax optimizer on the
    summed loss.
    """
    parts = [_part(p, learning_rate) for p in _split(spec)]
    out = parts[0]
    for p in parts[1:]:
        pinnx_part = isinstance(out, Combiner) or isinstance(p, Combiner)
        out = out | p if pinnx_part else optax.chain(out, p)
    return out


def _recipe(args: argparse.Namespace, **fields: str):
    """The problem's default recipe with the command-line options that were given.

    `fields` maps recipe fields to option names, e.g. `n_pde="points"`.
    """
    import dataclasses

    from . import problems

    given = {f: getattr(args, o) for f, o in fields.items() if getattr(args, o, None)}
    return dataclasses.replace(problems.PROBLEMS[args.problem].recipe, **given)


def _summary(recipe) -> str:
    """One recipe as a phrase of `pinnx run --help`."""
    r = recipe
    return (f"\"{r.combiner}\", {r.steps} steps, {r.depth}x{r.width} tanh, {r.n_pde} "
            f"residual points, lr {r.lr:g} ({r.schedule})")


def _diagnose(args: argparse.Namespace) -> int:
    import jax

    from . import problems
    from .diagnostics import overhead, profile
    from .nn import MLP

    if args.problem not in problems.PROBLEMS:
        print(f"pinnx: unknown problem {args.problem!r}; choose one of: "
              f"{', '.join(sorted(problems.PROBLEMS))}", file=sys.stderr)
        return 2
    # --steps and --lr are the profile's own (plain Adam), not the recipe's
    try:
        recipe = _recipe(args, width="width", depth="depth", n_pde="points")
    except ValueError as err:
        print(f"pinnx: {err}", file=sys.stderr)
        return 2
    problem = problems.PROBLEMS[args.problem](n_pde=recipe.n_pde)
    key = jax.random.key(args.seed)
    model = MLP(problem.in_size, problem.out_size, width=recipe.width, depth=recipe.depth,
                key=key)
    try:
        report = profile(problem.losses, model, problem.sample, steps=args.steps,
                         learning_rate=args.lr, record_every=args.every,
                         resample_every=recipe.resample_every, key=jax.random.fold_in(key, 1),
                         checkpoints=args.checkpoints, name=args.problem,
                         progress=not args.quiet)
    except ValueError as err:
        print(f"pinnx: {err}", file=sys.stderr)
        return 2
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure = out / f"diagnose_{args.problem}.png"
    report.plot(figure)
    result = report.to_dict()
    if args.check:
        outcome = report.check(steps=args.check, error_fn=problem.relative_l2)
        print(f"  {outcome}")
        result["check"] = {"steps": outcome.steps, "metric": outcome.metric,
                           "baseline": outcome.baseline, "recommended": outcome.recommended,
                           "ahead": outcome.ahead, "trained": outcome.trained}
    if args.overhead:
        cost = overhead(problem.losses, model, problem.sample, steps=args.overhead,
                        learning_rate=args.lr, key=jax.random.fold_in(key, 1))
        print("  seconds per step: " + ", ".join(f"{k} {v:.2e}" for k, v in cost.items()
                                                  if k != "overhead")
              + f"; recording overhead vs plain Adam {cost['overhead']:+.1%}")
        result["seconds_per_step"] = cost
    path = out / f"diagnose_{args.problem}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"  figure: {figure}\n  statistics: {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    import jax

    from . import problems
    from .nn import MLP
    from .train import fit

    if args.problem not in problems.PROBLEMS:
        print(f"pinnx: unknown problem {args.problem!r}; choose one of: "
              f"{', '.join(sorted(problems.PROBLEMS))}", file=sys.stderr)
        return 2
    try:
        recipe = _recipe(args, combiner="combiner", steps="steps", lr="lr", width="width",
                         depth="depth", n_pde="points")
        optimizer = parse_combiner(recipe.combiner, recipe.learning_rate())
    except ValueError as err:
        print(f"pinnx: {err}", file=sys.stderr)
        return 2
    steps, spec = recipe.steps, recipe.combiner
    problem = problems.PROBLEMS[args.problem](n_pde=recipe.n_pde)
    key = jax.random.key(args.seed)
    model = MLP(problem.in_size, problem.out_size, width=recipe.width, depth=recipe.depth,
                key=key)
    print(f"pinnx run {args.problem}: {problem.description}")
    print(f"  combiner: {spec}")
    try:
        model, _, history = fit(
            problem.losses, model, optimizer, problem.sample, steps=steps,
            key=jax.random.fold_in(key, 1), resample_every=recipe.resample_every,
            log_every=max(1, steps // 20), progress=not args.quiet,
        )
    except ValueError as err:
        print(f"pinnx: {err}", file=sys.stderr)
        return 2
    error = problem.relative_l2(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure = out / f"{args.problem}.png"
    problem.plot(model, history, figure)
    metrics = {
        "problem": args.problem, "combiner": spec, "steps": history.steps, "seed": args.seed,
        "relative_l2": error, "wall_time_s": history.wall_time,
        "final_losses": {t: float(v[-1]) for t, v in history.losses.items() if len(v)},
        "stopped": history.nonfinite.message if history.nonfinite else None,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"  steps: {history.steps} in {history.wall_time:.1f} s")
    print(f"  relative L2 error: {error:.3e}")
    print(f"  figure: {figure}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from . import problems

    print("problems:  " + ", ".join(sorted(problems.PROBLEMS)))
    print("combiners: " + ", ".join(COMBINERS))
    print("optax:     " + ", ".join(sorted(OPTIMIZERS)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import problems

    parser = argparse.ArgumentParser(
        prog="pinnx",
        description="Train physics-informed neural networks with gradient-conflict-aware "
        "combiners.",
        epilog="example: pinnx run burgers --combiner \"cosine_gate(main=pde) | pcgrad | adam\"",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="train a PINN on a built-in problem and report its error",
        description="Train a PINN on a built-in problem, print its relative L2 error against "
        "the reference solution, and write a figure and metrics.json to --out. Defaults: "
        + "; ".join(f"{name}: {_summary(factory.recipe)}"
                    for name, factory in problems.PROBLEMS.items()),
    )
    run.add_argument("problem", help="problem name (see `pinnx list`), e.g. burgers")
    run.add_argument("--combiner", help="chain spec, e.g. \"cosine_gate(main=pde) | pcgrad | "
                     "adam\" (default per problem, listed above); \"adam\" alone is the plain "
                     "summed-loss baseline")
    run.add_argument("--steps", type=int, help="training steps (default per problem)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--out", default="runs", help="output folder (default runs/)")
    run.add_argument("--lr", type=float, help="peak learning rate of the problem's schedule")
    run.add_argument("--width", type=int, help="hidden units per layer")
    run.add_argument("--depth", type=int, help="hidden layers")
    run.add_argument("--points", type=int, help="residual points per batch")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)
    diag = sub.add_parser(
        "diagnose", help="profile the plain PINN's gradient conflict and recommend a recipe",
        description="Train the unmodified PINN (Adam on the summed loss) for --steps steps, "
        "recording per-task gradient norms and cosines inside every step; print the "
        "conflict regime (directional / magnitude / mixed / benign), the statistics behind "
        "it and the recommended pinnx recipe; write diagnose_<problem>.png and .json to "
        "--out.",
    )
    diag.add_argument("problem", help="problem name (see `pinnx list`), e.g. helmholtz")
    diag.add_argument("--steps", type=int, default=1000, help="profile steps (default 1000)")
    diag.add_argument("--every", type=int, default=1, help="record every this many steps")
    diag.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    diag.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    diag.add_argument("--out", default="runs", help="output folder (default runs/)")
    diag.add_argument("--width", type=int, help="hidden units per layer")
    diag.add_argument("--depth", type=int, help="hidden layers")
    diag.add_argument("--points", type=int, help="residual points per batch")
    diag.add_argument("--check", type=int, metavar="STEPS", default=0,
                      help="also train the recipe and plain Adam for STEPS steps each and "
                      "report which has the lower relative L2 error")
    diag.add_argument("--overhead", type=int, metavar="STEPS", default=0,
                      help="also time plain Adam against the recording step (scans of "
                      "STEPS steps, fastest of 5 rounds) and print the per-step overhead")
    diag.add_argument("--checkpoints", type=int, default=5,
                      help="steps (evenly spaced) at which ModSync's per-sample gradient "
                      "interaction is measured (default 5; 0: skip)")
    diag.add_argument("--quiet", action="store_true", help="no progress bar")
    diag.set_defaults(func=_diagnose)
    lst = sub.add_parser("list", help="list problems and combiner parts")
    lst.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pinnx` command."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    code = args.func(args)
    if args.command == "run" and code == 0:
        print(f"  total time: {time.perf_counter() - start:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
