"""Faults, round two (issue 28), part one: outputs are written atomically and never read back as inputs, and
every file that is not a weights file ends in the same one line.

Items 1-4, 6 and 9 of the issue. Most cases run in-process (``inpaintlib.__main__.main``) on tiny models and
photos; the two that need a real file-size limit (RLIMIT_FSIZE, as a full disk) run one subprocess each.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from inpaintlib import rundir
from inpaintlib.__main__ import main
from inpaintlib.data import PhotoFolder
from inpaintlib.evaluate import evaluate
from inpaintlib.models import ContextEncoder, PConvUNet
from inpaintlib.train import make_config
from inpaintlib.train.resume import settings_for

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(*args: str, limit_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    """``python -m inpaintlib ARGS`` in a subprocess, optionally under a file-size limit (a full disk)."""

    def child() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if limit_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("INPAINTLIB_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "inpaintlib", *args], env=env, capture_output=True, text=True,
                          timeout=240, preexec_fn=child)


def one_line_error(stderr: str, *fragments: str) -> str:
    """The last stderr line, checked to be ``error: ...`` with no traceback and to hold ``fragments``."""
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def save_weights(model: torch.nn.Module, kind: str, args: dict, path: Path) -> Path:
    rundir.save_weights(path, kind, args, model, {"step": 0})
    return path


@pytest.fixture(scope="module")
def tiny_pconv(tmp_path_factory) -> Path:
    """weights.pt of an untrained 3-layer PConv U-Net of width 4 (pads to multiples of 8)."""
    args = {"image_size": 32, "layers": 3, "width": 4}
    return save_weights(PConvUNet(**args), "pconv", args, tmp_path_factory.mktemp("pconv") / "weights.pt")


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory) -> Path:
    args = {"bottleneck": 8, "width": 4}
    return save_weights(ContextEncoder(**args), "ce", args, tmp_path_factory.mktemp("ce") / "weights.pt")


@pytest.fixture()
def photo_and_mask(tmp_path) -> tuple[Path, Path]:
    Image.fromarray(skdata.astronaut()).resize((48, 40)).save(tmp_path / "photo.png")
    mask = Image.new("L", (48, 40), 255)
    mask.paste(0, (10, 10, 20, 20))
    mask.save(tmp_path / "mask.png")
    return tmp_path / "photo.png", tmp_path / "mask.png"


# ------------------------------------------------------------------------------------ 1. export is atomic
def test_export_under_a_full_disk_keeps_the_previous_file_and_ends_in_one_line(tiny_ce, tmp_path):
    good = tmp_path / "good.onnx"
    good.write_bytes(b"the previous export, which must survive" * 1000)  # 39 kB
    before = good.read_bytes()
    result = run_cli("export", str(tiny_ce), "--format", "onnx", "--out", str(good), limit_file_bytes=20_000)
    assert result.returncode == 2, result.stderr[-2000:]
    one_line_error(result.stderr, "good.onnx")
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.onnx"]  # no temporary file left behind


def test_export_to_a_folder_is_refused_before_any_work(tiny_ce, tmp_path, capsys):
    assert main(["export", str(tiny_ce), "--format", "onnx", "--out", str(tmp_path)]) == 2
    one_line_error(capsys.readouterr().err, "is a folder")


# -------------------------------------------------------- 2-3. evaluation folders: claimed, all or nothing
@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skdata, name)()).resize((72, 64)).save(root / f"{name}.png")
    return root


def test_two_evaluations_into_one_folder_never_mix(photos, tmp_path):
    out, started, release, results = tmp_path / "eval", threading.Event(), threading.Event(), {}

    def slow(image, mask):  # the first evaluation waits here while the second one starts
        started.set()
        release.wait(60)
        return image

    def first():
        results["first"] = evaluate(photos, {"slow": slow}, size=32, out_dir=out, progress=False, limit=1,
                                    masks_per_image=1, lpips=False)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(60)
        with pytest.raises(ValueError, match="being written by another evaluation"):
            evaluate(photos, ["mean"], size=32, out_dir=out, progress=False, limit=1, masks_per_image=1, lpips=False)
        with pytest.raises(ValueError, match="being written by another evaluation"):
            evaluate(photos, ["mean"], size=32, out_dir=out, progress=False, overwrite=True, lpips=False)
    finally:
        release.set()
        thread.join(60)
    assert "slow" in (out / "metrics.csv").read_text() and "mean" not in (out / "metrics.csv").read_text()
    assert not (out / rundir.LOCK_NAME).exists()


def test_overwrite_under_a_full_disk_leaves_the_previous_evaluation_exactly_as_it_was(photos, tmp_path):
    out = tmp_path / "eval"
    evaluate(photos, ["mean"], size=64, out_dir=out, progress=False, lpips=False)
    before = digests(out)
    assert {"metrics.csv", "summary.md", "metrics_by_hole_ratio.png", "examples.png"} <= before.keys()
    assert max(len((out / n).read_bytes()) for n in ("metrics.csv", "summary.csv", "summary.md")) < 12_000
    result = run_cli("evaluate", "--images", str(photos), "--methods", "telea", "--size", "64", "--out", str(out),
                     "--overwrite", "--quiet", limit_file_bytes=12_000)  # the tables fit, the figures do not
    assert result.returncode == 2, result.stderr[-2000:]
    line = one_line_error(result.stderr, str(out))
    assert ".png" in line and ".staging" not in line
    assert digests(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".staging") or p.name == rundir.LOCK_NAME]


def test_a_killed_evaluations_lock_and_staging_folder_do_not_block_the_next(photos, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "eval"
    (out / f".staging-{int(dead.stdout)}-abc123").mkdir(parents=True)
    (out / f".staging-{int(dead.stdout)}-abc123" / "metrics.csv").write_text("half")
    (out / rundir.LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    evaluate(photos, ["mean"], size=32, out_dir=out, progress=False, limit=1, masks_per_image=1, lpips=False)
    assert "metrics.csv" in os.listdir(out) and not [p for p in os.listdir(out) if p.startswith(".staging")]


# ------------------------------------------------------------------------ 4. outputs are never inputs
def test_an_output_folder_inside_an_input_folder_is_refused(photos, tmp_path, capsys):
    with pytest.raises(ValueError, match="overlap"):
        evaluate(photos, ["mean"], size=32, out_dir=photos / "eval", progress=False, lpips=False)
    assert not (photos / "eval").exists()
    assert main(["evaluate", "--images", str(photos / "eval"), "--methods", "mean", "--out", str(photos)]) == 2
    one_line_error(capsys.readouterr().err, "overlap")
    config = make_config("pconv", "cpu", data=str(photos), val_data=str(photos))
    with pytest.raises(ValueError, match="--data"):
        settings_for(config, photos / "run", resume=False)


def test_photos_are_never_listed_from_a_run_or_an_evaluation_folder(photos, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for p in photos.iterdir():
        (root / p.name).write_bytes(p.read_bytes())
    grid = (root / photos.iterdir().__next__().name).read_bytes()
    run = root / "my-run"
    (run / "samples").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "history.csv").write_text("step\n")
    (run / "samples" / "step_000000.png").write_bytes(grid)
    evaluate(photos, ["mean"], size=32, out_dir=root / "eval", progress=False, limit=1, masks_per_image=1,
             lpips=False)  # an evaluation folder written by the library (no overlap: it lists `photos`)
    assert (root / "eval" / "examples.png").is_file()
    listed = PhotoFolder(root, 32, train=False).files
    assert sorted(p.name for p in listed) == sorted(p.name for p in photos.iterdir())


def test_inpaint_never_writes_over_its_input(tiny_pconv, photo_and_mask, capsys):
    photo, mask = photo_and_mask
    before = photo.read_bytes()
    assert main(["inpaint", "--checkpoint", str(tiny_pconv), "--image", str(photo), "--mask", str(mask),
                 "--out", str(photo), "--device", "cpu"]) == 2
    one_line_error(capsys.readouterr().err, "also an input")
    assert photo.read_bytes() == before


# ---------------------------------------------------------------- 6. one loader, one line for any non-weights file
def _cases(good: bytes, count: int, seed: int = 0) -> list[bytes]:
    """Every single byte, prefixes of a real weights file, random bytes, and random bytes after a pickle header."""
    rng = random.Random(seed)
    cases = [bytes([b]) for b in range(256)]
    cases += [good[: rng.randrange(1, len(good))] for _ in range(count // 4)]
    cases += [rng.randbytes(rng.choice([2, 3, 5, 16, 64, 300])) for _ in range(count // 4)]
    cases += [b"\x80\x02" + rng.randbytes(rng.choice([1, 4, 20, 100])) for _ in range(count // 4)]
    cases += [b"PK\x03\x04" + rng.randbytes(rng.choice([10, 100, 1000])) for _ in range(count // 4)]
    return cases


def test_fuzzed_files_give_only_the_one_line_weights_error(tiny_pconv, tmp_path):
    cases = _cases(tiny_pconv.read_bytes(), 1000)
    assert len(cases) >= 1000
    path = tmp_path / "fuzz.pt"
    for data in cases:
        path.write_bytes(data)
        with pytest.raises(ValueError) as caught:
            rundir.load_model(path)
        text = str(caught.value)
        assert "not a readable inpaintlib weights file" in text and "\n" not in text, (data[:20], text)


@pytest.mark.parametrize("command", ["inpaint", "evaluate", "export", "init-from", "resume"])
def test_a_file_starting_with_a_letter_ends_in_one_line_on_every_route(command, photo_and_mask, photos, tmp_path,
                                                                        capsys):
    bad = tmp_path / "a.pt"
    bad.write_bytes(b"a")  # raised IndexError inside the unpickler before
    photo, mask = photo_and_mask
    argv = {
        "inpaint": ["inpaint", "--checkpoint", str(bad), "--image", str(photo), "--mask", str(mask), "--out",
                    str(tmp_path / "o.png"), "--device", "cpu"],
        "evaluate": ["evaluate", "--checkpoint", str(bad), "--images", str(photos), "--out", str(tmp_path / "e"),
                     "--device", "cpu", "--quiet"],
        "export": ["export", str(bad), "--format", "onnx", "--out", str(tmp_path / "m.onnx")],
        "init-from": ["train", "pconv", "--init-from", str(bad), "--size", "64", "--width", "8", "--steps", "1",
                      "--data", str(photos), "--val-data", str(photos), "--out", str(tmp_path / "r"), "--quiet",
                      "--device", "cpu", "--workers", "0", "--amp", "off", "--vgg-weights", "hed"],
        "resume": ["train", "pconv", "--out", str(tmp_path), "--resume", "--quiet"],
    }[command]
    (tmp_path / "checkpoint.pt").write_bytes(b"a")  # what --resume reads from --out
    assert main(argv) == 2
    one_line_error(capsys.readouterr().err, "not a readable inpaintlib weights file")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------- 9. an output format without RGB
def test_inpaint_to_a_format_that_cannot_hold_rgb_is_refused_up_front(tiny_pconv, photo_and_mask, capsys):
    photo, mask = photo_and_mask
    out = photo.with_name("x.xbm")
    assert main(["inpaint", "--checkpoint", str(tiny_pconv), "--image", str(photo), "--mask", str(mask),
                 "--out", str(out), "--device", "cpu"]) == 2
    one_line_error(capsys.readouterr().err, ".xbm", ".png")
    assert not out.exists()
    assert main(["inpaint", "--checkpoint", str(tiny_pconv), "--image", str(photo), "--mask", str(mask),
                 "--out", str(photo.with_name("x.png")), "--device", "cpu"]) == 0
