"""Score stored runs on photos that are in no folder of this repository (named sets).

The stored runs' settings (steps, ensemble size) were chosen while looking at the validation photos
in data/photos/val, so their scores there are slightly optimistic. This script rebuilds an
independent set from Debian packages that data/ deliberately leaves out and evaluates runs on it
with the same protocol as their run cards. Two sets (``--set``):

- ``wallpapers`` (22 photos): the 12 photos of ``mate-backgrounds``
  (``usr/share/backgrounds/mate/nature/*.jpg``) and 10 photographic wallpapers of
  ``plasma-workspace-wallpapers`` (``PLASMA_PHOTOS``, the largest image of each; the package's other
  wallpapers are drawn, not photographed). These guided the design of ``pconv-fill-scale`` and
  ``ce-fill-scale``, so for those two runs they are a development set;
- ``stellarium`` (30 photos): the telescope photographs of ``stellarium-data``
  (``usr/share/stellarium/nebulae/default/*.png``) stored as 8-bit RGB and at least 1000 px on a
  side (the others are 512 px or palette images); galaxies, nebulae and star fields, credited one by
  one in that folder's ``textures.json``. Chosen by that rule alone and never used to choose anything.

Each photo is resized (Lanczos) to a short side of 512 px and saved as PNG; ``evaluate`` then takes
the centre 256 px (PConv, six fixed masks per photo, one per hole-ratio bucket) or 128 px (Context
Encoder, centre hole).

Needs ``apt-get download`` (a Debian/Ubuntu machine with its package lists; no root) unless the
.deb files are already in ``--work``. Example, from the repository root::

    .venv/bin/python bench/heldout_wallpapers.py --run data/runs/pconv --ensemble 8
    .venv/bin/python bench/heldout_wallpapers.py --set stellarium --run data/runs/pconv-fill-scale \\
        --classical telea,ns,biharmonic,cg-fill --store

Each evaluation is written to ``WORK/eval-<set>-<run>-ens<N>/`` (``--work``, default
``scratch/heldout``): summary.md and the rest, as ``python -m inpaintlib evaluate`` writes them; the
overall means are printed. ``--store`` then copies its tables (not the PNG figures) into the run's
``evaluation-<set>/`` folder.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MATE_DIR = Path("usr/share/backgrounds/mate/nature")
PLASMA_DIR = Path("usr/share/wallpapers")
PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip
NEBULAE_DIR = Path("usr/share/stellarium/nebulae/default")
NEBULA_MIN_SIDE = 1000
SHORT_SIDE = 512
STORED = ("metrics.csv", "summary.csv", "settings.json", "summary.md")


def _wallpapers(tree: Path) -> dict[str, Path]:
    """Output name -> source file, for the 22 wallpapers."""
    chosen = {f"mate-{p.stem}": p for p in sorted((tree / MATE_DIR).glob("*.jpg"))}
    for name in PLASMA_PHOTOS:
        images = sorted((tree / PLASMA_DIR / name / "contents" / "images").glob("*.*"))
        if not images:
            raise FileNotFoundError(f"wallpaper {name} not found under {tree / PLASMA_DIR}")
        chosen[name] = max(images, key=lambda p: _pixels(p))
    return chosen


def _nebulae(tree: Path) -> dict[str, Path]:
    """Output name -> source file, for the RGB telescope photographs of at least NEBULA_MIN_SIDE px."""
    chosen = {}
    for path in sorted((tree / NEBULAE_DIR).glob("*.png")):
        with Image.open(path) as im:
            if im.mode == "RGB" and min(im.size) >= NEBULA_MIN_SIDE:
                chosen[f"stellarium-{path.stem}"] = path
    if not chosen:
        raise FileNotFoundError(f"no photographs of {NEBULA_MIN_SIDE} px or more under {tree / NEBULAE_DIR}")
    return chosen


@dataclass(frozen=True)
class PhotoSet:
    packages: tuple[str, ...]
    folders: tuple[Path, ...]  # present once the packages are unpacked
    sources: Callable[[Path], dict[str, Path]]


SETS = {
    "wallpapers": PhotoSet(("mate-backgrounds", "plasma-workspace-wallpapers"), (MATE_DIR, PLASMA_DIR), _wallpapers),
    "stellarium": PhotoSet(("stellarium-data",), (NEBULAE_DIR,), _nebulae),
}


def unpack(work: Path, photo_set: PhotoSet) -> Path:
    """The set's packages' files under ``work/x`` (downloading the .deb files if they are missing)."""
    tree = work / "x"
    if all((tree / folder).is_dir() for folder in photo_set.folders):
        return tree
    work.mkdir(parents=True, exist_ok=True)
    for package in photo_set.packages:
        debs = list(work.glob(f"{package}_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", package], cwd=work, check=True)
            debs = list(work.glob(f"{package}_*.deb"))
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    return tree


def sources(tree: Path, photo_set: PhotoSet = SETS["wallpapers"]) -> dict[str, Path]:
    """Output name -> source file, for the photos of one set."""
    return photo_set.sources(tree)


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def build_set(tree: Path, out: Path, photo_set: PhotoSet = SETS["wallpapers"]) -> Path:
    """Each photo of the set resized to a short side of SHORT_SIDE px, as PNG in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, src in sources(tree, photo_set).items():
        target = out / f"{name}.png"
        if target.is_file():
            continue
        with Image.open(src) as im:
            im = im.convert("RGB")
            scale = SHORT_SIDE / min(im.size)
            im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.LANCZOS).save(target)
    return out


