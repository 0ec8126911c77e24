"""Faults and bad input lose nothing and end in a clear message (one row of the fault table each).

Every command-line case runs the real ``python -m inpaintlib`` in a subprocess and checks the exit status,
that stderr is one ``error: ...`` line without a traceback, and that no file was lost or half-written.
"""

from __future__ import annotations

import os
import pickle
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from inpaintlib import images, rundir
from inpaintlib.inference import inpaint
from inpaintlib.models import PConvUNet
from inpaintlib.train import train

from test_train import assert_same_state, read_rows, state_of, tiny_pconv

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def cli(*args: str, timeout: float = 240, limit_file_bytes: int | None = None, extra_env: dict | None = None,
        ) -> subprocess.CompletedProcess:
    """``python -m inpaintlib ARGS`` with this checkout's library, one thread, SIGINT at its default."""

    def child() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background child may inherit an ignored SIGINT
        if limit_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("INPAINTLIB_DEBUG", None)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "inpaintlib", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=child)


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for split, names in {"train": ["astronaut", "coffee", "chelsea", "rocket"], "val": ["cat"]}.items():
        (root / split).mkdir()
        for name in names:
            Image.fromarray(getattr(skdata, name)()).resize((96, 72)).save(root / split / f"{name}.png")
    return root


def cli_flags(photos: Path, steps: int, finetune: int = 0) -> list[str]:
    """The command-line twin of a tiny CPU run (width 8, 64 px, batch 2, fp32)."""
    return ["--size", "64", "--batch-size", "2", "--width", "8", "--steps", str(steps), "--finetune-steps",
            str(finetune), "--log-every", "1", "--sample-every", "1000", "--amp", "off", "--device", "cpu",
            "--workers", "0", "--vgg-weights", "hed", "--data", str(photos / "train"), "--val-data",
            str(photos / "val"), "--quiet"]


@pytest.fixture(scope="module")
def finished_run(photos, tmp_path_factory) -> Path:
    """A finished tiny run with its checkpoint.pt and weights.pt."""
    return train(tiny_pconv(photos, data=str(photos / "train"), val_data=str(photos / "val")),
                 tmp_path_factory.mktemp("runs") / "done", progress=False)


def wait_for(condition, proc: subprocess.Popen, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"the training process ended before {what}: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.02)


def start_training(photos: Path, out: Path, steps: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "inpaintlib", "train", "pconv", "--out", str(out), *cli_flags(photos, steps)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def history_rows(run: Path) -> int:
    try:
        return len(read_rows(run / "history.csv"))
    except (OSError, KeyError):
        return 0


# ------------------------------------------------------------------------------------------- run folders
@pytest.mark.slow
def test_a_second_writer_is_refused_and_the_first_run_stays_intact(photos, tmp_path):
    run = tmp_path / "run"
    proc = start_training(photos, run, steps=2000)  # long enough to outlive both attempts below
    try:
        wait_for(lambda: history_rows(run) >= 1, proc, "its first history row")
        second = cli("train", "pconv", "--out", str(run), *cli_flags(photos, 30))
        assert_user_error(second, "being written by another training process", f"pid {proc.pid}")
        resumed = cli("train", "pconv", "--out", str(run), "--resume", "--quiet")
        assert_user_error(resumed, "being written by another training process")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)  # the first run stops cleanly and keeps what it did
        assert proc.wait(timeout=240) == 130, proc.stderr.read()
    finally:
        proc.kill()
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert [int(r["step"]) for r in read_rows(run / "history.csv")] == list(range(1, step + 1))  # none lost or mixed
    assert not (run / rundir.LOCK_NAME).exists()  # released on exit


def test_a_stale_lock_of_a_dead_process_is_taken_over(photos, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.LOCK_NAME).write_text(f'{{"pid": {dead.pid}, "host": "{os.uname().nodename}", "started": "x"}}')
    train(tiny_pconv(photos, steps=1, finetune_steps=0), run, progress=False)
    assert (run / "weights.pt").is_file() and not (run / rundir.LOCK_NAME).exists()


def test_a_folder_with_the_users_files_is_left_untouched(photos, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "config.json").write_text("{}")  # even a file that looks like a run's
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = cli("train", "pconv", "--out", str(out), *cli_flags(photos, 2))
    assert_user_error(result, str(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_refused_resume_leaves_no_empty_folder(tmp_path):
    result = cli("train", "pconv", "--out", str(tmp_path / "nothing"), "--resume")
    assert_user_error(result, "cannot resume", "--resume")
    assert not (tmp_path / "nothing").exists()


# ------------------------------------------------------------------------------------------- interrupts
@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_resume_equals_an_uninterrupted_run(photos, tmp_path):
    steps = 30
    reference = tmp_path / "reference"
    assert cli("train", "pconv", "--out", str(reference), *cli_flags(photos, steps)).returncode == 0
    run = tmp_path / "run"
    proc = start_training(photos, run, steps)
    try:
        wait_for(lambda: history_rows(run) >= 3, proc, "three history rows")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "--resume" in err
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert 3 <= step < steps and f"at step {step}" in err
    assert history_rows(run) == step and not (run / "weights.pt").exists()
    assert cli("train", "pconv", "--out", str(run), "--resume", "--quiet").returncode == 0
    assert_same_state(state_of(run), state_of(reference))


@pytest.mark.slow
def test_sigterm_also_checkpoints_and_exits_143(photos, tmp_path):
    run = tmp_path / "run"
    proc = start_training(photos, run, steps=30)
    try:
        wait_for(lambda: history_rows(run) >= 2, proc, "two history rows")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] >= 2


_SLOW_RUN = """
import json, sys, time
from inpaintlib.train import config_from_dict, train
train(config_from_dict(json.loads(sys.argv[1])), sys.argv[2], resume=sys.argv[3] == "1", progress=False,
      callback=lambda info: time.sleep(0.15))
"""


@pytest.mark.slow
def test_sigkill_at_three_random_points_then_resume_equals_an_uninterrupted_run(photos, tmp_path):
    config = tiny_pconv(photos, steps=14, finetune_steps=4, checkpoint_every=2)
    reference = train(config, tmp_path / "reference", progress=False)
    run = tmp_path / "run"
    payload = __import__("json").dumps({"kind": "pconv", **vars(config)})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    chance = random.Random(int(time.time()))
    kills = []
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, payload, str(run), "1" if attempt else "0"],
                                env=env, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: (run / "checkpoint.pt").exists(), proc, "a checkpoint")
            time.sleep(chance.uniform(0.0, 0.6))  # anywhere: mid-step, mid-write of a checkpoint or a row
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        kills.append(torch.load(run / "checkpoint.pt", weights_only=True)["step"])
        assert not (run / "weights.pt").exists(), "the run finished before the kill; make it longer"
    train(None, run, resume=True, progress=False)
    assert_same_state(state_of(run), state_of(reference)), kills
    assert [r["step"] for r in read_rows(run / "history.csv")] == [r["step"] for r in read_rows(reference / "history.csv")]


