"""Local artefacts in the hole, per pair: ``metrics.artefact_peaks`` over the evaluation protocol, plus 1:1 crops.

    python bench/artefact_peaks.py                       # pconv, pconv-fill-scale, biharmonic on the validation photos
    python bench/artefact_peaks.py --write               # also data/runs/pconv/evaluation/artefacts.csv and crops.png

The pairs are those of ``bench/artefacts.py`` and ``evaluate`` (the evaluation protocol's masks, 256 px, plain
inference). For each pair and method the script computes the worst 32 x 32 square's checkerboard and Laplacian
ratio (``artefact_peaks``); per bucket it prints their median and the share of pairs whose peak exceeds 2.
With ``--samples`` it scores the run's stored sample grids instead (``samples/step_*.png``, every
training step that kept one) and with ``--write`` stores ``artefacts_over_training.csv`` and ``.png``.
With ``--write`` it stores the per-pair peaks of the first run in ``<run>/evaluation/artefacts.csv`` and
``<run>/evaluation/crops.png``: truth | completion at 1:1 pixels (no scaling) around the worst square of the
pairs with the highest checkerboard peak and of a pair at the median, with the hole's outline.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from artefacts import completions  # noqa: E402  (the same pairs and methods)
from inpaintlib.data import photo_dir  # noqa: E402
from inpaintlib.hub import resolve_checkpoint  # noqa: E402
from inpaintlib.metrics import artefact_peaks, artefact_tiles  # noqa: E402
from inpaintlib.results import artefact_peak_table  # noqa: E402
from inpaintlib.rundir.write import atomic_write  # noqa: E402

KINDS = ("checkerboard", "laplacian")
TILE = 32


def measure(runs: list[str], images_dir: Path, size: int) -> tuple[list[dict], dict]:
    """Rows (file, mask, bucket, method, peaks) and, per run, the (image, completion, mask) of every pair."""
    rows, kept = [], {run: [] for run in runs}
    for pair, key, out in completions(runs, images_dir, size):
        peaks = artefact_peaks(out, pair.image, pair.mask, tile=TILE)
        rows.append({"file": pair.file, "mask": pair.mask_name, "bucket": pair.mask_name.split("#")[0],
                     "method": key} | {f"{k}_peak": float(peaks[k]) for k in KINDS})
        if key in kept:
            kept[key].append((rows[-1], pair.image, out.clamp(0, 1), pair.mask))
    return rows, kept


def summarise(rows: list[dict]) -> str:
    """Markdown tables: per method and bucket, the median peak over pairs (pairs above 2 in brackets)."""
    return "\n\n".join(f"**{kind} peak: median over pairs (pairs above 2)**\n\n" + artefact_peak_table(rows, kind)
                       for kind in KINDS) + "\n"


def crops_png(pairs: list[tuple], crop: int = 96, gap: int = 4) -> bytes:
    """Truth | completion around each pair's worst checkerboard square, 1:1 pixels, hole outlined in red."""
    from PIL import Image

    tiles = []
    for _, image, out, mask in pairs:
        comp = image * mask + out * (1 - mask)
        ratio = artefact_tiles(comp, image, mask, tile=TILE)["checkerboard"][0, 0]
        idx = int(torch.where(ratio.isnan(), torch.full_like(ratio, -1.0), ratio).flatten().argmax())
        cy, cx = (idx // ratio.shape[1]) * TILE + TILE // 2, (idx % ratio.shape[1]) * TILE + TILE // 2
        y0 = min(max(cy - crop // 2, 0), image.shape[1] - crop)
        x0 = min(max(cx - crop // 2, 0), image.shape[2] - crop)
        hole = mask[0] == 0
        edge = hole & ~torch.nn.functional.max_pool2d((~hole)[None, None].float(), 3, 1, 1)[0, 0].eq(0)
        pair = []
        for img in (image, comp):
            shown = img.clone()
            shown[:, edge] = torch.tensor([1.0, 0.0, 0.0])[:, None]
            pair.append(shown[:, y0:y0 + crop, x0:x0 + crop])
        tiles.append(torch.cat([pair[0], torch.ones(3, crop, gap), pair[1]], dim=2))
    sep = torch.ones(3, gap * 2, tiles[0].shape[2])
    grid = torch.cat([t for tile in tiles for t in (tile, sep)][:-1], dim=1)
    buf = io.BytesIO()
    Image.fromarray((grid.permute(1, 2, 0) * 255).round().byte().numpy()).save(buf, format="PNG")
    return buf.getvalue()


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write(run: str, kept: list[tuple], worst: int = 3) -> None:
    """``<run>/evaluation/artefacts.csv`` (per pair) and ``crops.png`` (the worst pairs, then a median one)."""
    out_dir = Path(resolve_checkpoint(run)) / "evaluation"
    data = _csv([row for row, *_ in kept]).encode()
    atomic_write(out_dir / "artefacts.csv", lambda f: f.write(data))
    scored = sorted((p for p in kept if p[0]["checkerboard_peak"] == p[0]["checkerboard_peak"]),
                    key=lambda p: -p[0]["checkerboard_peak"])
    chosen = scored[:worst] + [scored[len(scored) // 2]]
    png = crops_png(chosen)
    atomic_write(out_dir / "crops.png", lambda f: f.write(png))
    for p in chosen:
        print(f"  crop: {p[0]['file']} {p[0]['mask']} checkerboard peak {p[0]['checkerboard_peak']:.2f}")


def over_training(run: str) -> list[dict]:
    """Peaks per stored sample grid ``samples/step_*.png``: rows are validation photos at 256 px, columns
    masked input | composite | truth (lossless PNG), masks those ``train.report.sample_masks`` gave the run,
    checked against the white holes."""
    import numpy as np
    from PIL import Image

    from inpaintlib.plots import grid_tiles
    from inpaintlib.rundir import load_config
    from inpaintlib.train.config import config_from_dict
    from inpaintlib.train.report import sample_masks

    run_dir = Path(resolve_checkpoint(run))
    config = config_from_dict(load_config(run_dir))
    rows = []
    for path in sorted((run_dir / "samples").glob("step_*.png")):
        tiles = grid_tiles(np.asarray(Image.open(path).convert("RGB")))
        ms = sample_masks(config, len(tiles))
        for r, (masked, comp, truth) in enumerate(tiles):
            mask = ms[r].float()
            t = lambda a: torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255  # noqa: E731
            if not bool((t(masked)[:, mask[0] == 0] == 1).all()):
                raise ValueError(f"{path.name} row {r}: the holes are not where sample_masks puts them")
            peaks = artefact_peaks(t(comp), t(truth), mask, tile=TILE)
            rows.append({"step": int(path.stem.split("_")[1]), "row": r, "hole": float(1 - mask.mean())}
                        | {f"{k}_peak": float(peaks[k]) for k in KINDS})
    return rows


def plot_over_training(rows: list[dict]) -> bytes:
    """The checkerboard and Laplacian peak of every sample row against the training step (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharex=True)
    for ax, kind in zip(axes, KINDS):
        for r in sorted({x["row"] for x in rows}):
            pts = [(x["step"], x[f"{kind}_peak"]) for x in rows if x["row"] == r and x[f"{kind}_peak"] == x[f"{kind}_peak"]]
            if pts:
                hole = next(x["hole"] for x in rows if x["row"] == r)
                ax.plot(*zip(*pts), marker="o", ms=3, label=f"row {r} (hole {hole:.0%})")
        ax.axhline(1, color="grey", lw=0.8)
        ax.axhline(2, color="grey", lw=0.8, ls="--")
        ax.set(yscale="log", xlabel="training step", title=f"{kind} peak (worst 32 px square)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="pconv,pconv-fill-scale", help="comma list of runs or stored names")
    p.add_argument("--images", default=None, help="photo folder (default: the embedded validation photos)")
    p.add_argument("--size", type=int, default=256, help="evaluation size (default 256)")
    p.add_argument("--write", action="store_true", help="write the first run's artefacts.csv and crops.png")
    p.add_argument("--samples", action="store_true", help="peaks of the first run's samples/step_*.png instead")
    args = p.parse_args(argv)
    runs = [r for r in args.runs.split(",") if r]
    if args.samples:
        rows = over_training(runs[0])
        for x in rows:
            print(f"  step {x['step']:6d} row {x['row']} hole {x['hole']:.2f} " +
                  " ".join(f"{k} {x[k + '_peak']:.2f}" for k in KINDS))
        if args.write:
            out = Path(resolve_checkpoint(runs[0])) / "evaluation"
            png, text = plot_over_training(rows), _csv(rows).encode()
            atomic_write(out / "artefacts_over_training.png", lambda f: f.write(png))
            atomic_write(out / "artefacts_over_training.csv", lambda f: f.write(text))
        return 0
    torch.manual_seed(0)
    rows, kept = measure(runs, Path(args.images) if args.images else photo_dir("val"), args.size)
    print(summarise(rows))
    if args.write:
        write(runs[0], kept[runs[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
