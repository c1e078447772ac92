"""Data flows one way: physics -> losses -> per-task gradients -> one update. The imports
say so: a combiner never reaches up to the loss builders, the networks or the training loop,
and the training loop uses no combiner's private module."""

import ast
import pathlib

PINNX = pathlib.Path(__file__).resolve().parent.parent / "pinnx"


def _imports(path: pathlib.Path) -> set[str]:
    """The modules a file imports, resolved to dotted names under pinnx."""
    package = ".".join(path.relative_to(PINNX.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_combiners_import_no_loss_builders_networks_or_training():
    for path in (PINNX / "combine").glob("*.py"):
        bad = {m for m in _imports(path)
               if m.startswith(("pinnx.residuals", "pinnx.nn", "pinnx.train",
                                "pinnx.problems", "pinnx.pointwise", "pinnx.diagnostics"))}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_training_loop_uses_no_private_combiner_module():
    bad = {m for m in _imports(PINNX / "train.py") if m.startswith("pinnx.combine._")}
    assert not bad, sorted(bad)


def test_lower_layers_do_not_import_the_training_loop():
    for sub in ("pointwise", "nn", "combine"):
        for path in (PINNX / sub).glob("*.py"):
            bad = {m for m in _imports(path) if m.startswith("pinnx.train")}
            assert not bad, f"{sub}/{path.name} imports {sorted(bad)}"