# ------------------------------------------------------------------------------------------- disk
def test_a_full_disk_keeps_the_previous_checkpoint(finished_run, tmp_path):
    run = Path(__import__("shutil").copytree(finished_run, tmp_path / "run"))
    before = (run / "checkpoint.pt").read_bytes()
    limit = len(before) // 2  # RLIMIT_FSIZE: any file write past this fails with EFBIG, as on a full disk
    result = cli("train", "pconv", "--out", str(run), "--resume", "--finetune-steps", "4", "--quiet",
                 limit_file_bytes=limit)
    assert_user_error(result, "checkpoint.pt", "intact")
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not list(run.glob(".*.tmp")) and not (run / rundir.LOCK_NAME).exists()


def test_a_read_only_output_folder_is_a_clear_error(finished_run, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): a read-only folder cannot be simulated")
        result = cli("inpaint", "--checkpoint", str(finished_run), "--image", "x.png", "--mask", "m.png",
                     "--out", str(folder / "out.png"))
        assert_user_error(result)
    finally:
        folder.chmod(0o700)


# ------------------------------------------------------------------------------------------- weights
class Payload:
    """Any class the weights-only unpickler does not know: loading it would run code of the file's choosing."""


def corrupt_files(good: Path, folder: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {"truncated": data[: len(data) // 2], "empty": b"", "text": b"not a checkpoint\n"}
    out = {}
    for name, content in files.items():
        out[name] = folder / f"{name}.pt"
        out[name].write_bytes(content)
    out["pickle"] = folder / "pickle.pt"  # a real torch.save file whose pickle names a class to build
    torch.save({"format": rundir.WEIGHTS_FORMAT, "kind": "pconv", "payload": Payload()}, out["pickle"])
    out["raw-pickle"] = folder / "raw-pickle.pt"
    out["raw-pickle"].write_bytes(pickle.dumps({"payload": Payload()}, protocol=2))
    return out


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "pickle", "raw-pickle"])
def test_corrupt_or_malicious_weights_end_in_one_line_on_every_route(kind, finished_run, photos, tmp_path):
    bad = corrupt_files(finished_run / "weights.pt", tmp_path)[kind]
    refused = kind in ("pickle", "raw-pickle")
    expected = "refused: this file holds Python objects" if refused else "not a readable inpaintlib weights file"
    photo, mask = tmp_path / "p.png", tmp_path / "m.png"
    Image.fromarray(skdata.astronaut()).resize((64, 64)).save(photo)
    m = np.full((64, 64), 255, np.uint8)
    m[20:40, 20:40] = 0
    Image.fromarray(m).save(mask)
    assert_user_error(cli("inpaint", "--checkpoint", str(bad), "--image", str(photo), "--mask", str(mask),
                          "--out", str(tmp_path / "o.png")), expected, bad.name)
    assert_user_error(cli("train", "pconv", "--out", str(tmp_path / "new"), "--init-from", str(bad),
                          *cli_flags(photos, 1)), expected)
    run = Path(__import__("shutil").copytree(finished_run, tmp_path / "run"))
    (run / "checkpoint.pt").write_bytes(bad.read_bytes())
    assert_user_error(cli("train", "pconv", "--out", str(run), "--resume", "--quiet"), expected)
    with pytest.raises(ValueError, match=expected.split(":")[0]):
        rundir.load_model(bad)


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    bad = tmp_path / "empty.pt"
    bad.write_bytes(b"")
    args = ["inpaint", "--checkpoint", str(bad), "--image", "x", "--mask", "y", "--out", str(tmp_path / "o.png")]
    assert "Traceback" in cli("--debug", *args).stderr
    assert "Traceback" in cli(*args, extra_env={"INPAINTLIB_DEBUG": "1"}).stderr


# ------------------------------------------------------------------------------------------- images and masks
def big_png(path: Path, side: int = 10_000) -> Path:
    Image.new("1", (side, side), 1).save(path)  # 100 megapixels in a few hundred kilobytes
    return path


def test_images_over_the_pixel_limit_are_refused_from_their_header(tmp_path, monkeypatch):
    path = big_png(tmp_path / "big.png")
    assert path.stat().st_size < 2_000_000
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="megapixels"):
        images.load_image(path)
    assert time.perf_counter() - t0 < 5  # nothing decoded
    monkeypatch.setenv("INPAINTLIB_MAX_PIXELS", "1000")
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 40)).save(small)
    with pytest.raises(ValueError, match="INPAINTLIB_MAX_PIXELS"):
        images.load_image(small)


