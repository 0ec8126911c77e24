"""Faults, round two (issue 28), part two: masks oriented like their images, bounded downloads and memory,
settings checked before a run starts, and a clear line for each unclear case of the issue's item 10.

Items 5, 7, 8 and 10. Everything runs in-process; downloads come from a loopback server (127.0.0.1) that
serves a fixed set of answers.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlib import hub, rundir
from inpaintlib.__main__ import main
from inpaintlib.book import resolve_chapters
from inpaintlib.evaluate import evaluate
from inpaintlib.images import load_image
from inpaintlib.inference import inpaint
from inpaintlib.masks import load_mask_png
from inpaintlib.models import PConvUNet
from inpaintlib.train import make_config, train
from inpaintlib.train.config import check_batch_memory
from inpaintlib.train.resume import settings_for

from test_train import tiny_pconv

pytestmark = pytest.mark.usefixtures("one_thread")
ORIENTATION = 0x0112  # the EXIF tag


# ------------------------------------------------------------------------- 5. masks oriented like images
def test_a_mask_is_turned_upright_by_its_exif_orientation_like_its_image(tmp_path):
    pixels = np.full((30, 40, 3), 200, np.uint8)
    pixels[2:8, 3:12] = (255, 0, 0)  # the red patch is where the hole is drawn
    mask = np.full((30, 40), 255, np.uint8)
    mask[2:8, 3:12] = 0
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(pixels).save(tmp_path / "photo.png", exif=exif)
    Image.fromarray(mask).save(tmp_path / "mask.png", exif=exif)
    image = load_image(tmp_path / "photo.png")
    hole = load_mask_png(tmp_path / "mask.png", size=tuple(image.shape[-2:]))[0] == 0
    assert tuple(image.shape[-2:]) == (40, 30)
    red = (image[0] > 0.9) & (image[1] < 0.1)
    assert torch.equal(hole, red)


# --------------------------------------------------------------------------------- 7. bounded downloads
class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers GET PATH with ``answers[PATH] = (body, declared length or None, bytes to send)``."""

    answers: dict[str, tuple[bytes, int | None]] = {}
    sent: list[int] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body, declared = self.answers[self.path]
        self.send_response(200)
        if declared is not None:
            self.send_header("Content-Length", str(declared))
        self.end_headers()
        sent = 0
        try:
            for start in range(0, len(body), 1 << 16):
                self.wfile.write(body[start : start + (1 << 16)])
                sent += len(body[start : start + (1 << 16)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        type(self).sent.append(sent)
        self.close_connection = True


PINNED = b"the stored weights, pinned by size and sha256\n" * 20


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """A loopback server; the package's table pins one run ``tiny`` with one file; an empty user cache."""
    handler = type("Handler", (_Answers,), {"answers": {}, "sent": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    pin = {"sha256": hashlib.sha256(PINNED).hexdigest(), "bytes": len(PINNED)}
    monkeypatch.setattr(hub, "_table", lambda: {"repository": "https://github.com/x/y", "ref": "main",
                                                "runs": {"tiny": {"weights.pt": pin}}})
    monkeypatch.setattr(hub, "stored_runs_dir", lambda: tmp_path / "no-checkout")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("INPAINTLIB_RAW_URL", f"http://127.0.0.1:{srv.server_address[1]}")
    yield handler
    srv.shutdown()
    srv.server_close()


def cache_entries(tmp_path: Path) -> list[str]:
    runs = tmp_path / "cache" / "inpaintlib" / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


def test_a_server_that_sends_too_much_is_cut_off_at_the_pinned_size(server, tmp_path):
    endless = bytes(64 << 20)  # 64 MB for a file pinned at 940 bytes
    server.answers["/data/runs/tiny/weights.pt"] = (endless, None)
    with pytest.raises(hub.StoredRunError, match=f"more than the pinned {len(PINNED)} bytes"):
        hub.pretrained("tiny")
    assert cache_entries(tmp_path) == []  # the staging folder is gone too
    assert server.sent and server.sent[0] < len(endless) // 2  # it stopped reading long before the end


def test_a_cut_short_download_is_called_cut_short_not_changed(server, tmp_path):
    server.answers["/data/runs/tiny/weights.pt"] = (PINNED[:300], len(PINNED))  # the connection drops early
    with pytest.raises(hub.StoredRunError, match=f"after 300 of {len(PINNED)} bytes") as caught:
        hub.pretrained("tiny")
    assert "changed" not in str(caught.value)
    assert cache_entries(tmp_path) == []


def test_a_killed_downloads_staging_folder_is_removed_on_the_next_start(server, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "cache" / "inpaintlib" / "runs" / f".tiny-{int(dead.stdout)}-abc123"
    stale.mkdir(parents=True)
    (stale / "weights.pt").write_bytes(b"half a download")
    server.answers["/data/runs/tiny/weights.pt"] = (PINNED, len(PINNED))
    folder = hub.pretrained("tiny")
    assert (folder / "weights.pt").read_bytes() == PINNED
    assert cache_entries(tmp_path) == [folder.name]


def test_download_settings_are_named_when_wrong(monkeypatch, tmp_path):
    monkeypatch.setenv("INPAINTLIB_RAW_URL", "notaurl")
    with pytest.raises(hub.StoredRunError, match="INPAINTLIB_RAW_URL='notaurl'"):
        hub.raw_base()
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert hub.cache_dir().is_absolute() and "relative" not in str(hub.cache_dir())


# ------------------------------------------------------------------------------------ 7. bounded padding
def test_padding_to_the_networks_multiple_is_bounded_by_the_pixel_limit(monkeypatch):
    model = PConvUNet(image_size=32, layers=3, width=4).eval()  # pads to multiples of 8
    strip, mask = torch.rand(3, 3, 40), torch.ones(1, 3, 40)
    mask[..., 10:20] = 0
    monkeypatch.setenv("INPAINTLIB_MAX_PIXELS", "200")  # 120 pixels, padded to 8x40 = 320
    with pytest.raises(ValueError, match=r"padded to 40x8 .* over the limit"):
        inpaint(model, strip, mask)
    monkeypatch.setenv("INPAINTLIB_MAX_PIXELS", "320")
    assert inpaint(model, strip, mask).shape == strip.shape


# ------------------------------------------------------------------------- 8. settings checked up front
def test_training_settings_that_could_not_finish_are_refused_up_front():
    with pytest.raises(ValueError, match="SSIM needs at least 11x11"):
        make_config("pconv", "cpu", image_size=8)
    with pytest.raises(ValueError, match="SSIM needs at least 11x11"):
        make_config("pconv", "cpu", image_size=4)
    with pytest.raises(ValueError, match="crop_scale=.* out of reach"):
        make_config("pconv", "cpu", crop_scale=(1e-9, 1e-9))
    config = make_config("pconv", "cpu", batch_size=10**6, image_size=256)
    with pytest.raises(ValueError, match="batch_size=1000000 at 256 px needs at least"):
        check_batch_memory(config, 64 * 2**30)
    check_batch_memory(make_config("pconv", "cpu"), 64 * 2**30)  # the cpu profile fits


def test_a_huge_batch_is_refused_before_the_run_folder_is_written(photos, tmp_path):
    with pytest.raises(ValueError, match="batch_size=100000000"):
        train(tiny_pconv(photos, batch_size=10**8), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_an_evaluation_size_over_the_pixel_limit_is_refused_before_any_work(photos, tmp_path):
    with pytest.raises(ValueError, match="size 100000 makes"):
        evaluate(photos / "val", ["mean"], size=100_000, out_dir=tmp_path / "e", progress=False, lpips=False)
    assert not (tmp_path / "e").exists()


def test_a_run_that_fails_at_its_first_step_removes_what_it_wrote(photos, tmp_path):
    def fail(info):
        raise RuntimeError("a failure at the first step")

    with pytest.raises(RuntimeError, match="first step"):
        train(tiny_pconv(photos), tmp_path / "run", progress=False, callback=fail)
    assert not (tmp_path / "run").exists()  # so the same --out can be used again
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's file")
    with pytest.raises(ValueError, match="not empty"):  # a refused run never removes the user's files
        train(tiny_pconv(photos), mine, progress=False, callback=fail)
    assert (mine / "notes.txt").read_text() == "the user's file"


# ------------------------------------------------------------------------------- 10. clear messages
def test_a_01_mask_and_an_alpha_only_hole_get_their_own_advice(tmp_path):
    zero_one = np.ones((20, 20), np.uint8)
    zero_one[5:10, 5:10] = 0
    Image.fromarray(zero_one).save(tmp_path / "01.png")
    with pytest.raises(ValueError, match="only the values 0 and 1") as caught:
        load_mask_png(tmp_path / "01.png")
    assert "invert" not in str(caught.value)
    rgba = np.full((20, 20, 4), 255, np.uint8)
    rgba[5:10, 5:10, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    with pytest.raises(ValueError, match="alpha") as caught:
        load_mask_png(tmp_path / "alpha.png")
    assert "invert" not in str(caught.value)


def test_a_garbage_history_row_names_the_file_and_line(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("step,total\n1,0.5\nGARBAGE,0.4\n")
    with pytest.raises(ValueError, match=r"history\.csv, line 3: step 'GARBAGE'"):
        rundir.truncate_history(history, ["step", "total"], 5)
    assert history.read_text() == "step,total\n1,0.5\nGARBAGE,0.4\n"


def fake_run(folder: Path, kind: str, width: int, history: bool = True) -> Path:
    """A run folder: config.json of a PConv run of width 8, and a checkpoint of ``kind`` and ``width``."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": "pconv", "image_size": 64, "width": 8}))
    if history:
        (folder / "history.csv").write_text("step,epoch,phase,total\n1,0,main,0.5\n")
    rundir.save_torch({"format": rundir.CHECKPOINT_FORMAT, "kind": kind, "step": 3,
                       "config": {"image_size": 128 if kind == "ce" else 64, "width": width}},
                      folder / "checkpoint.pt")
    return folder


def test_a_resume_from_another_runs_checkpoint_or_without_its_history_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="not from the run .*kind 'pconv' vs 'ce'"):
        settings_for(None, fake_run(tmp_path / "a", "ce", 8), resume=True)
    assert main(["train", "pconv", "--out", str(tmp_path / "a"), "--resume", "--quiet"]) == 2
    assert "kind 'pconv' vs 'ce'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not from the run .*width 8 vs 16"):
        settings_for(None, fake_run(tmp_path / "b", "pconv", 16), resume=True)
    with pytest.raises(ValueError, match=r"history\.csv is missing"):
        settings_for(None, fake_run(tmp_path / "c", "pconv", 8, history=False), resume=True)


def test_a_dangling_symlink_out_is_named_as_such(photos, tmp_path):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="symbolic link to .*nowhere, which does not exist"):
        train(tiny_pconv(photos), link, progress=False)
    with pytest.raises(ValueError, match="symbolic link"):
        evaluate(photos / "val", ["mean"], size=32, out_dir=link, progress=False, lpips=False)


def test_an_empty_chapter_selection_is_an_error(capsys):
    with pytest.raises(ValueError, match="names no chapter"):
        resolve_chapters(",")
    assert main(["book", "run", "--chapters", ","]) == 2
    assert "names no chapter" in capsys.readouterr().err
    with pytest.raises(ValueError, match="names no chapter"):
        resolve_chapters(" , ")
