"""Command-line habits: --version, the usage line names the command as invoked, --help without torch,
a closed pipe is not a traceback, --device auto, and LPIPS as an opt-in download with a clear offline message."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import torch

import inpaintlib
from inpaintlib import evaluate, inference, metrics

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, **kwargs)


def test_version_and_usage_line_without_importing_torch():
    result = _run("-X", "importtime", "-m", "inpaintlib", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m inpaintlib COMMAND")
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "inpaintlib" in imported and not any(m.split(".")[0] in {"torch", "numpy"} for m in imported)
    version = _run("-m", "inpaintlib", "--version")
    assert version.returncode == 0 and version.stdout == f"inpaintlib {inpaintlib.__version__}\n"


def test_usage_names_the_console_script_when_run_as_one():
    code = ("import sys; sys.argv[0] = '/somewhere/bin/inpaintlib'; from inpaintlib.__main__ import main; "
            "from inpaintlib.inference import _parser; main(['--help']); print(_parser().format_usage())")
    out = _run("-c", code).stdout
    assert out.startswith("usage: inpaintlib COMMAND") and "usage: inpaintlib inpaint " in out


def test_a_closed_pipe_ends_quietly():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written, as with `| head -1` after one line
    try:
        for args in (["--help"], ["inpaint", "--help"]):
            result = subprocess.run([sys.executable, "-m", "inpaintlib", *args], stdout=write, stderr=subprocess.PIPE,
                                    text=True, timeout=60)
            assert result.stderr == "" and result.returncode in (0, 141), args  # argparse drops OSErrors itself
    finally:
        os.close(write)


def test_device_defaults_to_auto():
    assert inference._parser().parse_args(["--checkpoint", "c", "--image", "i", "--mask", "m", "--out", "o"]).device \
        == "auto"
    assert evaluate._parser().parse_args(["--images", "i", "--out", "o"]).device == "auto"


def test_lpips_opt_in_download_and_offline_message(tmp_path, monkeypatch):
    hub_dir = tmp_path / "torch" / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub_dir))
    monkeypatch.delenv("INPAINTLIB_LPIPS", raising=False)
    calls = []

    def offline(url, dst, progress=True):
        calls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    ok, note = metrics.lpips_available()
    assert not ok and calls == [] and "--lpips" in note  # nothing is downloaded unless asked
    ok, note = metrics.lpips_available(download=True)
    assert not ok and len(calls) == 1 and "TORCH_HOME" in note and "alexnet" in note
    photos = ROOT / "data" / "photos" / "val"
    code = evaluate.cli(["--images", str(photos), "--methods", "mean", "--size", "32", "--limit", "1",
                         "--out", str(tmp_path / "eval"), "--quiet", "--lpips"])
    assert code == 2 and len(calls) == 2

    def online(url, dst, progress=True):  # stands in for the download: writes the file where torch looks
        calls.append(url)
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", online)
    monkeypatch.setenv("INPAINTLIB_LPIPS", "download")  # what the Colab setup sets
    ok, note = metrics.lpips_available()
    assert ok and calls[-1].endswith(".pth") and (hub_dir / "checkpoints" / calls[-1].rsplit("/", 1)[-1]).is_file()
