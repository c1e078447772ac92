"""Each namespace has one job: `pinnx.nn` networks and what describes their structure,
`pinnx.residuals` loss functions, `pinnx.recipes` optimizer recipes, `pinnx.pointwise`
per-point weighting and adaptive sampling. Their imports say so, and every Module a public
factory returns is exported where the factory is."""

import importlib
import inspect

import equinox as eqx
import pytest
from test_layering import PINNX, _imports

NAMESPACES = ("pinnx.nn", "pinnx.pointwise", "pinnx.residuals", "pinnx.recipes", "pinnx.atl")


def test_networks_import_no_losses_optimizers_or_training():
    for path in (PINNX / "nn").glob("*.py"):
        bad = {m for m in _imports(path)
               if m.startswith(("pinnx.residuals", "pinnx.pointwise", "pinnx.recipes",
                                "pinnx.combine", "pinnx.train", "pinnx.problems",
                                "pinnx.diagnostics", "pinnx.atl", "pinnx._"))}
        assert not bad, f"nn/{path.name} imports {sorted(bad)}"


def test_networks_export_no_losses_or_optimizers():
    import pinnx.nn

    moved = {"adapter_losses": "residuals", "AdapterLosses": "residuals",
             "cross_losses": "residuals", "sparsity_loss": "residuals",
             "modsync_optimizer": "recipes", "sparsity_penalty": "recipes"}
    for name, home in moved.items():
        assert name not in pinnx.nn.__all__ and not hasattr(pinnx.nn, name), name
        assert name in importlib.import_module(f"pinnx.{home}").__all__, name


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_exported_name_exists(namespace):
    module = importlib.import_module(namespace)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{namespace}.__all__ names {missing}, which it does not define"


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_returned_modules_are_exported_with_their_factory(namespace):
    module = importlib.import_module(namespace)
    for name in module.__all__:
        obj = getattr(module, name)
        if not inspect.isfunction(obj):
            continue
        ret = inspect.signature(obj).return_annotation
        if (isinstance(ret, type) and issubclass(ret, eqx.Module)
                and ret.__module__.startswith("pinnx")):
            assert ret.__name__ in module.__all__, (
                f"{namespace}.{name} returns a {ret.__name__}, which {namespace} does not "
                "export")
