"""Stored runs by name (``inpaintlib.hub``): a checkout's data/runs, else a download checked against the pinned
sha256 and cached. Downloads come from a loopback HTTP server (127.0.0.1) serving a copy of the stored runs."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest

from inpaintlib import hub

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "data" / "runs"
HAS_RUNS = (RUNS / "pconv" / "weights.pt").is_file()
needs_runs = pytest.mark.skipif(not HAS_RUNS, reason="no stored runs in this checkout")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:  # no request log on stderr
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()


def serve(folder: Path):
    """A loopback HTTP server of ``folder`` in a thread; returns (base URL, requests list, server)."""
    handler = type("Handler", (_QuietHandler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", handler.requests, server


def copy_runs(site: Path, names=("pconv",)) -> Path:
    """The repository layout the raw-file URLs point at: ``site/data/runs/NAME/{weights.pt,config.json,RUN.md}``."""
    for name in names:
        (site / "data" / "runs" / name).mkdir(parents=True)
        for file in hub.RUN_FILES:
            shutil.copyfile(RUNS / name / file, site / "data" / "runs" / name / file)
    return site


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Outside a checkout (no data/runs), an empty user cache, downloads from a loopback copy."""
    site = copy_runs(tmp_path / "site")
    base, requests, server = serve(site)
    monkeypatch.setattr(hub, "stored_runs_dir", lambda: tmp_path / "no-checkout" / "data" / "runs")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("INPAINTLIB_RAW_URL", base)
    yield site, requests
    server.shutdown()
    server.server_close()


def test_pinned_table_matches_the_stored_runs():
    if not RUNS.is_dir():
        pytest.skip("no data/runs in this checkout")
    table = hub._table()
    assert table["runs"] == hub.pin_runs(RUNS), "stored_runs.json is stale: run `python -m inpaintlib book sync`"
    assert set(table["runs"]) >= {"ce", "pconv", "pconv-fill-scale"}


def test_raw_urls_are_derived_from_the_repository_address(monkeypatch):
    monkeypatch.delenv("INPAINTLIB_RAW_URL", raising=False)
    monkeypatch.setenv("INPAINTLIB_REPO_URL", "https://github.com/someone/fork")
    monkeypatch.setenv("INPAINTLIB_REPO_REF", "v2")
    assert hub.raw_base() == "https://raw.githubusercontent.com/someone/fork/v2"
    with pytest.raises(hub.StoredRunError, match="INPAINTLIB_RAW_URL"):
        hub.raw_url("https://gitlab.com/someone/fork", "main")


@needs_runs
def test_in_a_checkout_a_name_is_the_run_directory():
    assert hub.pretrained("pconv") == RUNS / "pconv"
    assert hub.resolve_checkpoint("pconv") == RUNS / "pconv"
    assert hub.resolve_checkpoint(str(RUNS / "ce")) == str(RUNS / "ce")  # a path stays a path
    import inpaintlib

    assert inpaintlib.pretrained("ce") == RUNS / "ce"


@needs_runs
def test_outside_a_checkout_the_run_is_downloaded_verified_and_cached(site, tmp_path):
    _, requests = site
    folder = hub.pretrained("pconv")
    assert folder.parent == tmp_path / "cache" / "inpaintlib" / "runs"
    for file in hub.RUN_FILES:
        assert (folder / file).read_bytes() == (RUNS / "pconv" / file).read_bytes()
    assert sorted(requests) == sorted(f"/data/runs/pconv/{f}" for f in hub.RUN_FILES)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging leftovers
    assert hub.pretrained("pconv") == folder and len(requests) == 3  # second call: from the cache
    from inpaintlib.rundir import load_model

    assert sum(p.numel() for p in load_model(folder).parameters()) > 0


@needs_runs
def test_a_tampered_file_is_refused_and_nothing_is_cached(site, tmp_path):
    served, _ = site
    run_md = served / "data" / "runs" / "pconv" / "RUN.md"
    data = run_md.read_bytes()  # same length, other bytes: the hash, not the size, tells (a longer file is cut off)
    run_md.write_bytes(data[:-8] + b"altered\n")
    with pytest.raises(hub.StoredRunError, match=r"(?s)RUN\.md has sha256 .*not the pinned.*nothing was cached"):
        hub.pretrained("pconv")
    runs_cache = tmp_path / "cache" / "inpaintlib" / "runs"
    assert not runs_cache.exists() or list(runs_cache.iterdir()) == []


@needs_runs
def test_a_corrupted_cache_is_downloaded_again(site):
    _, requests = site
    folder = hub.pretrained("pconv")
    (folder / "weights.pt").write_bytes(b"not the weights")
    assert hub.pretrained("pconv") == folder and len(requests) == 6
    assert hub.sha256_file(folder / "weights.pt") == hub._table()["runs"]["pconv"]["weights.pt"]["sha256"]