def test_a_mask_bomb_ends_in_one_line(finished_run, tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(skdata.astronaut()).resize((64, 64)).save(photo)
    mask = big_png(tmp_path / "bomb.png")
    result = cli("inpaint", "--checkpoint", str(finished_run), "--image", str(photo), "--mask", str(mask),
                 "--out", str(tmp_path / "o.png"))
    assert_user_error(result, "megapixels", "bomb.png")


@pytest.fixture()
def photo_and_masks(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(skdata.astronaut()).resize((128, 128)).save(photo)
    masks = {}
    for name, hole in {"inverted": (8, 120), "all-hole": (0, 128), "fine": (40, 70)}.items():
        m = np.full((128, 128), 255, np.uint8)
        m[hole[0]:hole[1], hole[0]:hole[1]] = 0
        masks[name] = tmp_path / f"{name}.png"
        Image.fromarray(m).save(masks[name])
    return photo, masks


def test_an_inverted_or_all_hole_mask_is_refused_with_the_convention(finished_run, photo_and_masks, tmp_path):
    photo, masks = photo_and_masks
    common = ["--checkpoint", str(finished_run), "--image", str(photo), "--out", str(tmp_path / "o.png")]
    inverted = cli("inpaint", *common, "--mask", str(masks["inverted"]))
    assert_user_error(inverted, "--invert-mask", "white = hole", "looks like an inverted mask", "--allow-large-holes")
    assert not (tmp_path / "o.png").exists()
    assert_user_error(cli("inpaint", *common, "--mask", str(masks["all-hole"])), "entirely hole")
    assert cli("inpaint", *common, "--mask", str(masks["inverted"]), "--allow-large-holes").returncode == 0
    assert cli("inpaint", *common, "--mask", str(masks["fine"])).returncode == 0


def test_inpaint_rejects_non_finite_pixels_and_all_hole_masks():
    model = PConvUNet(64, width=8).eval()
    image = torch.rand(3, 64, 64)
    mask = torch.ones(1, 64, 64)
    mask[:, 10:20, 10:20] = 0
    image[0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        inpaint(model, image, mask)
    with pytest.raises(ValueError, match="entirely hole"):
        inpaint(model, torch.rand(3, 64, 64), torch.zeros(1, 64, 64))


# ------------------------------------------------------------------------------------------- misc
def test_a_missing_device_and_bad_notebooks_end_in_one_line(finished_run, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_user_error(cli("inpaint", "--checkpoint", str(finished_run), "--image", "x", "--mask", "y",
                          "--out", str(tmp_path / "o.png"), "--device", "cuda"), "cuda")
    (tmp_path / "x.ipynb").write_text("not json")
    assert_user_error(cli("book", "clean", str(tmp_path / "x.ipynb")), "not a Jupyter notebook")
    assert_user_error(cli("book", "clean", str(tmp_path / "missing.ipynb")), "not found")


def test_messages_name_the_command_line_flags(photos, tmp_path):
    assert_user_error(cli("train", "pconv", "--out", str(tmp_path / "r"), "--size", "96"), "--layers")


def test_the_nan_guard_does_not_name_a_checkpoint_that_does_not_exist(photos, tmp_path, monkeypatch):
    import inpaintlib.train.recipes as recipes

    class NaNUNet(PConvUNet):
        def forward(self, image, mask):
            return super().forward(image, mask) * float("nan")

    monkeypatch.setattr(recipes, "PConvUNet", NaNUNet)
    config = tiny_pconv(photos, steps=3, finetune_steps=0, checkpoint_every=0, max_bad_steps=2)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="No checkpoint was written yet"):
        train(config, tmp_path / "run", progress=False)
