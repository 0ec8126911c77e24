"""Captions name the run they describe from its own files."""

from __future__ import annotations

import json

from inpaintlib import viz


def _fake_run(path, **config):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({
        "kind": "pconv", "profile": "cpu", "image_size": 256, "width": 32,
        "environment": {"device_name": "Some CPU (2 cores)"}, **config,
    }))  # fmt: skip
    (path / "history.csv").write_text("step,total,seconds\n50,0.5,60.0\n3600,0.4,2700.0\n")
    return path


def test_run_caption_reads_hardware_shape_steps_and_minutes(tmp_path):
    caption = viz.run_caption(_fake_run(tmp_path / "plain"))
    assert caption == "run 'plain': Some CPU (2 cores), profile cpu, 256 px, width 32, 3,600 steps, 45 min"


def test_run_caption_names_the_starting_run_and_changed_loss(tmp_path):
    run = _fake_run(tmp_path / "tuned", init_from="data/runs/pconv", loss_weights={"style": 0.0, "perceptual": 0.0})
    caption = viz.run_caption(run)
    assert caption.endswith("45 min, started from the weights of run 'pconv', "
                            "loss weights changed: style 0, perceptual 0")
