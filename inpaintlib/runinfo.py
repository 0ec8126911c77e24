"""What the chapters say about a training run: find a stored run, describe it in a caption, note its absence.

:func:`run_caption` names a run, its hardware, size, steps and minutes, read from the run directory's own
``config.json`` and ``history.csv`` (the run-directory contract of :mod:`inpaintlib.rundir`), never typed by
hand. The chapters print it where they load a run, above the figures drawn from it; the figures' captions in
the book repeat these facts for the stored runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpaintlib.paths import repo_root
from inpaintlib.rundir import load_config, load_history, run_files, stored_run  # the chapters' entry points

__all__ = ["run_info", "run_caption", "stored_run", "run_files", "relative", "missing_run_note"]


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """What a caption needs about a run: name, kind, profile, hardware, trained shape, steps, minutes,
    the run it started from (``init_from``) and changed loss weights.

    Read from the run directory's ``config.json`` and ``history.csv`` (see ``inpaintlib.rundir``); the
    minutes are the wall time summed over every session of the run.
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    hist = load_history(run_dir)
    logged = len(hist.get("step", ()))
    seconds = float(hist["seconds"][-1]) if logged and "seconds" in hist else None
    return {
        "name": run_dir.name,
        "kind": config.get("kind"),
        "profile": config.get("profile"),
        "hardware": config.get("environment", {}).get("device_name"),
        "image_size": config.get("image_size"),
        "width": config.get("width"),
        "bottleneck": config.get("bottleneck"),
        "steps": int(hist["step"][-1]) if logged else None,
        "minutes": None if seconds is None else seconds / 60.0,
        "init_from": Path(config["init_from"]).name if config.get("init_from") else None,
        "loss_weights": config.get("loss_weights") or None,
    }


def run_caption(run_dir: str | Path) -> str:
    """A caption fragment naming a run: ``run 'ce': <hardware>, profile gpu, 128 px, width 32, bottleneck 1000, 11,000 steps, 6 min``."""
    info = run_info(run_dir)
    detail = []
    if info["hardware"]:
        detail.append(str(info["hardware"]))
    if info["profile"]:
        detail.append(f"profile {info['profile']}")
    if info["image_size"] and info["width"]:  # the shape actually trained, whatever the profile said
        shape = f"{info['image_size']} px, width {info['width']}"
        detail.append(shape + (f", bottleneck {info['bottleneck']}" if info["bottleneck"] else ""))
    if info["steps"] is not None:
        detail.append(f"{int(info['steps']):,} steps")
    if info["minutes"] is not None:
        m = info["minutes"]
        detail.append(f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h")
    if info["init_from"]:
        detail.append(f"started from the weights of run '{info['init_from']}'")
    if info["loss_weights"]:
        detail.append("loss weights changed: " + ", ".join(f"{k} {v:g}" for k, v in info["loss_weights"].items()))
    return f"run '{info['name']}'" + (": " + ", ".join(detail) if detail else "")


def relative(path: str | Path) -> str:
    """``path`` relative to the repository when inside it (chapters never print machine paths)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(repo_root()).as_posix()
    except ValueError:
        return path.name


def missing_run_note(name: str, kind: str) -> Any:
    """A Markdown note shown instead of the figures of a stored run that does not exist yet."""
    from IPython.display import Markdown  # optional dependency (the book extra): only the chapters call this

    return Markdown(
        f"> **Stored run `data/runs/{name}` not found.** The figures of this section are drawn from a "
        f"training run and are skipped here. Train one with `python -m inpaintlib train {kind} --profile gpu "
        f"--out data/runs/{name}`, or run this chapter with `train=True` (papermill: `-p train True`)."
    )
