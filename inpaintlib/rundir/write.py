"""Writing a run directory: atomic writes (a crash or a full disk never leaves half a file), the
weights, ``history.csv``, the random states of a checkpoint, and the commit of the code.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inpaintlib.paths import repo_root

from .read import HISTORY_TAIL, VALIDATION_COLUMNS, WEIGHTS_FORMAT


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
    _fsync_folder(path.parent)  # make the rename itself durable


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """Write a set of files all or nothing: the block writes into a hidden staging folder inside ``folder``
    (same file system), and only when every file is complete are they renamed into ``folder``; renames need
    no space, so a full disk leaves the previous files exactly as they were. An ``OSError`` names the file
    in ``folder`` it could not write. The staging folder is removed in every case."""
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=folder))
    try:
        try:
            yield staging
        except OSError as error:
            name = Path(str(error.filename or "")).name or "its files"
            target, cause = folder / name, error.__cause__ if isinstance(error.__cause__, OSError) else error
            raise OSError(error.errno, f"cannot write {target}: {cause.strerror or cause}; nothing in {folder} was "
                          "changed", str(target)) from error
        _fsync_folder(staging)
        for path in sorted(staging.iterdir()):
            os.replace(path, folder / path.name)
        _fsync_folder(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically. Serialised in memory first, so that a full disk shows up as the
    ``OSError`` of the write (torch's zip writer would report it as a bare RuntimeError)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def save_weights(path: Path, kind: str, model_args: dict, model: nn.Module, run: dict[str, Any]) -> None:
    """``weights.pt``: the model as an fp16 state dict, its constructor arguments and the ``run`` record
    (step, seconds, sessions, command, settings) from which ``train --resume`` continues where no
    ``checkpoint.pt`` was kept."""
    state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    blob = {"format": WEIGHTS_FORMAT, "kind": kind, "model_args": model_args, "state_dict": state, "run": run}
    save_torch(blob, path)


def history_header(loss_columns: Sequence[str]) -> list[str]:
    """Columns of ``history.csv``: step, epoch, phase, the recipe's loss terms, :data:`HISTORY_TAIL`, then the
    validation scores :data:`VALIDATION_COLUMNS` (filled every ``val_every`` steps)."""
    return ["step", "epoch", "phase", *loss_columns, *HISTORY_TAIL, *VALIDATION_COLUMNS]


def truncate_history(path: Path, header: list[str], last_step: int) -> None:
    """Rewrite ``history.csv`` keeping rows up to ``last_step`` (a resume logs later rows again);
    ``last_step=-1`` starts an empty file with its header."""
    rows = []
    if path.is_file():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            unknown = sorted(set(reader.fieldnames or []) - set(header))
            if unknown:
                raise ValueError(f"{path} has columns {unknown} this run does not log: it is another run's history; "
                                 "put back this run's own history.csv")
            for line, r in enumerate(reader, start=2):
                try:
                    step = int(r["step"])
                except (TypeError, ValueError, KeyError):
                    raise ValueError(f"{path}, line {line}: step {r.get('step')!r} is not a whole number: the file is "
                                     "damaged; delete that row (the run resumes from its checkpoint)") from None
                if step <= last_step:
                    rows.append(r)
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


@contextlib.contextmanager
def rng_kept(device: torch.device) -> Iterator[None]:
    """Training seeds and restores torch's, numpy's and Python's global random states; the caller's
    states are put back afterwards, so a notebook's own random numbers do not depend on a training cell."""
    before = rng_state(device)
    try:
        yield
    finally:
        set_rng_state(before, device)
