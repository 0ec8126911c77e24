"""One writer per run directory (or evaluation folder): a lock file created atomically; the refusal to start
a new run in a folder that holds anything, or to write into a folder that an input lies in (or the
reverse); and the removal of what a new run wrote when it fails before its first checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
def writer_lock(run_dir: Path, what: str = "training", reentrant: bool = True) -> Iterator[None]:
    """Make this process the only writer of ``run_dir`` while the block runs.

    The lock file is created atomically (``O_EXCL``); a second writer gets a ``ValueError`` naming the
    holder. A lock whose process is gone (same host) is stale and taken over. Released on exit; nested
    use in the same process is allowed when ``reentrant`` (training: the command line locks before
    ``train()`` does), refused otherwise (two evaluations in threads of one process). ``what`` names the
    kind of writer in the message.
    """
    path = run_dir / LOCK_NAME
    holder = _lock_holder(path)
    if reentrant and holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        yield  # this process holds it already (the command line locks before train() does)
        return
    check_not_dangling(run_dir)
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
                    f"{run_dir} is being written by another {what} process ({who}); wait for it to end, "
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


def check_not_dangling(out: Path) -> None:
    """Refuse an ``--out`` that is a symbolic link to nothing (``mkdir`` would only say "File exists")."""
    if out.is_symlink() and not out.exists():
        raise ValueError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist; "
                         "remove the link or create its target folder")


def check_apart(out: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """Refuse an output folder inside an input folder (``inputs``: flag -> folder, None skipped) or the
    reverse, or the same folder: what one session writes would be read as input by the next (an evaluation
    scoring its own figures, a run training on its sample grids). Also refuses a dangling symlink ``out``."""
    out = Path(out)
    check_not_dangling(out)
    where = out.resolve()
    for flag, folder in inputs.items():
        if folder is None:
            continue
        there = Path(folder).resolve()
        if where == there or where.is_relative_to(there) or there.is_relative_to(where):
            raise ValueError(f"--out {out} and {flag} {folder} overlap (one is inside the other): outputs would "
                             f"be read back as inputs; choose an --out outside {folder}")


def check_new_run_folder(run_dir: Path) -> None:
    """Refuse to start a new run in a folder that holds anything (a run or the user's own files)."""
    check_not_dangling(run_dir)
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


@contextlib.contextmanager
def removed_if_unstarted(run_dir: Path, new: bool) -> Iterator[None]:
    """A new run (``new``: its folder passed :func:`check_new_run_folder`, so all it holds was written by
    this run) that fails before its first checkpoint removes what it wrote, so that the same ``--out`` can be
    used again; a run with a ``checkpoint.pt`` or ``weights.pt`` is kept for ``--resume``."""
    try:
        yield
    except BaseException:
        if new and run_dir.is_dir() and not any((run_dir / n).exists() for n in ("checkpoint.pt", "weights.pt")):
            for entry in run_dir.iterdir():
                if entry.name == LOCK_NAME:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise
