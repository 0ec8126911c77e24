"""Why does the PConv U-Net lose to diffusion on small holes (1-10 % of the image)?  A diagnosis, not a fix.

    python bench/small_holes.py                                # stored pconv on the validation photos
    (RESULTS.md's numbers were made with pconv-l1, whose weights are no longer stored: data/studies/pconv-l1)
    python bench/small_holes.py --checkpoint pconv --images DIR --write

Every validation photo gets the evaluation protocol's masks (``masks.evaluation_assignment``, 256 px, the
masks ``evaluate`` and ``metrics.json`` use); only pairs in the 0.01-0.1 bucket are kept. For each pair
the network (plain inference) and the classical methods fill the hole, and the script measures:

* **error by distance to the nearest known pixel** (mean |error| x 100 over hole pixels 1, 2, 3-4, 5-8
  and over 8 pixels from the edge): thin strokes are almost all distance 1-2, where diffusion only has
  to continue its neighbours;
* **colour bias**: the mean signed error (fill - truth) x 100 per channel in the hole, over all pairs;
* **resolution**: the same network on the pair upsampled 2x (nearest for the mask), the fill downsampled
  back (area). If a 7x7 stride-2 first layer is what loses thin strokes, seeing them twice as wide helps;
* **where the bias lives**: the network's fill shifted by the mean error of its own output on the known
  pixels within 2 px of the hole. If that removes the bias, the network is off on the known side too;
* **the training masks**: the share of the engine's random training masks (``irregular_mask`` with the
  recipe's ``hole_ratio``) in each evaluation bucket, from 2,000 draws.

With ``--write`` the tables replace the section "## Small holes (issue 18)" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from inpaintlib import classical, masks  # noqa: E402
from results_md import replace_section  # noqa: E402
from inpaintlib.data import center_crop_pad, load_image, photo_dir  # noqa: E402
from inpaintlib.hub import resolve_checkpoint  # noqa: E402
from inpaintlib.inference import inpaint  # noqa: E402
from inpaintlib.pairs import list_images  # noqa: E402
from inpaintlib.rundir import load_model  # noqa: E402

SECTION = "## Small holes (issue 18)"
RINGS = [(1, 1), (2, 2), (3, 4), (5, 8), (9, 10**6)]
RING_NAMES = ["1", "2", "3-4", "5-8", "> 8"]
SMALL = "0.01-0.1"


def ring_errors(fill: torch.Tensor, truth: torch.Tensor, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of |error| (mean over channels) and pixel count per distance ring."""
    err = (fill - truth).abs().mean(0).numpy()
    sums, counts = np.zeros(len(RINGS)), np.zeros(len(RINGS))
    for k, (lo, hi) in enumerate(RINGS):
        sel = (distance >= lo) & (distance <= hi)
        sums[k], counts[k] = err[sel].sum(), sel.sum()
    return sums, counts


