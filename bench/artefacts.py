"""Blur and checkerboard in the hole, per hole-ratio bucket: ``metrics.artefact_ratios`` over the evaluation protocol.

    python bench/artefacts.py                                   # the stored PConv runs on the validation photos
    python bench/artefacts.py --runs pconv --images DIR --write

Every validation photo gets the evaluation protocol's masks (``masks.evaluation_assignment``, 256 px, the
masks ``evaluate`` and ``metrics.json`` use). Each run (plain inference) and biharmonic interpolation fill
every hole; for each bucket the script prints the geometric mean over pairs of

* the **Laplacian ratio**: the completion's 3x3-Laplacian energy in the hole over the ground truth's
  (1 = as much fine detail as the photo; below 1 blur, above 1 noise, block edges or checkerboard);
* the **checkerboard ratio**: the same at the highest spatial frequency in both axes (2x2 kernel), where the
  stride-2 artefacts of a U-Net sit.

It is a diagnosis of artefacts, not a quality score: a fill can read 1 and still be wrong.
With ``--write`` the tables replace the section "## Artefacts in the hole (issue 26)" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from inpaintlib import classical, masks  # noqa: E402
from inpaintlib.data import photo_dir  # noqa: E402
from inpaintlib.hub import resolve_checkpoint  # noqa: E402
from inpaintlib.inpainters import model_method  # noqa: E402
from inpaintlib.metrics import artefact_ratios  # noqa: E402
from inpaintlib.pairs import Pair, list_images, pairs  # noqa: E402
from inpaintlib.rundir import load_model  # noqa: E402
from results_md import replace_section  # noqa: E402

SECTION = "## Artefacts in the hole (issue 26)"
KINDS = ("laplacian", "checkerboard")


def completions(runs: list[str], images_dir: Path, size: int) -> Iterator[tuple[Pair, str, torch.Tensor]]:
    """``(pair, method, completion)`` for every evaluation pair of ``images_dir`` (the protocol ``evaluate`` and
    ``metrics.json`` use: the same photos, order and masks) and every method: each run, plain, then biharmonic."""
    methods = {run: model_method(load_model(resolve_checkpoint(run))) for run in runs}
    methods["biharmonic"] = classical.biharmonic
    root, files = list_images(images_dir, size, [])
    last = None
    for pair in pairs(root, files, size, None, False, False, len(masks.BUCKETS), 0, []):
        if pair is None:
            continue
        if pair.file != last:
            print(f"  {pair.file}", flush=True)
            last = pair.file
        for key, method in methods.items():
            yield pair, key, method(pair.image, pair.mask)


def measure(runs: list[str], images_dir: Path, size: int) -> dict[str, dict[str, dict[str, float]]]:
    """method -> bucket -> kind -> geometric mean of the ratio over the bucket's pairs (and "pairs")."""
    logs: dict[str, dict[str, dict[str, list[float]]]] = {}
    for pair, key, out in completions(runs, images_dir, size):
        ratios = artefact_ratios(out, pair.image, pair.mask)
        slot = logs.setdefault(key, {}).setdefault(pair.mask_name.split("#")[0], {k: [] for k in KINDS})
        for k in KINDS:
            slot[k].append(math.log(float(ratios[k])))
    return {key: {b: {k: math.exp(sum(v) / len(v)) for k, v in kinds.items()} | {"pairs": len(kinds[KINDS[0]])}
                  for b, kinds in sorted(per.items(), key=lambda kv: masks.bucket_sort_key(kv[0]))}
            for key, per in logs.items()}


def render(result: dict, images: str, size: int) -> str:
    buckets = list(next(iter(result.values())).keys())
    pairs = sum(next(iter(result.values()))[b]["pairs"] for b in buckets)
    lines = [SECTION, "",
             f"Geometric mean over pairs of the completion's high-frequency energy in the hole over the ground "
             f"truth's ({pairs} pairs: {images}, {size} px, the evaluation protocol's masks, plain inference), "
             f"measured {_dt.date.today().isoformat()}. 1 = as much detail as the photo; below 1 blur, above 1 "
             f"noise or checkerboard. Command: `python bench/artefacts.py --write`.", ""]
    for kind in KINDS:
        lines += [f"**{kind.capitalize()} ratio**", "", "| method | " + " | ".join(buckets) + " |",
                  "|---|" + "---:|" * len(buckets)]
        for key, per in result.items():
            lines.append(f"| {key} | " + " | ".join(f"{per[b][kind]:.2f}" for b in buckets) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="pconv,pconv-fill-scale", help="comma list of runs or stored names")
    p.add_argument("--images", default=None, help="photo folder (default: the embedded validation photos)")
    p.add_argument("--size", type=int, default=256, help="evaluation size (default 256)")
    p.add_argument("--write", action="store_true", help="replace the section in bench/RESULTS.md")
    args = p.parse_args(argv)
    images = Path(args.images) if args.images else photo_dir("val")
    torch.manual_seed(0)
    shown = images.resolve().relative_to(BENCH_DIR.parent) if images.resolve().is_relative_to(BENCH_DIR.parent) else images.name
    text = render(measure([r for r in args.runs.split(",") if r], images, args.size), str(shown), args.size)
    print(text)
    if args.write:
        replace_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
