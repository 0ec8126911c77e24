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

Everything that reads or writes a run goes through the functions here: formats, atomic writes,
``history.csv``, checkpoints with their RNG states, ``weights.pt``, stored runs. (The run card's text is
composed in :mod:`inpaintlib.runcard`.)

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

import contextlib
import csv
import io
import json
import os
import pickle
import random
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inpaintlib.models import ContextEncoder, PConvUNet
from inpaintlib.paths import repo_root, stored_runs_dir

__all__ = [
    "WEIGHTS_FORMAT",
    "CHECKPOINT_FORMAT",
    "atomic_write",
    "write_text",
    "save_torch",
    "load_checkpoint",
    "save_weights",
    "load_weights",
    "history_header",
    "truncate_history",
    "append_history",
    "rng_state",
    "set_rng_state",
    "git_commit",
    "portable",
    "stored_run",
    "LOCK_NAME",
    "writer_lock",
    "check_new_run_folder",
    "build_model",
    "load_config",
    "load_history",
    "load_metrics",
    "load_model",
    "sample_paths",
]

WEIGHTS_FORMAT = "inpaintlib.weights/1"
CHECKPOINT_FORMAT = "inpaintlib.checkpoint/1"
HISTORY_TAIL = ("lr", "img_per_s", "data_wait", "skipped", "seconds")  # history.csv columns after the loss terms
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
    blob = _load(path, (WEIGHTS_FORMAT, CHECKPOINT_FORMAT))
    try:
        state = blob["state_dict"] if blob["format"] == WEIGHTS_FORMAT else blob["models"]["generator"]
        model = build_model(blob["kind"], dict(blob["model_args"]))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (KeyError, TypeError, AttributeError, RuntimeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a readable inpaintlib weights file (its model does not load: {first})") from None
    return model.to(device).eval()


def _load(path: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors a user can act on: a refused pickle (Python
    objects that could run code) and a corrupt, truncated or foreign file each give one ``ValueError``."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error) or "GLOBAL" in str(error):  # an object the file wants built
            raise ValueError(
                f"{path}: refused: this file holds Python objects, not just tensors -- it may run code; not loaded"
            ) from None
        raise ValueError(f"{path} is not a readable inpaintlib weights file (UnpicklingError: {error})") from None
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a readable inpaintlib weights file ({type(error).__name__}: {first})") from None
    if not isinstance(blob, dict) or blob.get("format") not in formats:
        raise ValueError(f"{path} is not a readable inpaintlib weights file (no inpaintlib format tag)")
    return blob


def stored_run(name: str | Path) -> Path | None:
    """The run directory ``data/runs/<name>`` of the checkout, or ``name`` itself when it is a path to a run
    directory; ``None`` when no such run exists or it is incomplete (it needs ``history.csv`` and
    ``weights.pt``)."""
    for path in (stored_runs_dir() / str(name), Path(name).expanduser()):
        if (path / "history.csv").is_file() and (path / "weights.pt").is_file():
            return path
    return None


# ----------------------------------------------------------------------------------------------- writing
def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write via a temporary file in the same folder, fsync, then ``os.replace``: readers and a crash
    mid-write see either the old file or the new one, never a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        kept = f"; the previous {path.name} is intact" if path.exists() else ""
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}{kept}", str(path)) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically. Serialised in memory first, so that a full disk shows up as the
    ``OSError`` of the write (torch's zip writer would report it as a bare RuntimeError)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A ``checkpoint.pt`` (tensors and plain containers only: ``weights_only=True``)."""
    return _load(path, (CHECKPOINT_FORMAT,))


def save_weights(path: Path, kind: str, model_args: dict, model: nn.Module, run: dict[str, Any]) -> None:
    """``weights.pt``: the model as an fp16 state dict, its constructor arguments and the ``run`` record
    (step, seconds, sessions, command, settings) from which ``train --resume`` continues where no
    ``checkpoint.pt`` was kept."""
    state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    blob = {"format": WEIGHTS_FORMAT, "kind": kind, "model_args": model_args, "state_dict": state, "run": run}
    save_torch(blob, path)


def load_weights(path: Path) -> dict[str, Any]:
    """A ``weights.pt`` file as a dict (format checked; loaded with ``weights_only=True``)."""
    blob = _load(path, (WEIGHTS_FORMAT,))
    if "run" not in blob:
        raise ValueError(f"{path} has no run record (written before inpaintlib 0.1 stored one); cannot resume from it")
    return blob


def history_header(loss_columns: Sequence[str]) -> list[str]:
    """Columns of ``history.csv``: step, epoch, phase, the recipe's loss terms, then :data:`HISTORY_TAIL`."""
    return ["step", "epoch", "phase", *loss_columns, *HISTORY_TAIL]


def truncate_history(path: Path, header: list[str], last_step: int) -> None:
    """Rewrite ``history.csv`` keeping rows up to ``last_step`` (a resume logs later rows again);
    ``last_step=-1`` starts an empty file with its header."""
    rows = []
    if path.is_file():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def append_history(path: Path, header: list[str], row: dict[str, Any]) -> None:
    """Append one row (floats with 6 significant digits; missing columns empty)."""
    cells = {k: f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in row.items()}
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=header, lineterminator="\n").writerow({k: cells.get(k, "") for k in header})


# ----------------------------------------------------------------------------------------------- state
def rng_state(device: torch.device) -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python random states, as tensors and plain values."""
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_gauss),
            "cached": float(np_cached),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(state["python"])


def git_commit() -> str | None:
    """The commit of the checkout the library runs from, or None (no git, not a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def portable(text: str) -> str:
    """Paths inside the repository written relative to it (run directories get committed)."""
    return text.replace(str(repo_root()) + os.sep, "")


# ----------------------------------------------------------------------------------------------- one writer
LOCK_NAME = ".inpaintlib.lock"
"""Held by the process that writes a run directory (pid, host, start time); never committed."""


def _lock_holder(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _holder_alive(holder: dict[str, Any] | None, path: Path) -> bool:
    if holder is None:  # being written this very moment, or garbage: trust it while it is fresh
        try:
            return time.time() - path.stat().st_mtime < 60
        except OSError:
            return False
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process: cannot tell, so do not steal its lock
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError, KeyError, TypeError):
        return True
    return True


@contextlib.contextmanager
def writer_lock(run_dir: Path) -> Iterator[None]:
    """Make this process the only writer of ``run_dir`` while the block runs.

    The lock file is created atomically (``O_EXCL``); a second writer gets a ``ValueError`` naming the
    holder. A lock whose process is gone (same host) is stale and taken over. Released on exit; nested
    use in the same process is allowed.
    """
    path = run_dir / LOCK_NAME
    holder = _lock_holder(path)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        yield  # this process holds it already (the command line locks before train() does)
        return
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if _holder_alive(holder, path):
                who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                       if holder else "a process that is starting")
                raise ValueError(
                    f"{run_dir} is being written by another training process ({who}); wait for it to end, "
                    f"stop it, or choose another --out. If that process is gone, delete {path}"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        break
    else:
        raise ValueError(f"could not take the lock {path}; another process keeps creating it")
    try:
        yield
    finally:
        if _lock_holder(path) == mine:
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if nothing was written (e.g. a refused --resume)


def check_new_run_folder(run_dir: Path) -> None:
    """Refuse to start a new run in a folder that holds anything (a run or the user's own files)."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is a file, not a folder")
    entries = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
    if not entries:
        return
    if {"checkpoint.pt", "weights.pt"} & set(entries):
        raise ValueError(f"{run_dir} already holds a run; continue it with --resume (resume=True) or choose a new folder")
    if {"config.json", "history.csv"} & set(entries):
        raise ValueError(
            f"{run_dir} holds a run that stopped before its first checkpoint ({', '.join(entries[:4])}); "
            "delete the folder to start again, or choose a new one"
        )
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    raise ValueError(f"{run_dir} is not empty ({shown}); a new run needs an empty or new folder, so nothing was written")
