"""One repository address: ``_config.yml`` holds it, ``python -m inpaintlib book sync`` writes every copy."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from inpaintlib import book, booksync

ROOT = Path(__file__).resolve().parents[1]


def test_the_address_is_only_the_configured_one_and_everything_is_in_sync():
    assert booksync.foreign_addresses(ROOT) == []
    stale = booksync.sync(ROOT, check=True)
    assert stale == [], f"out of date, run `python -m inpaintlib book sync`: {[str(p) for p in stale]}"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "launch_buttons" not in config  # one Colab entry per page (the badge); no Binder
    url = config["repository"]["url"]
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls == {"Repository": url, "Issues": f"{url}/issues"}


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_each_chapter_has_one_badge_and_one_setup_cell(name):
    nb = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    url, ref = booksync.read_repository(ROOT)
    assert sum(booksync.badge_line(url, ref, f"{name}.ipynb") in c.source for c in nb.cells) == 1
    setup = [c for c in nb.cells if booksync.SETUP_TAG in c.metadata.get("tags", [])]
    assert len(setup) == 1 and "hide-cell" in setup[0].metadata.tags
    assert setup[0].source.count(url) == 1 and 'if "google.colab" in sys.modules:' in setup[0].source
    if name == "02_partial_convolution":
        assert "ipywidgets>=8" in setup[0].source  # ipywidgets.Stack


def _copy_project(dst: Path) -> Path:
    for name in ("README.md", "_config.yml", "pyproject.toml"):
        shutil.copyfile(ROOT / name, dst / name)
    (dst / "book").mkdir()
    for path in (ROOT / "book").glob("*.ipynb"):
        shutil.copyfile(path, dst / "book" / path.name)
    (dst / "inpaintlib").mkdir()
    shutil.copyfile(ROOT / "inpaintlib" / "stored_runs.json", dst / "inpaintlib" / "stored_runs.json")
    (dst / "data").mkdir()
    (dst / "data" / "runs").symlink_to(ROOT / "data" / "runs")
    return dst


def test_changing_the_url_and_syncing_changes_every_link(tmp_path):
    if not (ROOT / "data" / "runs").is_dir():
        pytest.skip("no data/runs in this checkout")
    root = _copy_project(tmp_path)
    old_url, old_ref = booksync.read_repository(root)
    config = (root / "_config.yml").read_text()
    (root / "_config.yml").write_text(config.replace(old_url, "https://github.com/someone/fork").replace(
        f"branch: {old_ref}", "branch: v2.0"))
    assert booksync.foreign_addresses(root)  # every generated copy still names the old address
    changed = booksync.sync(root)
    assert {p.name for p in changed} >= {f"{c}.ipynb" for c in book.CHAPTERS} | {"README.md", "pyproject.toml",
                                                                                   "stored_runs.json"}
    assert booksync.foreign_addresses(root) == []
    old_repo = old_url.removeprefix("https://github.com/")
    for path in [*root.glob("book/*.ipynb"), root / "README.md", root / "pyproject.toml",
                 root / "inpaintlib" / "stored_runs.json"]:
        assert old_repo not in path.read_text(), path.name
    nb = nbformat.read(root / "book" / "02_partial_convolution.ipynb", as_version=4)
    before = nbformat.read(ROOT / "book" / "02_partial_convolution.ipynb", as_version=4)
    assert len(nb.cells) == len(before.cells)
    assert ("https://colab.research.google.com/github/someone/fork/blob/v2.0/book/02_partial_convolution.ipynb"
            in nb.cells[0].source)
    assert "raw.githubusercontent.com/someone/fork/v2.0/data/runs/" in (root / "README.md").read_text()
    assert booksync.sync(root) == []  # idempotent: a second run changes nothing


def test_sync_adds_a_missing_badge_and_setup_cell(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "data" / "runs").mkdir(parents=True)
    (tmp_path / "inpaintlib").mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/a/b\n  branch: main\n")
    (tmp_path / "README.md").write_text("![x](data/runs/r/x.png)\n`pip install \"inpaintlib @ git+https://github.com/o/r@v1.2\"`\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[project.optional-dependencies]\n')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("1")])
    nbformat.write(nb, tmp_path / "book" / "07_new.ipynb")
    booksync.sync(tmp_path)
    nb = nbformat.read(tmp_path / "book" / "07_new.ipynb", as_version=4)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert nb.cells[0].source.startswith("# Title\n\n[![Open in Colab](_static/colab-badge.svg)](https://colab.")
    assert nb.cells[1].metadata.tags == ["hide-cell", "colab-setup"] and nb.cells[2].source == "1"
    assert (tmp_path / "README.md").read_text() == ("![x](https://raw.githubusercontent.com/a/b/main/data/runs/r/x.png)\n"
                                                   '`pip install "inpaintlib @ git+https://github.com/a/b@main"`\n')
    assert tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"]["urls"]["Repository"] == \
        "https://github.com/a/b"
    assert booksync.sync(tmp_path) == []
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://gitlab.com/a/b\n  branch: main\n")
    with pytest.raises(ValueError, match="GitHub"):
        booksync.sync(tmp_path)


def test_sync_check_reports_without_writing(tmp_path, capsys, monkeypatch):
    (tmp_path / "book").mkdir()
    (tmp_path / "data" / "runs").mkdir(parents=True)
    (tmp_path / "inpaintlib").mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/a/b\n  branch: main\n")
    (tmp_path / "README.md").write_text("![x](data/x.png)\n")
    (tmp_path / "pyproject.toml").write_text('[project]\n\n[project.optional-dependencies]\n')
    monkeypatch.setattr(book, "book_dir", lambda: tmp_path / "book")
    assert book.cli(["sync", "--check"]) == 1
    assert (tmp_path / "README.md").read_text() == "![x](data/x.png)\n"
    assert "out of date: README.md" in capsys.readouterr().out
    assert book.cli(["sync"]) == 0 and book.cli(["sync", "--check"]) == 0


def test_the_setup_cell_does_nothing_outside_colab(tmp_path, monkeypatch):
    import os
    import sys

    url, ref = booksync.read_repository(ROOT)
    source = booksync.setup_cell_source(url, ref, "02_partial_convolution")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    exec(compile(source, "setup-cell", "exec"), {})
    assert os.getcwd() == str(tmp_path) and sys.path == path_before and list(tmp_path.iterdir()) == []
