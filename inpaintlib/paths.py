"""Where things live in a checkout of the repository: the one place that computes the repository root.

The library is importable from an installed wheel too; there these folders may not exist, and the callers
that need them (stored photos, stored runs, the book) say so.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["repo_root", "book_dir", "photos_dir", "stored_runs_dir", "studies_dir"]


def repo_root() -> Path:
    """The folder that holds ``inpaintlib/``, ``book/`` and ``data/`` in a checkout."""
    return Path(__file__).resolve().parents[1]


def book_dir() -> Path:
    """The chapters' folder, ``book/``."""
    return repo_root() / "book"


def photos_dir() -> Path:
    """The embedded photos, ``data/photos`` (``train/`` and ``val/`` below it)."""
    return repo_root() / "data" / "photos"


def stored_runs_dir() -> Path:
    """The stored training runs, ``data/runs``."""
    return repo_root() / "data" / "runs"


def studies_dir() -> Path:
    """The files of runs kept without their weights, ``data/studies``: comparisons a chapter reads and the steps
    on the way to the stored runs (each re-created by the command on its card)."""
    return repo_root() / "data" / "studies"
