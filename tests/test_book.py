"""The book's runner (inpaintlib.book), the committed chapters, and the built HTML.

* the runner's cleaning step on hand-made notebooks (papermill metadata, timings, injected cells);
* the committed chapters: no machine paths, no papermill leftovers, one ``parameters`` cell each;
* a real papermill run of a tiny notebook through ``run_chapter`` (a kernel start, a few seconds);
* the HTML in ``_build/html``, rendered by headless Chromium: every chapter page shows its figures and
  its typeset math (and Chapter 2 its slider); a screenshot of each page is kept in
  ``_build/html/_screenshots/`` for reviewers. Skipped when Chromium or the build is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest

from inpaintlib import book

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
HTML = REPO / "_build" / "html"


def _tiny_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\ntrain = False')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell('profile = "gpu"\ntrain = True')
    injected.metadata["tags"] = ["injected-parameters"]
    injected.metadata["papermill"] = {"status": "completed"}
    error_note = nbformat.v4.new_markdown_cell("An Exception was encountered")
    error_note.metadata["tags"] = ["papermill-error-cell-tag"]
    work = nbformat.v4.new_code_cell("print(profile)")
    work.execution_count = 7
    work.outputs = [nbformat.v4.new_output("stream", name="stdout", text="gpu\n")]
    work.metadata["execution"] = {"iopub.execute_input": "2026-11-25T20:00:00.000Z"}
    work.metadata["papermill"] = {"duration": 0.1, "start_time": "2026-11-25T20:00:00"}
    work.metadata["tags"] = []
    result = nbformat.v4.new_code_cell("1 + 1")
    result.execution_count = 9
    result.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=9)]
    nb.cells = [error_note, params, injected, work, result]
    nb.metadata["papermill"] = {"input_path": str(REPO / "book/x.ipynb"), "output_path": str(TEMP / "x.ipynb")}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    return nb


def test_clean_notebook_strips_papermill_metadata_and_injected_cells() -> None:
    nb = book.clean_notebook(_tiny_notebook())
    assert "papermill" not in nb.metadata
    assert nb.metadata["language_info"]["version"] == "3.11"
    sources = [c.source for c in nb.cells]
    assert sources == ['profile = "cpu"\ntrain = False', "print(profile)", "1 + 1"]  # defaults kept
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
    assert nb.cells[0].metadata["tags"] == ["parameters"]
    assert "tags" not in nb.cells[1].metadata  # the empty list goes
    assert nb.cells[1].outputs[0]["text"] == "gpu\n"  # outputs of the run stay
    assert book.find_machine_paths(nb) == []


def test_clean_notebook_renumbers_executed_cells() -> None:
    nb = book.clean_notebook(_tiny_notebook())
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == [None, 1, 2]
    assert nb.cells[2].outputs[0]["execution_count"] == 2


REPO = book.book_dir().parent  # this machine's real folders, wherever the clone and the temp folder are
TEMP = Path(tempfile.gettempdir())


@pytest.mark.parametrize(
    "text, found",
    [
        (f"saved to {REPO / 'data/runs/ce'}", [str(REPO / "data/runs/ce")]),
        (f"cache at {Path.home() / '.cache/torch/hub'}", [str(Path.home() / ".cache/torch/hub")]),
        (f"see {TEMP / 'pytest-1/x.png'} and /home/ana/photos", [str(TEMP / "pytest-1/x.png"), "/home/ana/photos"]),
        ("on another machine: /Users/ana/inpaint-book/data", ["/Users/ana/inpaint-book/data"]),
        ("run directory: data/runs/ce, 1/2 of the pixels, book/tmp", []),
    ],
)
def test_find_machine_paths_in_outputs(text: str, found: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nb.cells = [cell]
    assert [p for _, p in book.find_machine_paths(nb)] == found


def test_resolve_chapters_accepts_numbers_and_names() -> None:
    paths = book.resolve_chapters("1, 03_context_encoder,05")
    assert [p.stem for p in paths] == ["01_ml_background", "03_context_encoder", "05_training_evaluation"]
    assert [p.stem for p in book.resolve_chapters(None)] == list(book.CHAPTERS)
    with pytest.raises(ValueError, match="unknown chapter '9'"):
        book.resolve_chapters("9")


def test_cli_clean_rewrites_file(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    nbformat.write(_tiny_notebook(), path)
    assert book.cli(["clean", str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    assert "papermill" not in nb.metadata and len(nb.cells) == 3


def test_cli_rejects_unknown_profile() -> None:
    with pytest.raises(SystemExit):
        book.cli(["run", "--profile", "tpu"])


def test_run_chapter_executes_in_place_with_parameters(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\ntrain = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import os\nprint(profile, train, os.path.basename(os.getcwd()))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "chapter").mkdir()
    path = tmp_path / "chapter" / "ch.ipynb"
    nbformat.write(nb, path)
    seconds = book.run_chapter(path, profile="gpu", train=True)
    assert seconds > 0
    done = nbformat.read(path, as_version=4)
    assert [c.source for c in done.cells] == [c.source for c in nb.cells]  # injected cell removed
    assert done.cells[1].outputs[0]["text"] == "gpu True chapter\n"  # parameters applied, cwd = its folder
    assert "papermill" not in done.metadata
    assert all("execution" not in c.metadata and "papermill" not in c.metadata for c in done.cells)


def test_run_chapter_leaves_notebook_untouched_on_failure(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    before = path.read_text()
    with pytest.raises(RuntimeError, match="bad.ipynb failed"):
        book.run_chapter(path)
    assert path.read_text() == before


# ----------------------------------------------------------------------------- the committed chapters
@pytest.mark.parametrize("name", book.CHAPTERS)
def test_committed_chapter_is_clean(name: str) -> None:
    nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
    assert book.find_machine_paths(nb) == [], "absolute machine paths in a committed chapter"
    assert "papermill" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert sum("parameters" in t for t in tags) == 1
    assert not any("injected-parameters" in t for t in tags)
    params = next(c for c, t in zip(nb.cells, tags) if "parameters" in t).source
    assert re.search(r'^profile = "cpu"', params, re.M) and re.search(r"^train = False", params, re.M)
    assert "colab.research.google.com" in nb.cells[0].source  # the badge
    assert "google.colab" in nb.cells[1].source  # the install cell that does nothing elsewhere
    for cell in nb.cells:
        assert "execution" not in cell.metadata and "papermill" not in cell.metadata
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{name} was committed with an error output"
    executed = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    assert len(executed) >= 3, f"{name} looks unexecuted"


# -------------------------------------------------------------------------- the HTML in headless Chromium
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.parametrize("name", book.CHAPTERS)
def test_built_page_has_figures_and_rendered_math(name: str) -> None:
    browser = _chromium()
    page = HTML / "book" / f"{name}.html"
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    if not page.is_file():
        pytest.skip("no built book in _build/html (run `make book` first)")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--virtual-time-budget=20000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "</html>" in dom, f"chromium returned no DOM for {page}"
    # figures: every <img> of a code output resolves to a file of the build
    images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    figures = [src for src in images if "_images/" in src]
    assert figures, f"{name}: no figure images on the page"
    for src in figures:
        assert (page.parent / src.split("?")[0]).resolve().is_file(), f"{name}: missing image {src}"
    # math: MathJax replaced the TeX source by its own elements
    assert "<mjx-container" in dom, f"{name}: MathJax did not typeset the page"
    assert "math notranslate" not in dom or dom.count("<mjx-container") >= dom.count('class="math notranslate')
    if name == "02_partial_convolution":
        assert "widget-slider" in dom, "the iteration slider was not rendered from the stored widget state"
    shots = HTML / "_screenshots"
    shots.mkdir(exist_ok=True)
    subprocess.run([*common, "--window-size=1280,2400", f"--screenshot={shots / (name + '.png')}", page.as_uri()],
                   capture_output=True, timeout=120, cwd=shots)
    assert (shots / f"{name}.png").is_file()