def store(out: Path, target: Path) -> None:
    """Copy the evaluation's tables (STORED) from ``out`` into ``target``, each file atomically."""
    from inpaintlib.rundir.write import atomic_write

    target.mkdir(exist_ok=True)
    for name in STORED:
        with open(out / name, "rb") as f:
            atomic_write(target / name, lambda dst, src=f: shutil.copyfileobj(src, dst))


def card_table(folder: Path, method: str) -> str:
    """The run cards' table for one evaluation folder: per bucket the run's mean PSNR and hole L1, the best
    of Telea, NS and biharmonic (bold where the run beats it), the per-pair lead with its standard error
    (``results.lead_margins``), SSIM against biharmonic and, where scored, the PSNR of ``cg-fill``."""
    from inpaintlib import results

    summary = results.read_summary(folder / "summary.csv")
    table = results.against_classical(summary, method)
    rows = results.read_metrics(folder / "metrics.csv")
    margins = {(m["bucket"], m["metric"]): m for m in results.lead_margins(rows, table, method)}
    cell = {(s["method"], s["bucket"]): s for s in summary}
    names = {"telea": "Telea", "ns": "NS", "biharmonic": "biharmonic"}

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | {' | '.join(cells)} |".replace("|  |", "| |")

    def bold(text: str, win: bool) -> str:
        return f"**{text}**" if win else text

    lines = [row("", [t["bucket"] for t in table]), "|---|" + "---:|" * len(table)]
    for metric, best, beats, label in (("psnr", "best_psnr", "beats_psnr", "PSNR"),
                                       ("l1_hole", "best_l1", "beats_l1", "hole L1")):  # fmt: skip
        lines.append(row(f"{label}, this run", [bold(f"{t[metric]:.2f}", t[beats]) for t in table]))
        lines.append(row(f"{label}, best classical", [f"{t[best][0]:.2f} ({names[t[best][1]]})" for t in table]))
        leads = [margins.get((t["bucket"], metric)) for t in table]
        lines.append(row("lead, per pair", [f"{m['mean']:+.2f} ± {m['se']:.2f}" if m else "" for m in leads]))
    pairs = [(cell[(method, t["bucket"])]["ssim"], cell[("biharmonic", t["bucket"])]["ssim"]) for t in table]
    lines.append(row("SSIM, this run / biharmonic", [f"{bold(f'{a:.4f}', a > b)} / {b:.4f}" for a, b in pairs]))
    if all(("cg-fill", t["bucket"]) in cell for t in table):
        lines.append(row("PSNR, `cg-fill`", [f"{cell[('cg-fill', t['bucket'])]['psnr']:.2f}" for t in table]))
    return "\n".join(lines)


def report(run: Path, name: str) -> str:
    """Markdown for one run's stored ``evaluation-<name>/``: the card table and ``results.describe_margins``."""
    from inpaintlib import results
    from inpaintlib.rundir import load_config

    folder, method = run / f"evaluation-{name}", load_config(run)["kind"]
    table = results.against_classical(results.read_summary(folder / "summary.csv"), method)
    margins = results.lead_margins(results.read_metrics(folder / "metrics.csv"), table, method)
    return f"{card_table(folder, method)}\n\n{results.describe_margins(margins, f'`{run.name}`')}\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="name", choices=sorted(SETS), default="wallpapers",
                   help="photo set (default wallpapers)")
    p.add_argument("--run", action="append", required=True, help="run directory to score (repeatable)")
    p.add_argument("--ensemble", type=int, default=1, help="as in `inpaintlib evaluate --ensemble` (default 1)")
    p.add_argument("--work", type=Path, default=Path("scratch/heldout"),
                   help="download/output folder (default scratch/heldout, which git ignores)")
    p.add_argument("--classical", default="telea,ns,biharmonic",
                   help="classical methods next to the run (default telea,ns,biharmonic; cg-fill adds the "
                        "PyTorch fill that the runs with --head-fill-iterations read)")
    p.add_argument("--store", action="store_true",
                   help="copy each evaluation's tables into RUN/evaluation-SET/ (replacing those files)")
    p.add_argument("--report", action="store_true",
                   help="only print, for each run, the card table of its stored evaluation-SET/ (no evaluation)")
    args = p.parse_args(argv)
    if args.report:
        for run in map(Path, args.run):
            print(f"{run.name}:\n\n{report(run, args.name)}")
        return 0

    from inpaintlib import evaluate, results
    from inpaintlib.rundir import load_config

    photo_set = SETS[args.name]
    photos = build_set(unpack(args.work, photo_set), args.work / f"set-{args.name}", photo_set)
    print(f"{len(list(photos.glob('*.png')))} photos in {photos}")
    for run in map(Path, args.run):
        kind = load_config(run)["kind"]
        out = args.work / f"eval-{args.name}-{run.name}-ens{args.ensemble}"
        size = ["--size", "128", "--center-masks"] if kind == "ce" else ["--size", "256"]
        status = evaluate.cli([
            "--checkpoint", str(run), "--images", str(photos), *size, "--methods", f"{kind},{args.classical}",
            "--ensemble", str(args.ensemble), "--out", str(out), "--overwrite", "--quiet",
        ])  # fmt: skip
        if status:
            return status
        if args.store:
            store(out, run / f"evaluation-{args.name}")
        for row in results.read_summary(out / "summary.csv"):
            if row["bucket"] == "all":
                print(f"{run.name:>10} {row['method']:>12}: PSNR {row['psnr']:.2f} dB, hole L1 {row['l1_hole']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
