"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data as skdata


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks gain nothing from a second thread, and on a busy 2-core machine OpenMP's
    spinning makes two threads many times slower than one. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Tiny train/val photo folders (scikit-image's sample photos at 96x72) for CPU runs of seconds."""
    root = tmp_path_factory.mktemp("photos")
    splits = {"train": ["astronaut", "coffee", "chelsea", "rocket"], "val": ["cat", "immunohistochemistry"]}
    for split, names in splits.items():
        (root / split).mkdir()
        for name in names:
            Image.fromarray(getattr(skdata, name)()).resize((96, 72)).save(root / split / f"{name}.png")
    return root
