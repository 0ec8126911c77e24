"""What a run reports besides its losses: the hardware and environment, sample grids (report Figs 7/8) and
the validation metrics of ``metrics.json`` -- by the protocol of :mod:`inpaintlib.evaluate` (report §4).
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

import inpaintlib
from inpaintlib.device import Distributed
from inpaintlib.inference import inpaint
from inpaintlib.masks import BUCKETS, bucket_of, center_mask, evaluation_assignment, evaluation_masks, hole_ratio
from inpaintlib.metrics import METRICS, l1_hole, psnr, ssim
from inpaintlib.runcard import write_run_card
from inpaintlib.rundir import atomic_write, git_commit, load_config, load_model, load_weights, write_text

from .config import CONFIGS, PROFILES, CEConfig, TrainConfig, config_from_dict, make_config
from .recipes import Recipe
from .sampling import photo_folder, stack_images

__all__ = ["environment", "sample_masks", "save_sample_grid", "validation_metrics", "python_call", "rescore_run", "validation_scores"]

Inpaint = Callable[[Tensor, Tensor], Tensor]  # (images (N,3,S,S), masks (N,1,S,S)) -> composites


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


def environment(device: torch.device, amp_dtype: torch.dtype | None, dist: Distributed) -> dict[str, Any]:
    """Versions, commit, device and precision: the ``environment`` entry of ``config.json``."""
    return {
        "library_version": inpaintlib.__version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": _hardware(device),
        "amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "world_size": dist.world_size,
    }


def sample_masks(config: TrainConfig, count: int) -> Tensor:
    """Fixed masks for the sample grids: the centre hole (CE) or one mask per hole-ratio bucket, spread
    over the rows from small to large holes (PConv)."""
    if isinstance(config, CEConfig):
        return center_mask(config.image_size, config.hole_size).expand(count, 1, -1, -1).clone()
    masks = [m for _, m in evaluation_masks(config.image_size, per_bucket=1, seed=0)]
    picks = [round(i * (len(masks) - 1) / max(1, count - 1)) for i in range(count)]
    return torch.stack([masks[i] for i in picks])  # (count, 1, S, S)


def save_sample_grid(images: Tensor, masks: Tensor, composite: Tensor, path: Path) -> None:
    """Rows: one photo each; columns: masked input (holes white) | composite | ground truth (report Fig 7/8)."""
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
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def _mask_slots(kind: str, image_size: int, hole_size: int, count: int) -> list[list[Tensor]]:
    """Per evaluation slot, the mask of every image: the centre hole (CE), or for PConv the masks
    :func:`masks.evaluation_assignment` gives image ``i`` (one per hole-ratio bucket), as ``evaluate`` does."""
    if kind == "ce":
        return [[center_mask(image_size, hole_size)] * count]
    assign = evaluation_assignment(image_size, per_image=len(BUCKETS), seed=0)
    per_image = [[m for _, m in assign(i)] for i in range(count)]
    return [list(slot) for slot in zip(*per_image)]


def validation_metrics(
    inpaint: Inpaint, kind: str, images: Tensor, step: int, hole_size: int = 56, batch: int = 8
) -> dict[str, Any]:
    """``metrics.json``: PSNR, SSIM and hole L1 of the composites of ``inpaint`` on ``images`` (N, 3, S, S),
    by hole-ratio bucket (PConv; Liu et al.'s protocol, the masks ``evaluate`` uses) or for the centre hole
    (CE). The same numbers as the model's rows in ``evaluate``'s summary for these photos."""
    size = images.shape[-1]
    scores: dict[str, dict[str, list[float]]] = {}
    for slot in _mask_slots(kind, size, hole_size, len(images)):
        for i in range(0, len(images), batch):
            x, m = images[i : i + batch], torch.stack(slot[i : i + batch])
            comp = inpaint(x, m).float().cpu()
            values = {"psnr": psnr(comp, x), "ssim": ssim(comp, x), "l1_hole": l1_hole(comp, x, m)}
            for j in range(len(x)):
                label = "center" if kind == "ce" else bucket_of(float(hole_ratio(m[j])))
                bucket = scores.setdefault(label, {k: [] for k in METRICS})
                for k in METRICS:
                    bucket[k].append(float(values[k][j]))
    buckets = {label: {**{k: sum(v) / len(v) for k, v in s.items()}, "n": len(s["psnr"])} for label, s in scores.items()}
    every = {k: [v for s in scores.values() for v in s[k]] for k in METRICS}
    overall = {**{k: sum(v) / len(v) for k, v in every.items()}, "n": len(every["psnr"])}
    return {"kind": kind, "step": step, "image_size": size, "num_images": len(images), "buckets": buckets,
            "overall": overall}


def validation_scores(recipe: Recipe, config: TrainConfig, images: Tensor, step: int) -> dict[str, float]:
    """``val_psnr``, ``val_ssim``, ``val_l1_hole`` for ``history.csv``: the model as it is now on ``images``,
    by the protocol of ``metrics.json`` (BatchNorm in eval mode, the run's autocast)."""
    recipe.set_train(False)
    try:
        overall = validation_metrics(recipe.inpaint, config.kind, images, step,
                                     hole_size=getattr(config, "hole_size", 56))["overall"]
    finally:
        recipe.set_train(True)
    return {f"val_{k}": overall[k] for k in ("psnr", "ssim", "l1_hole")}


def python_call(config: TrainConfig, out_dir: Path) -> str:
    """The Python call that reproduces a run started from Python (the CLI records its command line)."""
    base = make_config(config.kind, config.profile) if config.profile in PROFILES else CONFIGS[config.kind]()
    diff = [
        f"{f.name}={getattr(config, f.name)!r}"
        for f in fields(config)
        if f.name != "profile" and getattr(config, f.name) != getattr(base, f.name)
    ]
    args = ", ".join([repr(config.kind), repr(config.profile), *diff])
    return f'train(make_config({args}), "{out_dir.name}")'


def rescore_run(run_dir: str | Path, batch: int = 8) -> dict[str, Any]:
    """Recompute a finished run's ``metrics.json`` from its ``weights.pt`` (on the CPU, in fp32) and rewrite
    ``RUN.md`` from the run record -- e.g. after the evaluation protocol changed. Returns the metrics."""
    run_dir = Path(run_dir)
    record = load_weights(run_dir / "weights.pt")["run"]
    config = config_from_dict(record["config"])
    stored = load_config(run_dir)
    val = photo_folder(config.val_data, "val", config.image_size, train=False)
    images = stack_images(val, config.eval_images)
    model = load_model(run_dir)
    metrics = validation_metrics(lambda x, m: inpaint(model, x, m), config.kind, images, int(record["step"]),
                                 hole_size=getattr(config, "hole_size", 56), batch=batch)
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    train_photos = photo_folder(config.data, "train", config.image_size, train=True)
    state = {k: record[k] for k in ("step", "seconds", "sessions", "command")}
    write_run_card(run_dir, {"kind": config.kind, **asdict(config)}, stored["environment"], state, metrics,
                   len(train_photos), len(val))
    return metrics
