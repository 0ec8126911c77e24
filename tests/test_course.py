"""The book works as a course for self-study (issue 19): every chapter states its learning goals and
prerequisites, ends with a summary and exercises at three levels, each with a hint and a worked
solution, and code solutions are executed cells; notation, glossary and the closing page are in the book.
The built pages of the new back matter render in headless Chromium (skipped without Chromium or a build).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from inpaintlib import book

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
HTML = REPO / "_build" / "html"
LEVELS = ("Check your understanding", "Change and predict", "Extend")
PAGES = ("notation", "glossary", "06_where_next")


def _cells(name: str) -> list:
    return nbformat.read(BOOK / f"{name}.ipynb", as_version=4).cells


def _exercises(cells: list) -> list[tuple[str, list]]:
    """(markdown of each exercise, the code cells that follow it) after the '## Exercises' heading."""
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    out: list[tuple[str, list]] = []
    for cell in cells[start + 1:]:
        if cell.cell_type == "markdown" and cell.source.startswith("### "):
            out.append((cell.source, []))
        elif out and cell.cell_type == "code":
            out[-1][1].append(cell)
    return out


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_chapter_opens_with_goals_and_prerequisites(name: str) -> None:
    cells = _cells(name)
    goals = [c for c in cells[:6] if c.cell_type == "markdown" and "## Learning goals" in c.source]
    assert len(goals) == 1, f"{name}: no 'Learning goals' section near the top"
    text = goals[0].source
    items = re.findall(r"^\d+\. ", text, flags=re.M)
    assert 3 <= len(items) <= 5, f"{name}: {len(items)} learning goals (want 3-5)"
    assert "**Prerequisites.**" in text and "**What to expect.**" in text
    assert "{doc}`notation`" in text and "{doc}`glossary`" in text, f"{name}: goals must link notation and glossary"
    if name != book.CHAPTERS[0]:
        assert "{ref}`sec-" in text, f"{name}: prerequisites must link to sections of earlier chapters"


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_chapter_ends_with_summary_and_exercises_with_hints_and_solutions(name: str) -> None:
    cells = _cells(name)
    sources = [c.source for c in cells if c.cell_type == "markdown"]
    assert any("## Summary" in s for s in sources) and any("## Exercises" in s for s in sources)
    exercises = _exercises(cells)
    assert 4 <= len(exercises) <= 8, f"{name}: {len(exercises)} exercises (want 4-8)"
    kinds = set()
    for text, code in exercises:
        title = text.splitlines()[0]
        kind = next((k for k in LEVELS if f"*{k}.*" in text), None)
        assert kind, f"{name}: {title} does not say its level"
        kinds.add(kind)
        assert "```{hint}\n:class: dropdown" in text, f"{name}: {title} has no hidden hint"
        has_text_solution = "```{admonition} Solution\n:class: dropdown" in text
        assert has_text_solution or code, f"{name}: {title} has no solution"
        for cell in code:
            assert "hide-cell" in cell.metadata.get("tags", []), f"{name}: solution of {title} is not hidden"
    assert kinds == set(LEVELS), f"{name}: exercises cover only {sorted(kinds)}"


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_code_solutions_were_executed_without_errors(name: str) -> None:
    solutions = [cell for _, code in _exercises(_cells(name)) for cell in code]
    assert solutions, f"{name}: no executed code solution (at least one exercise must run in the chapter)"
    for cell in solutions:
        assert cell.execution_count is not None and cell.outputs, f"{name}: solution cell not executed:\n{cell.source}"
        assert all(o.output_type != "error" for o in cell.outputs)


def test_every_section_reference_has_a_target() -> None:
    texts = [c.source for name in book.CHAPTERS for c in _cells(name) if c.cell_type == "markdown"]
    texts += [p.read_text() for p in BOOK.glob("*.md")]
    labels = {m for t in texts for m in re.findall(r"^\(([\w-]+)\)=$", t, flags=re.M)}
    used = {m for t in texts for m in re.findall(r"\{ref\}`([\w-]+)`", t)}
    assert used and used <= labels, f"references without a target: {sorted(used - labels)}"


def test_back_matter_and_closing_page_are_in_the_toc() -> None:
    files = re.findall(r"^\s*- file: (\S+)\s*$", (REPO / "_toc.yml").read_text(), flags=re.M)
    for page in PAGES:
        assert f"book/{page}" in files and (BOOK / f"{page}.md").is_file()
    chapters = re.findall(r"^      - file: (\S+)\s*$", (REPO / "_toc.yml").read_text(), flags=re.M)  # not sections
    assert chapters.index("book/06_where_next") == chapters.index(f"book/{book.CHAPTERS[-1]}") + 1
    bib = (BOOK / "references.bib").read_text()
    for key in ("iizuka2017globally", "yu2018contextual", "yu2019gated", "zeng2020highres", "portilla2000texture",
                "suvorov2022lama", "lugmayr2022repaint"):
        assert f"{{{key}," in bib, key
        cited = [p for p in [*BOOK.glob("*.md"), *BOOK.glob("*.ipynb")] if key in p.read_text()]
        assert cited, f"{key} is in references.bib but no page cites it"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_new_pages_render_math_and_dropdowns(page: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    path = HTML / "book" / f"{page}.html"
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    if not path.is_file():
        pytest.skip("no built book in _build/html (run `make book` first)")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--virtual-time-budget=20000"]
    dom = subprocess.run([*common, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "</html>" in dom, f"chromium returned no DOM for {path}"
    assert "<mjx-container" in dom, f"{page}: MathJax did not typeset the page"
    if page == "glossary":
        assert dom.count('<dt id="term-') >= 30, "glossary terms missing"
    if page == "06_where_next":
        assert dom.count("dropdown") >= 3, "exercise solutions are not hidden in dropdowns"