def test_unknown_names_and_unreachable_servers_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "stored_runs_dir", lambda: tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    known = ", ".join(hub.stored_run_names())
    assert {"ce", "pconv", "pconv-fill-scale"} <= set(hub.stored_run_names())
    with pytest.raises(hub.StoredRunError, match=rf"unknown stored run 'nope'; known: {re.escape(known)}"):
        hub.pretrained("nope")
    with pytest.raises(FileNotFoundError, match=rf"nope is neither .* stored run \({re.escape(known)}\)"):
        hub.resolve_checkpoint("nope")
    assert hub.resolve_checkpoint("some/missing/dir") == "some/missing/dir"  # the loader names the path
    with pytest.raises(hub.StoredRunError, match="download=False"):
        hub.pretrained("pconv", download=False)
    monkeypatch.setenv("INPAINTLIB_RAW_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(hub.StoredRunError, match=r"could not download http://127\.0\.0\.1:9/data/runs/pconv/"):
        hub.pretrained("pconv")
    assert not (tmp_path / "cache" / "inpaintlib" / "runs").exists() or not any(
        (tmp_path / "cache" / "inpaintlib" / "runs").iterdir())


@needs_runs
def test_inpaint_cli_takes_a_stored_run_name(site, tmp_path, capsys):
    from PIL import Image

    from inpaintlib.inference import cli

    Image.open(next((ROOT / "data" / "photos" / "val").glob("*.jpg"))).convert("RGB").resize((96, 64)).save(
        tmp_path / "photo.png")
    mask = Image.new("L", (96, 64), 255)
    mask.paste(0, (30, 20, 60, 44))
    mask.save(tmp_path / "mask.png")
    code = cli(["--checkpoint", "pconv", "--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                "--out", str(tmp_path / "out.png"), "--device", "cpu"])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith(f"{tmp_path / 'out.png'}: 96x64, 11.7 % hole, ") and line.endswith(" s")
    assert Image.open(tmp_path / "out.png").size == (96, 64)


def test_train_and_evaluate_clis_resolve_names_too(tmp_path, capsys):
    from inpaintlib import evaluate
    from inpaintlib.train import cli as train_cli

    assert train_cli(["pconv", "--out", str(tmp_path / "run"), "--init-from", "nope", "--quiet"]) == 2
    assert "nope is neither a run directory" in capsys.readouterr().err
    assert evaluate.cli(["--checkpoint", "nope", "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "e")]) == 2
    assert "nope is neither a run directory" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_study_kept_without_weights_is_named_as_such(tmp_path, monkeypatch):
    """Runs moved to data/studies (issue 26) keep their files but not their weights: asking for one by name says
    so in one line, names the stored runs that have weights, and is refused before anything is downloaded."""
    study = tmp_path / "studies" / "pconv-old"
    study.mkdir(parents=True)
    (study / "config.json").write_text("{}")
    monkeypatch.setattr(hub, "studies_dir", lambda: tmp_path / "studies")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    known = ", ".join(hub.stored_run_names())
    with pytest.raises(FileNotFoundError, match=rf"pconv-old is a study kept without its weights .*: {re.escape(known)}$"):
        hub.resolve_checkpoint("pconv-old")
    with pytest.raises(hub.StoredRunError, match=r"unknown stored run 'pconv-old' \(a study kept without its weights"):
        hub.pretrained("pconv-old")
    assert not (tmp_path / "cache").exists()


STUDIES = Path(__file__).resolve().parents[1] / "data" / "studies"
MOVED = ("pconv-l1", "pconv-head", "pconv-fill", "ce-balanced", "ce-fill")  # issue 26: files kept, weights not


@pytest.mark.skipif(not (STUDIES / "pconv-l1" / "config.json").is_file(), reason="no data/studies")
@pytest.mark.parametrize("form", ["{name}", "data/studies/{name}", "data/runs/{name}"])
def test_the_clis_refuse_a_moved_run_in_one_line(form, tmp_path, capsys, monkeypatch):
    """``--checkpoint``/``--init-from`` of a run moved to data/studies, by name, by its folder there or by its old
    folder in data/runs: exit status 2, one line that says it is a study without weights and names the stored runs
    that have them, and nothing written."""
    from inpaintlib import evaluate, inference
    from inpaintlib.train import cli as train_cli

    monkeypatch.chdir(STUDIES.parents[1])
    known = ", ".join(hub.stored_run_names())
    assert not set(MOVED) & set(hub.stored_run_names())
    for name in MOVED:
        ask = form.format(name=name)
        runs = [inference.cli(["--checkpoint", ask, "--image", "x.png", "--mask", "y.png", "--out", str(tmp_path / "o.png")]),
                evaluate.cli(["--checkpoint", ask, "--images", "data/photos/val", "--out", str(tmp_path / "e")]),
                train_cli(["pconv", "--out", str(tmp_path / "run"), "--init-from", ask, "--quiet"])]
        assert runs == [2, 2, 2]
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 3
        assert all(f"{name} is a study kept without its weights (data/studies/{name};" in line for line in lines)
        assert all(line.endswith(f"stored runs with weights: {known}") for line in lines)
    assert list(tmp_path.iterdir()) == []
