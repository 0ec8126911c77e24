"""bench/heldout_wallpapers.py: the held-out photo sets and the card tables printed from stored evaluations."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

from inpaintlib import results
from inpaintlib.rundir import load_config

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "data" / "runs"
SETS = ("wallpapers", "stellarium")  # the sets of bench/heldout_wallpapers.py (a test checks the list)
SCORED = sorted((p.parent.parent.name, name) for name in SETS for p in RUNS.glob(f"*/evaluation-{name}/summary.csv"))


def _script():
    spec = importlib.util.spec_from_file_location("heldout_wallpapers", ROOT / "bench" / "heldout_wallpapers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_stellarium_set_keeps_only_large_rgb_images(tmp_path):
    heldout = _script()
    folder = tmp_path / heldout.NEBULAE_DIR
    folder.mkdir(parents=True)
    Image.new("RGB", (1024, 1024)).save(folder / "big.png")
    Image.new("RGB", (512, 512)).save(folder / "small.png")
    Image.new("P", (1024, 1024)).save(folder / "palette.png")
    assert list(heldout.sources(tmp_path, heldout.SETS["stellarium"])) == ["stellarium-big"]
    out = heldout.build_set(tmp_path, tmp_path / "set", heldout.SETS["stellarium"])
    with Image.open(out / "stellarium-big.png") as im:
        assert im.size == (heldout.SHORT_SIDE, heldout.SHORT_SIDE)


def test_the_sets_are_the_scripts():
    assert sorted(_script().SETS) == sorted(SETS)


@pytest.mark.parametrize(("run", "name"), SCORED)
def test_card_tables_of_held_out_sets_match_the_stored_files(run, name):
    """Every held-out evaluation of a run: the bold cells of --report's table are the cells where
    results.against_classical says the run wins; the cards show the stellarium table as printed."""
    heldout = _script()
    card = (RUNS / run / "RUN.md").read_text()
    folder = RUNS / run / f"evaluation-{name}"
    text = heldout.report(RUNS / run, name)
    psnr_row = next(line for line in text.splitlines() if line.startswith("| PSNR, this run"))
    table = results.against_classical(results.read_summary(folder / "summary.csv"), load_config(RUNS / run)["kind"])
    assert [c.strip().startswith("**") for c in psnr_row.split("|")[2:-1]] == [t["beats_psnr"] for t in table]
    if name == "stellarium" and f"`{folder.name}/`" in card:
        assert text.split("\n\n")[0] in card
