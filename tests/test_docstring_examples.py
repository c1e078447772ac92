"""Every `>>>` example in a pinnx docstring runs and prints what it shows.

The examples are found with `doctest.DocTestFinder` in every module of the package (the
public objects are defined in private modules, e.g. `pinnx.combine._pcgrad`), each one a
test case of its own, so that `pytest -n auto` spreads them over the workers. They run with
empty globals: an example imports what it uses, as a reader copying it would.
"""

import doctest
import importlib
import io
import pkgutil

import pytest

import pinnx

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples() -> dict[str, doctest.DocTest]:
    """Every docstring with examples in pinnx, by its dotted name."""
    names = [pinnx.__name__] + [
        m.name for m in pkgutil.walk_packages(pinnx.__path__, pinnx.__name__ + ".")]
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for name in sorted(names):
        for test in finder.find(importlib.import_module(name), globs={}):
            if test.examples:
                found.setdefault(test.name, test)
    return dict(sorted(found.items()))


EXAMPLES = _examples()


def test_examples_are_found():
    # a walk that silently found nothing would pass every case below
    assert len(EXAMPLES) > 50
    assert "pinnx.combine._pcgrad.pcgrad" in EXAMPLES


@pytest.mark.standard_promotion  # optax's own transforms (Adam's count) need it
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_docstring_example(name):
    test = EXAMPLES[name]
    test = doctest.DocTest(test.examples, {}, test.name, test.filename, test.lineno,
                           test.docstring)
    out = io.StringIO()
    result = doctest.DocTestRunner(optionflags=FLAGS).run(test, out=out.write)
    assert result.failed == 0, out.getvalue()
