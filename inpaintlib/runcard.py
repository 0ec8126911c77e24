"""The run card ``RUN.md``: what a person reads about a run (hardware, wall time, steps, data, the exact
command, the validation metrics and every session). Hand-written notes below :data:`NOTES_MARKER` survive
the rewrite at the end of each training session.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path
from typing import Any

import numpy as np

from inpaintlib.losses import DEFAULT_PCONV_WEIGHTS
from inpaintlib.rundir import portable, write_text

__all__ = ["NOTES_MARKER", "write_run_card", "duration"]


def duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _loss_rows(config: dict[str, Any]) -> list[str]:
    """Card rows for what a run was started from and, for PConv, which loss weights it used."""
    rows = []
    if config.get("init_from"):
        rows.append(f"| started from | the weights of `{portable(str(config['init_from']))}` "
                    "(its own card has the steps and time spent there) |")
    if config["kind"] == "pconv":
        weights = {**DEFAULT_PCONV_WEIGHTS, **(config.get("loss_weights") or {})}
        text = ", ".join(f"{k} {v:g}" for k, v in weights.items())
        changed = weights != DEFAULT_PCONV_WEIGHTS
        rows.append(f"| loss | {'**changed from** eq. (12)' if changed else 'eq. (12)'}: {text} |")
    if config.get("crop_scale"):
        lo, hi = config["crop_scale"]
        rows.append(f"| training crops | rescaled by a random factor in [{lo:g}, {hi:g}] before cropping (`--crop-scale`) |")
    if config.get("head_only"):
        rows.append("| trained | the full-resolution head only; the rest as loaded (weights and statistics) |")
    return rows


def write_run_card(
    out_dir: Path, config: dict[str, Any], env: dict, state: dict, metrics: dict, n_train: int, n_val: int
) -> None:
    """Write ``RUN.md`` from the run's settings (``{"kind": ..., **asdict(config)}``), environment, state
    (step, seconds, sessions, command) and metrics; text below :data:`NOTES_MARKER` is kept."""
    history = out_dir / "history.csv"
    speeds, waits = [], []
    with history.open(newline="") as f:
        for row in csv.DictReader(f):
            with contextlib.suppress(ValueError):
                speeds.append(float(row["img_per_s"]))
                waits.append(float(row["data_wait"]))
    precision = "fp32" if env["amp_dtype"] == "off" else f"{env['amp_dtype']} autocast"
    name = {"ce": "Context Encoder (report §3.1, §4.1)", "pconv": "PConv U-Net (report §3.2, §4.2)"}[config["kind"]]
    steps = state["step"]
    global_batch = config["batch_size"] * env["world_size"]
    step_text = f"{steps:,}"
    if config["kind"] == "pconv":
        first = config["steps"]
        step_text += f" ({min(steps, first):,} train + {max(0, steps - first):,} fine-tune)"
    data = portable(str(config["data"])) if config.get("data") else "data/photos/train (embedded)"
    val = portable(str(config["val_data"])) if config.get("val_data") else "data/photos/val (embedded)"
    lines = [
        f"# Run card: {out_dir.name}",
        "",
        "| | |",
        "|---|---|",
        f"| model | {name} |",
        f"| profile | {config.get('profile') or 'none (explicit settings)'} |",
        f"| hardware | {env['device_name']} |",
        f"| device, precision | {env['device']}, {precision}, {env['world_size']} process(es) |",
        f"| wall time | {duration(state['seconds'])} (all sessions) |",
        f"| steps | {step_text} |",
        f"| images seen | {steps * global_batch:,} (batch {config['batch_size']} x {env['world_size']} process(es)) |",
        f"| image size | {config['image_size']} px |",
        *_loss_rows(config),
        f"| training data | {data}: {n_train} photos |",
        f"| validation data | {val}: {n_val} photos ({metrics['num_images']} scored) |",
        f"| throughput | {np.median(speeds) if speeds else float('nan'):.1f} images/s (median of history rows) |",
        f"| data-loader wait | {100 * np.median(waits) if waits else float('nan'):.1f} % of step time (median) |",
        f"| library | inpaintlib {env['library_version']}, commit {env['git_commit'] or 'unknown'}, "
        f"torch {env['torch_version']} |",
        f"| command | `{state['command']}` |",
        "",
        "## Validation metrics (composite vs ground truth, data range 1; `metrics.json`)",
        "",
        "| hole ratio | PSNR (dB) | SSIM | L1 in hole (x100) | images |",
        "|---|---|---|---|---|",
    ]
    for label, row in [*metrics["buckets"].items(), ("all", metrics["overall"])]:
        lines.append(f"| {label} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['l1_hole']:.2f} | {row['n']} |")
    lines += [
        "",
        "## Sessions",
        "",
        "| from step | to step | wall time | hardware | learning rate at start | settings changed on resume |",
        "|---|---|---|---|---|---|",
    ]
    for s in state["sessions"]:
        lr = f"{s['lr']:g}" if s.get("lr") is not None else "not recorded"
        parts = [s["note"]] if s.get("note") else []
        parts += [f"{k} {a!r} -> {b!r}" for k, (a, b) in s.get("changed", {}).items()]
        changes = "; ".join(parts) or "none"
        lines.append(
            f"| {s['start_step']} | {s['end_step']} | {duration(s['seconds'])} | {s['device_name']} | {lr} | {changes} |"
        )
    card = out_dir / "RUN.md"
    notes = _kept_notes(card)
    write_text(card, "\n".join(lines) + "\n" + (f"\n{notes}" if notes else ""))


NOTES_MARKER = "<!-- notes: everything below this line is kept when the run card is rewritten -->"


def _kept_notes(card: Path) -> str:
    """The hand-written part of an existing run card: from :data:`NOTES_MARKER` to the end."""
    if not card.is_file():
        return ""
    text = card.read_text()
    at = text.find(NOTES_MARKER)
    return text[at:] if at >= 0 else ""
