"""Build the documentation site and check the HTML for defects a reader would see.

    python docs/check_site.py              # mkdocs build --strict into a temporary folder
    python docs/check_site.py --site DIR   # check a site built already

Exits with status 1 and one line per defect, naming the page, when the built HTML has

- a literal ``\\|`` in a table (escaping a pipe is GitHub's table syntax; Python-Markdown
  keeps the backslash, and splits no cell on a pipe inside backticks, so write
  ``sum | adam`` in a code span without it);
- the placeholder host ``example.invalid`` (e.g. a ``repo_url`` that was never set);
- math (the ``arithmatex`` spans of ``pymdownx.arithmatex``) on a page that loads no
  MathJax or KaTeX script, or a local script that the site does not contain;
- a ``>>>`` example outside a code block: a docstring section titled ``Example:`` is an
  admonition whose ``>>>`` lines Markdown reads as three nested block quotes; griffe renders
  ``>>>`` lines as code only in a section titled ``Examples:``.

Needs the ``docs`` extra (``pip install -e '.[docs]'``) to build; checking a built site needs
only the standard library.
"""

from __future__ import annotations

import argparse
import html.parser
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLACEHOLDER = "example.invalid"
ESCAPED_PIPE = "\\|"
MATH_SCRIPTS = ("mathjax", "katex")
QUOTED = ("'>>>' example(s) rendered as nested block quotes, not code (a docstring section "
          "titled 'Example:' instead of 'Examples:')")
PIPE = f"table cell(s) showing a literal '{ESCAPED_PIPE}' (write '|' inside the code span)"
PROMPT = "'>>>' line(s) outside a code block"


class _Page(html.parser.HTMLParser):
    """Walks one page and collects its defects by kind, with an excerpt of each."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = dict.fromkeys(("table", "pre", "code", "blockquote", "script", "style"), 0)
        self.scripts: list[str] = []
        self.math = False
        self.found: dict[str, list[str]] = {}
        self._quoted = False  # inside a third nested block quote, its text not yet seen

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.depth:
            self.depth[tag] += 1
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        if "arithmatex" in (attrs.get("class") or "").split():
            self.math = True
        # Markdown's reading of ">>> code" is three block quotes, one inside the other.
        self._quoted = self._quoted or (tag == "blockquote" and self.depth["blockquote"] == 3)

    def handle_endtag(self, tag):
        if tag in self.depth and self.depth[tag] > 0:
            self.depth[tag] -= 1

    def handle_data(self, data):
        if self.depth["script"] or self.depth["style"]:
            return
        if self._quoted and data.strip():
            self._quoted = False
            self.found.setdefault(QUOTED, []).append(_excerpt(data.strip(), data.strip()[0]))
        if self.depth["table"] and ESCAPED_PIPE in data:
            self.found.setdefault(PIPE, []).append(_excerpt(data, ESCAPED_PIPE))
        if not (self.depth["pre"] or self.depth["code"]) and ">>>" in data:
            self.found.setdefault(PROMPT, []).append(_excerpt(data, ">>>"))



def _excerpt(text: str, needle: str, width: int = 40) -> str:
    i = text.index(needle)
    return "'" + " ".join(text[max(0, i - width):i + width].split()) + "'"


def _local_script(site: pathlib.Path, page: pathlib.Path, src: str) -> pathlib.Path | None:
    """The file a local ``src`` points to, or None for a remote script."""
    if "//" in src or src.startswith("data:"):
        return None
    path = src.split("?")[0].split("#")[0]
    # Root-relative paths (404.html without site_url) start at the site's root.
    return (site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)


def check_page(page: pathlib.Path, site: pathlib.Path) -> list[str]:
    """The defects of one built HTML page of ``site``, as messages without the page name."""
    text = page.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(text)
    parser.close()
    defects = [f"{len(found)} {kind}, first {found[0]}" for kind, found in parser.found.items()]
    if PLACEHOLDER in text:
        defects.append(f"links to the placeholder host {PLACEHOLDER} (repo_url or a link)")
    defects += [f"loads a script the site does not contain: {src}" for src in parser.scripts
                if (f := _local_script(site, page, src)) is not None and not f.is_file()]
    if parser.math and not any(m in s.lower() for s in parser.scripts for m in MATH_SCRIPTS):
        defects.append("has math (arithmatex) but loads no MathJax or KaTeX script "
                       "(extra_javascript in mkdocs.yml)")
    return defects


def check_site(site: pathlib.Path) -> list[str]:
    """Every defect of a built site, one ``page: message`` line each, pages in path order."""
    site = pathlib.Path(site)
    pages = sorted(site.rglob("*.html"))
    if not pages:
        raise ValueError(f"expected a built site with HTML pages in {site}, got none")
    return [f"{page.relative_to(site).as_posix()}: {msg}"
            for page in pages for msg in check_page(page, site)]


def build_site(dest: pathlib.Path, config: pathlib.Path = ROOT / "mkdocs.yml") -> None:
    """Runs ``mkdocs build --strict`` for ``config`` into ``dest``; raises on failure."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(config), "--site-dir", str(dest)],
        cwd=config.parent, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"mkdocs build --strict failed (exit {run.returncode}):\n"
                           f"{run.stdout}{run.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", type=pathlib.Path,
                        help="a built site to check (default: build one with mkdocs)")
    parser.add_argument("--config", type=pathlib.Path, default=ROOT / "mkdocs.yml",
                        help="the mkdocs.yml to build (default: the repository's)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pinnx-site-") as tmp:
        site = args.site
        if site is None:
            site = pathlib.Path(tmp)
            try:
                build_site(site, args.config.resolve())
            except RuntimeError as err:
                print(err, file=sys.stderr)
                return 1
        try:
            defects = check_site(site)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 1
    for line in defects:
        print(line, file=sys.stderr)
    if defects:
        print(f"{len(defects)} defect(s) in the built site", file=sys.stderr)
        return 1
    print(f"site OK: no rendering defects found in {site if args.site else 'the build'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
