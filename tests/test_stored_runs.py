"""The run directories committed under data/runs: complete, safe to load, small enough, and their stored
evaluation numbers reproducible from their stored weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from inpaintlib import evaluate, inpainters
from inpaintlib.rundir import load_config, load_history, load_metrics, load_model

RUNS = Path(__file__).resolve().parents[1] / "data" / "runs"
STORED = sorted(p.name for p in RUNS.iterdir() if (p / "weights.pt").is_file()) if RUNS.is_dir() else []
VAL = RUNS.parent / "photos" / "val"

pytestmark = [pytest.mark.skipif(not STORED, reason="no stored runs in this checkout"),
              pytest.mark.usefixtures("one_thread")]


@pytest.mark.parametrize("name", STORED)
def test_stored_run_is_complete_and_small(name):
    run = RUNS / name
    for file in ("config.json", "history.csv", "metrics.json", "RUN.md", "weights.pt"):
        assert (run / file).is_file(), file
    assert not (run / "checkpoint.pt").exists()  # 3-4x the weights; kept out of the repository
    assert (run / "weights.pt").stat().st_size <= 25 * 2**20  # issue 7: at most 25 MB per model
    config = load_config(run)
    assert config["kind"] in ("ce", "pconv")
    assert len(load_history(run)["step"]) > 0
    assert load_metrics(run)["overall"]["psnr"] > 0
    assert "| command | `python -m inpaintlib train" in (run / "RUN.md").read_text()
    # weights only: plain tensors, no pickled objects (torch.load(weights_only=True) inside)
    state = torch.load(run / "weights.pt", map_location="cpu", weights_only=True)
    assert state


@pytest.mark.parametrize("name", STORED)
def test_stored_run_can_be_continued_from_its_weights(name):
    """What `train --resume` reads when checkpoint.pt is not there: the step, time and settings match the
    run's own files, and the weights fit the model those settings build."""
    from inpaintlib.train.config import config_from_dict
    from inpaintlib.train.resume import resume_state

    run = RUNS / name
    state = resume_state(run)
    history = load_history(run)
    assert state["step"] == int(history["step"][-1]) == load_metrics(run)["step"]
    assert state["seconds"] == pytest.approx(float(history["seconds"][-1]), abs=120)
    config = config_from_dict({**state["config"], "kind": state["kind"]})
    assert config.total_steps == state["step"]  # the run is finished: a resume must raise the step count
    assert state["sessions"][-1]["end_step"] == state["step"]
    if state["kind"] == "ce":
        last_lr = config.lr_g
    else:
        last_lr = config.finetune_lr if config.finetune_steps else config.lr
    assert float(history["lr"][-1]) == pytest.approx(last_lr)
    model = load_model(run)
    assert model.state_dict().keys() == state["models"]["generator"].keys()


@pytest.mark.parametrize("name", [n for n in STORED if (RUNS / n / "evaluation" / "metrics.csv").is_file()])
def test_stored_evaluation_is_reproduced_from_the_stored_weights(name):
    """The first two validation photos' rows of evaluation/metrics.csv, recomputed from weights.pt."""
    run = RUNS / name
    kind = load_config(run)["kind"]
    with (run / "evaluation" / "metrics.csv").open(newline="") as f:
        stored = [r for r in csv.DictReader(f) if r["method"] == kind]
    model = load_model(run)
    settings_file = run / "evaluation" / "settings.json"
    # evaluations written before settings.json existed used the defaults below
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    ensemble = settings.get("ensemble", 1)
    method = inpainters.model_method(model, ensemble=ensemble)
    if kind == "ce":
        result = evaluate.evaluate(VAL, [method], size=settings.get("size", 128), center_masks=True, limit=2,
                                   progress=False, lpips=False)
    else:
        result = evaluate.evaluate(VAL, [method], size=settings.get("size", 256), limit=2, progress=False,
                                   lpips=False, seed=settings.get("seed", 0))
    by_pair = {(r["file"], r["mask"]): r for r in stored}
    assert len(result.rows) >= 2
    for row in result.rows:
        want = by_pair[(row["file"], row["mask"])]
        assert row["psnr"] == pytest.approx(float(want["psnr"]), abs=0.02), row["file"]
        assert row["l1_hole"] == pytest.approx(float(want["l1_hole"]), abs=0.02), row["file"]
