"""The documentation site builds strictly and shows none of the defects `docs/check_site.py`
looks for (escaped pipes in tables, placeholder links, math without MathJax, `>>>` examples
outside code blocks); and the checker finds each of them."""

import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"


def _checker():
    spec = importlib.util.spec_from_file_location("check_site", DOCS / "check_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(site, name, body, head=""):
    path = site / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><head>{head}</head><body>{body}</body></html>", encoding="utf-8")


def test_checker_finds_each_defect(tmp_path):
    check = _checker()
    mathjax = '<script src="https://unpkg.com/mathjax@3/es5/tex-mml-chtml.js"></script>'
    _page(tmp_path, "clean/index.html",
          "<table><tr><td><code>sum | adam</code></td></tr></table>"
          '<span class="arithmatex">\\(G = J J^\\top\\)</span>'
          "<pre><code>&gt;&gt;&gt; opt = pinnx.pcgrad()</code></pre>", head=mathjax)
    _page(tmp_path, "pipe/index.html", "<table><tr><td><code>sum \\| adam</code></td></tr></table>")
    _page(tmp_path, "repo/index.html", '<a href="https://example.invalid/pinnx">Example</a>')
    _page(tmp_path, "math/index.html", '<span class="arithmatex">\\(x\\)</span>')
    _page(tmp_path, "script/index.html", '<span class="arithmatex">\\(x\\)</span>',
          head='<script src="../js/mathjax.js"></script>')
    _page(tmp_path, "quote/index.html",
          "<blockquote><blockquote><blockquote><p>opt = pinnx.pcgrad()</p>"
          "</blockquote></blockquote></blockquote>")
    _page(tmp_path, "prompt/index.html", "<p>&gt;&gt;&gt; opt = pinnx.pcgrad()</p>")

    defects = check.check_site(tmp_path)
    pages = {line.split(":")[0] for line in defects}
    assert pages == {"pipe/index.html", "repo/index.html", "math/index.html",
                     "script/index.html", "quote/index.html", "prompt/index.html"}
    assert any("sum \\| adam" in line for line in defects)
    assert any("opt = pinnx.pcgrad()" in line and line.startswith("quote/") for line in defects)
    assert check.main(["--site", str(tmp_path)]) == 1
    assert check.main(["--site", str(tmp_path / "clean")]) == 0


def test_built_site_has_no_defects(capsys):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("material")
    status = _checker().main([])
    assert status == 0, capsys.readouterr().err
