"""Score stored runs on 22 photos that are in no folder of this repository.

The stored runs' settings (steps, ensemble size) were chosen while looking at the validation photos
in data/photos/val, so their scores there are slightly optimistic. This script rebuilds an
independent set from two Debian packages that data/ deliberately leaves out and evaluates runs on it
with the same protocol as their run cards:

- the 12 photos of ``mate-backgrounds`` (``usr/share/backgrounds/mate/nature/*.jpg``);
- 10 photographic wallpapers of ``plasma-workspace-wallpapers`` (``PLASMA_PHOTOS``, the largest
  image of each; the package's other wallpapers are drawn, not photographed);
- each resized (Lanczos) to a short side of 512 px and saved as PNG; ``evaluate`` then takes the
  centre 256 px (PConv, six fixed masks per photo, one per hole-ratio bucket) or 128 px (Context
  Encoder, centre hole).

Needs ``apt-get download`` (a Debian/Ubuntu machine with its package lists; no root) unless the two
.deb files are already in ``--work``. Example, from the repository root::

    .venv/bin/python bench/heldout_wallpapers.py --run data/runs/pconv-fill-scale
    .venv/bin/python bench/heldout_wallpapers.py --run data/runs/ce --ensemble 8

Each evaluation is written to ``WORK/eval-<run>-ens<N>/`` (``--work``, default ``scratch/heldout``):
summary.md and the rest, as ``python -m inpaintlib evaluate`` writes them; the overall means are printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from PIL import Image

PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers")
MATE_DIR = Path("usr/share/backgrounds/mate/nature")
PLASMA_DIR = Path("usr/share/wallpapers")
PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip
SHORT_SIDE = 512


def unpack(work: Path) -> Path:
    """The two packages' files under ``work/x`` (downloading the .deb files if they are missing)."""
    tree = work / "x"
    if (tree / MATE_DIR).is_dir() and (tree / PLASMA_DIR).is_dir():
        return tree
    work.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        if not list(work.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=work, check=True)
    for deb in sorted(work.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    return tree


def sources(tree: Path) -> dict[str, Path]:
    """Output name -> source file, for the 22 photos."""
    chosen = {f"mate-{p.stem}": p for p in sorted((tree / MATE_DIR).glob("*.jpg"))}
    for name in PLASMA_PHOTOS:
        images = sorted((tree / PLASMA_DIR / name / "contents" / "images").glob("*.*"))
        if not images:
            raise FileNotFoundError(f"wallpaper {name} not found under {tree / PLASMA_DIR}")
        chosen[name] = max(images, key=lambda p: _pixels(p))
    return chosen


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def build_set(tree: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, src in sources(tree).items():
        target = out / f"{name}.png"
        if target.is_file():
            continue
        with Image.open(src) as im:
            im = im.convert("RGB")
            scale = SHORT_SIDE / min(im.size)
            im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.LANCZOS).save(target)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, help="run directory to score (repeatable)")
    p.add_argument("--ensemble", type=int, default=1, help="as in `inpaintlib evaluate --ensemble` (default 1)")
    p.add_argument("--work", type=Path, default=Path("scratch/heldout"),
                   help="download/output folder (default scratch/heldout, which git ignores)")
    p.add_argument("--classical", default="telea,ns,biharmonic",
                   help="classical methods next to the run (default telea,ns,biharmonic; cg-fill adds the "
                        "PyTorch fill that the runs with --head-fill-iterations read)")
    args = p.parse_args(argv)

    from inpaintlib import evaluate, results
    from inpaintlib.rundir import load_config

    photos = build_set(unpack(args.work), args.work / "set")
    print(f"{len(list(photos.glob('*.png')))} photos in {photos}")
    for run in map(Path, args.run):
        kind = load_config(run)["kind"]
        out = args.work / f"eval-{run.name}-ens{args.ensemble}"
        size = ["--size", "128", "--center-masks"] if kind == "ce" else ["--size", "256"]
        status = evaluate.cli([
            "--checkpoint", str(run), "--images", str(photos), *size, "--methods", f"{kind},{args.classical}",
            "--ensemble", str(args.ensemble), "--out", str(out), "--quiet",
        ])  # fmt: skip
        if status:
            return status
        for row in results.read_summary(out / "summary.csv"):
            if row["bucket"] == "all":
                print(f"{run.name:>10} {row['method']:>12}: PSNR {row['psnr']:.2f} dB, hole L1 {row['l1_hole']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
