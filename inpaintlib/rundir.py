"""Reading run directories: the contract between training, evaluation, the CLI and the book.

:func:`inpaintlib.train.train` writes one directory per run::

    config.json      every setting (flat, as in CEConfig / PConvConfig) + "kind" + "environment"
    history.csv      one row per logged step (columns below)
    samples/         step_XXXXXX.png: fixed validation images + fixed masks; each grid row is
                     one image, columns are masked input | output composite | ground truth
    metrics.json     validation PSNR / SSIM / L1-in-the-hole of the composite, per hole bucket
    checkpoint.pt    full training state for an exact resume (written atomically; not committed)
    weights.pt       final weights for inference: fp16 state dict + the model's constructor arguments,
                     and a "run" record (step, seconds, sessions, command, settings) from which
                     ``train --resume`` continues a run whose checkpoint.pt was not kept
    RUN.md           the run card; text below its notes marker is kept when training rewrites it

Everything that reads a run goes through the functions here and reads nothing else.

``history.csv`` columns, in this order: ``step, epoch, phase``, then the loss terms of the recipe
(PConv: ``total, valid, hole, perceptual, style_out, style_comp, tv`` -- report eqs. (8)-(12);
Context Encoder: ``total, rec, adv, d_loss, d_acc`` -- eqs. (3)-(5) and Figs 4-5), then
``lr, img_per_s, data_wait, skipped, seconds``. Loss values are means over the steps since the
previous row; ``data_wait`` is the fraction of step time spent waiting for the data loader;
``seconds`` is wall time summed over every session of the run (resumes included).

``metrics.json`` schema::

    {"kind": "pconv", "step": 400, "num_images": 30, "image_size": 128,
     "buckets": {"0.01-0.1": {"psnr": 31.2, "ssim": 0.95, "l1_hole": 4.1, "n": 30}, ...},
     "overall": {"psnr": ..., "ssim": ..., "l1_hole": ..., "n": 180}}

(for the Context Encoder the only bucket is ``"center"``).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "WEIGHTS_FORMAT",
    "build_model",
    "load_config",
    "load_history",
    "load_metrics",
    "load_model",
    "sample_paths",
]

WEIGHTS_FORMAT = "inpaintlib.weights/1"
_SAMPLE_RE = re.compile(r"^step_(\d+)\.png$")


def _run_file(run_dir: str | Path, name: str) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist (expected a folder written by train())")
    path = run_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run directory, and has the run finished?")
    return path


def load_config(run_dir: str | Path) -> dict:
    """Every setting of a run as a dict (``config.json``), incl. ``kind`` and ``environment``."""
    return json.loads(_run_file(run_dir, "config.json").read_text())


def _parse(value: str) -> float | int | str:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def load_history(run_dir: str | Path) -> dict[str, np.ndarray]:
    """``history.csv`` as columns: ``{"step": int array, "phase": str array, "total": float array, ...}``.

    Empty cells (a term a phase does not have) become NaN. Plot e.g. ``h["step"]`` vs ``h["total"]``.
    """
    with _run_file(run_dir, "history.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        columns: dict[str, list] = {name: [] for name in reader.fieldnames or []}
        for row in reader:
            for name in columns:
                cell = row.get(name)
                columns[name].append(float("nan") if cell in (None, "") else _parse(cell))
    out: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        if values and all(isinstance(v, str) for v in values):
            out[name] = np.array(values, dtype=str)
        elif values and all(isinstance(v, int) for v in values):
            out[name] = np.array(values, dtype=np.int64)
        else:
            out[name] = np.array(values, dtype=np.float64)
    return out


def load_metrics(run_dir: str | Path) -> dict:
    """Validation metrics of a finished run (``metrics.json``; schema in the module docstring)."""
    return json.loads(_run_file(run_dir, "metrics.json").read_text())


def sample_paths(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(step, path), ...]`` of the sample grids in ``samples/``, sorted by step (report Fig 7)."""
    folder = Path(run_dir) / "samples"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: is {run_dir} a run directory?")
    found = []
    for path in folder.iterdir():
        match = _SAMPLE_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def build_model(kind: str, model_args: dict) -> nn.Module:
    """A freshly initialised model of ``kind`` ("pconv" or "ce") from its constructor arguments."""
    from inpaintlib.models import ContextEncoder, PConvUNet

    if kind == "pconv":
        return PConvUNet(**model_args)
    if kind == "ce":
        return ContextEncoder(**model_args)
    raise ValueError(f"unknown model kind {kind!r}; expected 'pconv' or 'ce'")


def load_model(run_dir_or_weights: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained inpainting model of a run, in eval mode, fp32, on ``device``.

    Accepts a run directory (uses its ``weights.pt``, or the generator in ``checkpoint.pt`` if the
    run has not finished) or a ``weights.pt`` file. Loads with ``torch.load(weights_only=True)``.
    For a Context Encoder run this is the generator (:class:`~inpaintlib.models.ContextEncoder`).
    """
    path = Path(run_dir_or_weights)
    if path.is_dir():
        if (path / "weights.pt").is_file():
            path = path / "weights.pt"
        elif (path / "checkpoint.pt").is_file():
            path = path / "checkpoint.pt"
        else:
            raise FileNotFoundError(f"{path} holds neither weights.pt nor checkpoint.pt: not a run directory")
    elif not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected a run directory or a weights.pt file)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") not in (WEIGHTS_FORMAT, "inpaintlib.checkpoint/1"):
        raise ValueError(f"{path} is not an inpaintlib weights.pt or checkpoint.pt file")
    if blob["format"] == WEIGHTS_FORMAT:
        state = blob["state_dict"]
    else:
        state = blob["models"]["generator"]
    model = build_model(blob["kind"], dict(blob["model_args"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval()
