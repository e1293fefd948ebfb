"""The documentation site builds strict (mkdocs --strict, executing its code blocks), and the built HTML is right:

* every executed code block shows its code (markdown-exec ``source="above"`` or a tab) and its output, and no
  executed block renders empty (output printed where markdown-exec does not capture it — e.g. by a library
  function calling the builtin ``print`` — vanishes from the page while the build still succeeds);
* the API reference lists no ``__all__`` member and shows no raw Sphinx roles (``:func:`...```).

The site is built once per test session; each page is a separate test, so a failure names the page.
"""

from __future__ import annotations

import html as html_lib
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXEC_BLOCK = re.compile(r'^```python exec="on"([^\n]*)\n(.*?)^```[ \t]*$', re.M | re.S)
SHOWS_SOURCE = re.compile(r'\bsource="(above|below|tabbed-left|tabbed-right|console|block)"')
RAW_ROLE = re.compile(r":(?:func|class|mod|meth|attr|exc|data|obj|ref):(?:`|<code>)")


def _exec_blocks(page: pathlib.Path) -> list[tuple[str, str]]:
    """``[(options, code)]`` of the executed Python blocks of a Markdown page."""
    return [(m.group(1), m.group(2)) for m in EXEC_BLOCK.finditer(page.read_text())]


EXEC_PAGES = sorted(p.name for p in DOCS.glob("*.md") if _exec_blocks(p))


def _built(site: pathlib.Path, page: str) -> str:
    stem = page[:-3]
    return (site / ("index.html" if stem == "index" else f"{stem}/index.html")).read_text()


def _text(fragment: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


def _pre_blocks(page_html: str) -> list[str]:
    """The text of every ``<pre>`` block of a built page, in order."""
    return [_text(m) for m in re.findall(r"<pre\b[^>]*>(.*?)</pre>", page_html, re.S)]


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip() and "markdown-exec: hide" not in line]


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("site") / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def test_docs_build_strict(site):
    html = _built(site, "mlp.md")
    assert "222010" in html  # the executed parameter count, not a hard-coded string in the source
    assert EXEC_PAGES, "no page executes code: the checks below would be vacuous"


@pytest.mark.parametrize("page", EXEC_PAGES)
def test_executed_blocks_show_their_code_and_output(site, page):
    blocks = _exec_blocks(DOCS / page)
    pres = _pre_blocks(_built(site, page))
    problems = []
    for k, (options, code) in enumerate(blocks, 1):
        first = code.strip().splitlines()[0]
        if not SHOWS_SOURCE.search(options):
            problems.append(f"block {k} ({first!r}) does not show its code: add source=\"above\"")
            continue
        want = "\n".join(_lines(code))
        hits = [i for i, text in enumerate(pres) if want in "\n".join(_lines(text))]
        if not hits:
            problems.append(f"block {k} ({first!r}): its code is not on the built page")
            continue
        if "result=" in options:
            out = pres[hits[0] + 1] if hits[0] + 1 < len(pres) else ""
            if not out.strip() or out.strip() == want.strip():
                problems.append(f"block {k} ({first!r}) renders no output: printing from inside a library "
                                "function is not captured by markdown-exec; print the text in the block")
    assert not problems, f"{page}: " + "; ".join(problems)


def test_no_page_has_an_empty_code_block(site):
    empty = [p.relative_to(site).as_posix() for p in sorted(site.rglob("*.html"))
             if any(not text.strip() for text in _pre_blocks(p.read_text()))]
    assert not empty, f"pages with an empty <pre> block (an executed block that printed nothing?): {empty}"


def test_api_reference_has_no_raw_roles_and_no_dunder_all(site):
    html = _built(site, "api.md")
    assert "funcnet.testing.assert_grads_close" in html  # the page documents the new module
    dunder = sorted(set(re.findall(r'id="([^"]*__all__)"', html)))
    assert not dunder, f"the API reference lists __all__ as a member: {dunder}"
    roles = sorted(set(RAW_ROLE.findall(html)))
    text = _text(html)
    examples = sorted(set(re.findall(r":(?:func|class|mod|meth|attr|exc|data|obj):`?\w[\w.]*", text)))[:10]
    assert not roles, f"raw Sphinx roles in the API reference ({len(RAW_ROLE.findall(html))}), e.g. {examples}"
