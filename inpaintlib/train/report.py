"""What a run reports: the hardware and environment, sample grids (report Fig 7/8), validation
metrics during training (those of :mod:`inpaintlib.evaluate`, report §4) and the ``RUN.md`` run card.
"""

from __future__ import annotations

import contextlib
import csv
import io
import platform
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import inpaintlib
from inpaintlib.masks import center_mask, evaluation_masks

from .checkpoint import _atomic_write, _git_commit, _portable, _write_text
from .config import CONFIGS, PROFILES, CEConfig, PConvConfig, TrainConfig, make_config
from inpaintlib.device import _Dist
from .recipes import _Recipe


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu} ({torch.get_num_threads()} threads)"


def _environment(device: torch.device, amp_dtype: torch.dtype | None, dd: _Dist) -> dict[str, Any]:
    return {
        "library_version": inpaintlib.__version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": _hardware(device),
        "amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "world_size": dd.world_size,
    }


def _sample_masks(config: TrainConfig, count: int) -> Tensor:
    """Fixed masks for the sample grids: the centre hole (CE) or one mask per hole-ratio bucket, spread
    over the rows from small to large holes (PConv)."""
    if isinstance(config, CEConfig):
        return center_mask(config.image_size, config.hole_size).expand(count, 1, -1, -1).clone()
    masks = [m for _, m in evaluation_masks(config.image_size, per_bucket=1, seed=0)]
    picks = [round(i * (len(masks) - 1) / max(1, count - 1)) for i in range(count)]
    return torch.stack([masks[i] for i in picks])  # (count, 1, S, S)


def _save_grid(images: Tensor, masks: Tensor, composite: Tensor, path: Path) -> None:
    """Rows: one photo each; columns: masked input (holes white) | composite | ground truth (report Fig 7/8)."""
    from PIL import Image

    masked = images * masks + (1 - masks)
    tiles = torch.stack([masked, composite, images], dim=1)  # (n, 3 columns, 3, S, S)
    n, cols, _, s, _ = tiles.shape
    pad = 2
    canvas = torch.ones(3, n * s + (n + 1) * pad, cols * s + (cols + 1) * pad)
    for r in range(n):
        for c in range(cols):
            y, x = pad + r * (s + pad), pad + c * (s + pad)
            canvas[:, y : y + s, x : x + s] = tiles[r, c]
    array = (canvas.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    _atomic_write(path, lambda f: f.write(buf.getvalue()))


def _score(composite: Tensor, target: Tensor, masks: Tensor) -> dict[str, Tensor]:
    """Per-image PSNR, SSIM and hole L1 (x100): the very metrics of :mod:`inpaintlib.evaluate`."""
    from .. import metrics as evaluate  # the metrics module (evaluate no longer re-exports them); see issue 12

    composite, target, masks = composite.float().cpu(), target.float().cpu(), masks.float().cpu()
    return {
        "psnr": evaluate.psnr(composite, target),
        "ssim": evaluate.ssim(composite, target),
        "l1_hole": evaluate.l1_hole(composite, target, masks),
    }


def _evaluate(recipe: _Recipe, config: TrainConfig, images: Tensor, step: int) -> dict[str, Any]:
    """Validation metrics of the composite (BN in eval mode), by hole-ratio bucket for PConv and for
    the centre hole for the Context Encoder (report §4; Liu et al.'s bucketed protocol)."""
    if isinstance(config, CEConfig):
        by_label = {"center": [center_mask(config.image_size, config.hole_size)]}
    else:
        by_label: dict[str, list[Tensor]] = {}
        for label, m in evaluation_masks(config.image_size, per_bucket=config.eval_masks_per_bucket, seed=0):
            by_label.setdefault(label, []).append(m)
    batch = max(8, config.batch_size)
    recipe.set_train(False)
    buckets: dict[str, dict[str, float]] = {}
    every: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "l1_hole": []}
    try:
        for label, masks in by_label.items():
            # image i gets mask i mod len(masks) of the bucket: every photo is scored once per bucket
            pairs = torch.stack([masks[i % len(masks)] for i in range(len(images))])  # (n, 1, S, S)
            scores: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "l1_hole": []}
            for i in range(0, len(images), batch):
                x = images[i : i + batch].to(recipe.device)
                m = pairs[i : i + batch].to(recipe.device)
                for k, v in _score(recipe.inpaint(x, m), x, m).items():
                    scores[k].append(v)
            row = {k: float(torch.cat(v).mean()) for k, v in scores.items()}
            row["n"] = len(images)
            buckets[label] = row
            for k, v in scores.items():
                every[k].extend(v)
    finally:
        recipe.set_train(True)
    overall: dict[str, float] = {k: float(torch.cat(v).mean()) for k, v in every.items()}
    overall["n"] = sum(b["n"] for b in buckets.values())
    return {
        "kind": config.kind,
        "step": step,
        "image_size": config.image_size,
        "num_images": len(images),
        "buckets": buckets,
        "overall": overall,
    }