def twice_as_large(model: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The network on the pair upsampled 2x; the prediction brought back by 2x2 averaging, composited."""
    big = inpaint(model, F.interpolate(image[None], scale_factor=2, mode="bilinear", align_corners=False)[0].clamp(0, 1),
                  F.interpolate(mask[None], scale_factor=2, mode="nearest")[0])
    small = F.avg_pool2d(big[None], 2)[0]
    return mask * image + (1 - mask) * small


def ring_corrected(model: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor, width: int = 2) -> torch.Tensor:
    """The network's fill shifted by its own mean error on the known pixels within ``width`` px of the hole.

    The network predicts every pixel, known ones too; if its output is darker than the truth next to the
    hole, the same shift inside the hole is a fair guess. A diagnosis of where the bias lives, not a method.
    """
    with torch.no_grad():
        raw = model.eval()(image[None] * mask[None], mask[None])[0].clamp(0, 1)
    ring = (F.max_pool2d(1 - mask[None], 2 * width + 1, stride=1, padding=width)[0] > 0) & (mask > 0)  # (1, H, W)
    shift = (raw - image)[:, ring[0]].mean(1).view(3, 1, 1)
    return mask * image + (1 - mask) * (raw - shift).clamp(0, 1)


def training_mask_shares(size: int, hole_ratio: tuple[float, float], draws: int = 2000) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    counts: dict[str, int] = {}
    for _ in range(draws):
        label = masks.bucket_of(float(masks.hole_ratio(masks.irregular_mask(size, size, hole_ratio, generator=g))))
        counts[label] = counts.get(label, 0) + 1
    return {b: counts.get(b, 0) / draws for b in masks.bucket_order()}


def diagnose(checkpoint: str, images_dir: Path, size: int) -> dict:
    model = load_model(resolve_checkpoint(checkpoint))
    assign = masks.evaluation_assignment(size, per_image=len(masks.BUCKETS), seed=0)
    methods = {
        "network (plain)": lambda im, m: inpaint(model, im, m),
        "network on the 2x upsampled pair": lambda im, m: twice_as_large(model, im, m),
        "network, shifted by its error on the known 2-px ring": lambda im, m: ring_corrected(model, im, m),
        "Telea": classical.telea,
        "Navier-Stokes": classical.navier_stokes,
        "biharmonic": classical.biharmonic,
    }
    sums = {k: np.zeros(len(RINGS)) for k in methods}
    counts = np.zeros(len(RINGS))
    bias = {k: np.zeros(3) for k in methods}
    hole_pixels = 0
    _, files = list_images(images_dir, size, [])  # the order evaluate uses, so image i gets the same masks
    pairs = 0
    for i, path in enumerate(files):
        image = center_crop_pad(load_image(path), size)
        for name, mask in assign(i):
            if not name.startswith(SMALL):
                continue
            mask = mask.float()
            hole = (mask[0] == 0).numpy()
            distance = ndimage.distance_transform_cdt(hole, metric="chessboard")  # 1 = next to a known pixel
            pairs += 1
            hole_pixels += int(hole.sum())
            for key, method in methods.items():
                fill = method(image, mask)
                s, c = ring_errors(fill, image, distance)
                sums[key] += s
                bias[key] += ((fill - image)[:, torch.from_numpy(hole)]).sum(1).numpy()
            counts += c
        print(f"  {path.name}: {pairs} small-hole pairs so far", flush=True)
    return {
        "pairs": pairs,
        "ring_share": counts / counts.sum(),
        "rings": {k: 100 * s / np.maximum(counts, 1) for k, s in sums.items()},
        "overall": {k: 100 * s.sum() / counts.sum() for k, s in sums.items()},
        "bias": {k: 100 * b / hole_pixels for k, b in bias.items()},
        "training": training_mask_shares(size, (0.01, 0.6)),
        "checkpoint": checkpoint,
        "images": images_dir.resolve().relative_to(BENCH_DIR.parent) if images_dir.resolve().is_relative_to(BENCH_DIR.parent)
        else images_dir.name,
    }


def render(r: dict, size: int) -> str:
    lines = [
        SECTION,
        "",
        f"`{r['checkpoint']}` on {r['pairs']} pairs of the {SMALL} bucket ({r['images']}, {size} px, the evaluation "
        f"protocol's masks), measured {_dt.date.today().isoformat()}. Command: `python bench/small_holes.py --write`.",
        "",
        "**Mean |error| x 100 by distance (chessboard) from the nearest known pixel** (share of hole pixels in brackets):",
        "",
        "| method | " + " | ".join(f"{n} px ({100 * s:.0f} %)" for n, s in zip(RING_NAMES, r["ring_share"])) + " | all |",
        "|---|" + "---:|" * (len(RINGS) + 1),
    ]
    for key, row in r["rings"].items():
        lines.append(f"| {key} | " + " | ".join(f"{v:.2f}" for v in row) + f" | {r['overall'][key]:.2f} |")
    lines += ["", "**Mean signed error (fill - truth) x 100 in the hole**, per channel:", "",
              "| method | R | G | B |", "|---|---:|---:|---:|"]
    for key, b in r["bias"].items():
        lines.append(f"| {key} | " + " | ".join(f"{v:+.2f}" for v in b) + " |")
    lines += ["", "**Training masks** (`irregular_mask`, hole ratio drawn from 0.01-0.6, 2,000 draws): share per "
              "evaluation bucket: " + ", ".join(f"{b} {100 * s:.0f} %" for b, s in r["training"].items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="pconv", help="run directory, weights.pt or stored run name")
    p.add_argument("--images", default=None, help="photo folder (default: the embedded validation photos)")
    p.add_argument("--size", type=int, default=256, help="evaluation size (default 256)")
    p.add_argument("--write", action="store_true", help="replace the section in bench/RESULTS.md")
    args = p.parse_args(argv)
    images = Path(args.images) if args.images else photo_dir("val")
    result = diagnose(args.checkpoint, images, args.size)
    text = render(result, args.size)
    print(text)
    if args.write:
        replace_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
