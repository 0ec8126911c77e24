"""Reading a run directory: its settings, history, metrics, sample grids and model, and the two weight
files -- always with ``torch.load(weights_only=True)``, and with errors a user can act on.
"""

from __future__ import annotations

import csv
import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inpaintlib.models import ContextEncoder, PConvUNet
from inpaintlib.paths import stored_runs_dir, studies_dir

WEIGHTS_FORMAT = "inpaintlib.weights/1"
CHECKPOINT_FORMAT = "inpaintlib.checkpoint/1"
HISTORY_TAIL = ("lr", "img_per_s", "data_wait", "skipped", "seconds")  # history.csv columns after the loss terms
VALIDATION_COLUMNS = ("val_psnr", "val_ssim", "val_l1_hole")  # every val_every steps; empty in other rows
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
    blob = load_blob(path, (WEIGHTS_FORMAT, CHECKPOINT_FORMAT))
    try:
        state = blob["state_dict"] if blob["format"] == WEIGHTS_FORMAT else blob["models"]["generator"]
        model = build_model(blob["kind"], dict(blob["model_args"]))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (KeyError, TypeError, AttributeError, RuntimeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a readable inpaintlib weights file (its model does not load: {first})") from None
    return model.to(device).eval()


def load_blob(path: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors a user can act on: a refused pickle (Python
    objects that could run code) and a corrupt, truncated or foreign file each give one ``ValueError``.

    Every way the unpickler can fail on bytes that are not a weights file (IndexError, struct.error,
    UnpicklingError, RuntimeError, EOFError, ...; found by fuzzing, tests/test_faults_io.py) ends in the same
    one line; only a file that cannot be opened at all keeps its ``OSError``.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error) or "GLOBAL" in str(error):  # an object the file wants built
            raise ValueError(
                f"{path} is not a readable inpaintlib weights file: refused: this file holds Python objects, not just "
                "tensors -- it may run code; not loaded"
            ) from None
        raise ValueError(f"{path} is not a readable inpaintlib weights file (UnpicklingError: {_first_line(error)})") from None
    except Exception as error:  # noqa: BLE001 -- any other failure (MemoryError too) means "not a weights file"
        raise ValueError(f"{path} is not a readable inpaintlib weights file ({type(error).__name__}: {_first_line(error)})") from None
    if not isinstance(blob, dict) or blob.get("format") not in formats:
        raise ValueError(f"{path} is not a readable inpaintlib weights file (no inpaintlib format tag)")
    return blob


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def stored_run(name: str | Path) -> Path | None:
    """The run directory ``data/runs/<name>`` of the checkout, or ``name`` itself when it is a path to a run
    directory; ``None`` when no such run exists or it is incomplete (it needs ``history.csv`` and
    ``weights.pt``)."""
    for path in (stored_runs_dir() / str(name), Path(name).expanduser()):
        if (path / "history.csv").is_file() and (path / "weights.pt").is_file():
            return path
    return None


def run_files(name: str) -> Path | None:
    """The folder with the files of the run ``name`` that the chapters read (config, history, metrics, samples,
    evaluations, card): ``data/runs/<name>`` (a stored run, with weights) or ``data/studies/<name>`` (a run kept
    without its weights); ``None`` when neither holds a ``history.csv``."""
    for path in (stored_runs_dir() / name, studies_dir() / name):
        if (path / "history.csv").is_file():
            return path
    return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A ``checkpoint.pt`` (tensors and plain containers only: ``weights_only=True``)."""
    return load_blob(path, (CHECKPOINT_FORMAT,))


def load_weights(path: Path) -> dict[str, Any]:
    """A ``weights.pt`` file as a dict (format checked; loaded with ``weights_only=True``)."""
    blob = load_blob(path, (WEIGHTS_FORMAT,))
    if "run" not in blob:
        raise ValueError(f"{path} has no run record (written before inpaintlib 0.1 stored one); cannot resume from it")
    return blob