def _python_call(config: TrainConfig, out_dir: Path) -> str:
    base = make_config(config.kind, config.profile) if config.profile in PROFILES else CONFIGS[config.kind]()
    diff = [
        f"{f.name}={getattr(config, f.name)!r}"
        for f in fields(config)
        if f.name != "profile" and getattr(config, f.name) != getattr(base, f.name)
    ]
    args = ", ".join([repr(config.kind), repr(config.profile), *diff])
    return f'train(make_config({args}), "{out_dir.name}")'


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _loss_rows(config: TrainConfig) -> list[str]:
    """Card rows for what a run was started from and, for PConv, which loss weights it used."""
    rows = []
    if config.init_from:
        rows.append(f"| started from | the weights of `{_portable(str(config.init_from))}` "
                    "(its own card has the steps and time spent there) |")
    if isinstance(config, PConvConfig):
        from inpaintlib.losses import DEFAULT_PCONV_WEIGHTS

        weights = {**DEFAULT_PCONV_WEIGHTS, **(config.loss_weights or {})}
        text = ", ".join(f"{k} {v:g}" for k, v in weights.items())
        changed = weights != DEFAULT_PCONV_WEIGHTS
        rows.append(f"| loss | {'**changed from** eq. (12)' if changed else 'eq. (12)'}: {text} |")
    return rows


def _write_run_card(
    out_dir: Path, config: TrainConfig, env: dict, state: dict, metrics: dict, n_train: int, n_val: int
) -> None:
    history = out_dir / "history.csv"
    speeds, waits = [], []
    with history.open(newline="") as f:
        for row in csv.DictReader(f):
            with contextlib.suppress(ValueError):
                speeds.append(float(row["img_per_s"]))
                waits.append(float(row["data_wait"]))
    precision = "fp32" if env["amp_dtype"] == "off" else f"{env['amp_dtype']} autocast"
    name = {"ce": "Context Encoder (report §3.1, §4.1)", "pconv": "PConv U-Net (report §3.2, §4.2)"}[config.kind]
    steps = state["step"]
    global_batch = config.batch_size * env["world_size"]
    step_text = f"{steps:,}"
    if isinstance(config, PConvConfig):
        step_text += f" ({min(steps, config.steps):,} train + {max(0, steps - config.steps):,} fine-tune)"
    data = _portable(str(config.data)) if config.data else "data/photos/train (embedded)"
    val = _portable(str(config.val_data)) if config.val_data else "data/photos/val (embedded)"
    lines = [
        f"# Run card: {out_dir.name}",
        "",
        "| | |",
        "|---|---|",
        f"| model | {name} |",
        f"| profile | {config.profile or 'none (explicit settings)'} |",
        f"| hardware | {env['device_name']} |",
        f"| device, precision | {env['device']}, {precision}, {env['world_size']} process(es) |",
        f"| wall time | {_duration(state['seconds'])} (all sessions) |",
        f"| steps | {step_text} |",
        f"| images seen | {steps * global_batch:,} (batch {config.batch_size} x {env['world_size']} process(es)) |",
        f"| image size | {config.image_size} px |",
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
            f"| {s['start_step']} | {s['end_step']} | {_duration(s['seconds'])} | {s['device_name']} | {lr} | {changes} |"
        )
    card = out_dir / "RUN.md"
    notes = _kept_notes(card)
    _write_text(card, "\n".join(lines) + "\n" + (f"\n{notes}" if notes else ""))


NOTES_MARKER = "<!-- notes: everything below this line is kept when the run card is rewritten -->"


def _kept_notes(card: Path) -> str:
    """The hand-written part of an existing run card: from :data:`NOTES_MARKER` to the end."""
    if not card.is_file():
        return ""
    text = card.read_text()
    at = text.find(NOTES_MARKER)
    return text[at:] if at >= 0 else ""
