"""Command line: ``python -m inpaintlib train`` end to end, ``inpaint`` on its result, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from inpaintlib.inference import cli as inpaint_cli
from inpaintlib.rundir import load_config, load_history, load_metrics, sample_paths
from inpaintlib.train import cli as train_cli

TRAIN_FLAGS = [
    "--profile", "--data", "--val-data", "--size", "--batch-size", "--steps", "--finetune-steps", "--out",
    "--resume", "--init-from", "--bottleneck", "--device", "--width", "--amp", "--compile", "--workers", "--seed", "--quiet",
    "--loss-weights", "--lr", "--finetune-lr", "--lr-g", "--lr-d",
]  # fmt: skip
INPAINT_FLAGS = ["--checkpoint", "--image", "--mask", "--out", "--invert-mask", "--device", "--ensemble"]


def _photo_folders(tmp: Path) -> tuple[Path, Path]:
    """The embedded photos when the repository has them, else a few scikit-image photos."""
    repo = Path(__file__).resolve().parents[1] / "data" / "photos"
    if any((repo / "train").glob("*.jpg")) and any((repo / "val").glob("*.jpg")):
        return repo / "train", repo / "val"
    for split, names in {"train": ["astronaut", "coffee", "chelsea"], "val": ["cat", "rocket"]}.items():
        (tmp / split).mkdir(parents=True)
        for name in names:
            Image.fromarray(getattr(skdata, name)()).save(tmp / split / f"{name}.png")
    return tmp / "train", tmp / "val"


def _python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # small shapes; no OpenMP spinning on a busy machine
    command = [sys.executable, "-m", "inpaintlib", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    train_dir, val_dir = _photo_folders(tmp / "photos")
    out = tmp / "run"
    args = [
        "train", "pconv", "--data", str(train_dir), "--val-data", str(val_dir), "--size", "64", "--batch-size", "2",
        "--width", "8", "--steps", "3", "--finetune-steps", "1", "--out", str(out), "--device", "cpu",
        "--vgg-weights", "hed", "--eval-images", "4", "--log-every", "1", "--quiet",
    ]  # fmt: skip
    start = time.perf_counter()
    result = _python(*args)
    return out, result, time.perf_counter() - start


def test_train_help_documents_every_flag():
    result = _python("train", "--help")
    assert result.returncode == 0, result.stderr
    for flag in TRAIN_FLAGS:
        assert flag in result.stdout, flag
    assert "ce" in result.stdout and "pconv" in result.stdout


def test_train_cli_writes_a_valid_run_directory(cli_run):
    out, result, _ = cli_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""  # --quiet
    config = load_config(out)
    assert (config["kind"], config["image_size"], config["width"], config["profile"]) == ("pconv", 64, 8, "cpu")
    assert load_history(out)["step"].tolist() == [1, 2, 3, 4]
    assert [s for s, _ in sample_paths(out)][-1] == 4
    assert load_metrics(out)["num_images"] == 4
    card = (out / "RUN.md").read_text()
    assert "python -m inpaintlib train pconv" in card and "--size 64" in card


def test_train_cli_resume_extends_a_finished_run(cli_run, tmp_path):
    out, result, _ = cli_run
    assert result.returncode == 0
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    assert train_cli(["pconv", "--out", str(copy), "--resume", "--finetune-steps", "2", "--quiet"]) == 0
    h = load_history(copy)
    assert h["step"].tolist() == [1, 2, 3, 4, 5] and h["phase"].tolist()[-2:] == ["finetune", "finetune"]
    assert load_config(copy)["width"] == 8  # the stored settings, not the cpu profile's


def test_train_cli_reports_bad_settings_with_a_clear_message(tmp_path, capsys):
    assert train_cli(["ce", "--size", "64", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "128x128" in capsys.readouterr().err
    assert train_cli(["pconv", "--out", str(tmp_path / "x"), "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_cli(["ce", "--out", str(tmp_path / "x"), "--finetune-steps", "3"])
    assert "pconv only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_cli(["ce", "--out", str(tmp_path / "x"), "--loss-weights", "style=0"])
    assert "pconv only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_cli(["pconv", "--out", str(tmp_path / "x"), "--loss-weights", "style"])
    assert "NAME=NUMBER" in capsys.readouterr().err
    assert train_cli(["pconv", "--out", str(tmp_path / "x"), "--loss-weights", "styl=0", "--quiet"]) == 2
    assert "unknown loss weight(s) ['styl']" in capsys.readouterr().err
    assert train_cli(["pconv", "--out", str(tmp_path / "x"), "--loss-weights", "hole=-1", "--quiet"]) == 2
    assert ">= 0" in capsys.readouterr().err
    for kind, flag, owner in [("ce", "--finetune-lr", "pconv"), ("pconv", "--lr-g", "ce"), ("pconv", "--lr-d", "ce")]:
        with pytest.raises(SystemExit):
            train_cli([kind, "--out", str(tmp_path / "x"), flag, "1e-4"])
        assert f"{owner} only" in capsys.readouterr().err
    assert train_cli(["pconv", "--out", str(tmp_path / "x"), "--finetune-lr", "0", "--quiet"]) == 2
    assert "finetune_lr must be a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before any work


def test_train_cli_loss_weights_reach_the_run(tmp_path):
    train_dir, val_dir = _photo_folders(tmp_path / "photos")
    out = tmp_path / "run"
    args = [
        "pconv", "--data", str(train_dir), "--val-data", str(val_dir), "--size", "64", "--batch-size", "2",
        "--width", "8", "--steps", "1", "--finetune-steps", "0", "--out", str(out), "--device", "cpu",
        "--eval-images", "2", "--vgg-weights", "hed", "--loss-weights", "style=0, perceptual=0", "--quiet",
    ]  # fmt: skip
    assert train_cli(args) == 0
    assert load_config(out)["loss_weights"] == {"style": 0.0, "perceptual": 0.0}
    assert float(load_history(out)["style_out"][0]) == 0.0  # the VGG terms were really off
    assert "--loss-weights" in (out / "RUN.md").read_text()


@pytest.fixture
def picture(tmp_path) -> tuple[Path, np.ndarray, Path, np.ndarray]:
    """A 100x75 photo (not a multiple of the U-Net's 32) and a mask with a rectangular hole."""
    pixels = np.asarray(Image.fromarray(skdata.astronaut()).resize((100, 75)))
    image_path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(image_path)
    valid = np.full((75, 100), 255, np.uint8)
    valid[20:50, 30:70] = 0
    mask_path = tmp_path / "mask.png"
    Image.fromarray(valid).save(mask_path)
    return image_path, pixels, mask_path, valid


def test_inpaint_cli_keeps_the_known_pixels_and_fills_the_hole(cli_run, picture, tmp_path):
    out, result, _ = cli_run
    assert result.returncode == 0
    image_path, pixels, mask_path, valid = picture
    for checkpoint in (out, out / "weights.pt"):
        target = tmp_path / "filled.png"
        args = ["--checkpoint", str(checkpoint), "--image", str(image_path), "--mask", str(mask_path)]
        assert inpaint_cli([*args, "--out", str(target)]) == 0
        filled = np.asarray(Image.open(target))
        assert filled.shape == pixels.shape
        known = valid == 255
        assert np.array_equal(filled[known], pixels[known])
        assert not np.array_equal(filled[~known], pixels[~known])
    # the same hole given as white-on-black
    Image.fromarray(255 - valid).save(tmp_path / "inverted.png")
    args = ["--checkpoint", str(out), "--image", str(image_path), "--mask", str(tmp_path / "inverted.png")]
    assert inpaint_cli([*args, "--invert-mask", "--out", str(tmp_path / "inv.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "inv.png")), filled)


def test_inpaint_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        inpaint_cli(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in INPAINT_FLAGS:
        assert flag in text, flag


def test_inpaint_cli_rejects_bad_masks_with_a_clear_message(cli_run, picture, tmp_path, capsys):
    out, result, _ = cli_run
    assert result.returncode == 0
    image_path, _, mask_path, valid = picture
    base = ["--checkpoint", str(out), "--image", str(image_path), "--out", str(tmp_path / "o.png")]

    Image.fromarray(valid[:, :80]).save(tmp_path / "small.png")
    assert inpaint_cli([*base, "--mask", str(tmp_path / "small.png")]) == 2
    assert "75x80" in capsys.readouterr().err

    grey = np.random.default_rng(0).integers(0, 256, valid.shape, dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert inpaint_cli([*base, "--mask", str(tmp_path / "grey.png")]) == 2
    assert "not black and white" in capsys.readouterr().err

    Image.fromarray(np.full_like(valid, 255)).save(tmp_path / "white.png")
    assert inpaint_cli([*base, "--mask", str(tmp_path / "white.png")]) == 2
    assert "no hole" in capsys.readouterr().err

    assert inpaint_cli([*base, "--mask", str(tmp_path / "missing.png")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()

    result = _python("inpaint", "--checkpoint", str(tmp_path / "no-run"), *base[2:], "--mask", str(mask_path))
    assert result.returncode != 0 and "no-run" in result.stderr and "Traceback" not in result.stderr
