"""Score inpainting methods on the same image/mask pairs, by hole-ratio bucket.

The question this module answers for the book: are the networks of report §3.1 (Context Encoder) and
§3.2 (PConv U-Net) worth it next to classical inpainting? Every method -- ours and the classical ones in
:mod:`inpaintlib.classical`, behind the interface of :mod:`inpaintlib.inpainters` -- receives x_in = M * x
(hole blanked) and is scored on the **composite**: known pixels kept, the method's prediction in the hole
only (report §3.2.2, x_comp). Scores are grouped by the fraction of hole pixels, in the buckets
0.01-0.1 ... 0.5-0.6 that Liu et al. [4] use for their evaluation.

Metrics (:mod:`inpaintlib.metrics`, the same functions training's ``metrics.json`` uses): PSNR in dB
(clamped to 100 dB), SSIM, L1 over the hole x100, and LPIPS when its AlexNet weights are cached (``--lpips``
downloads them); FID is not computed (it needs thousands of images and Inception weights). The pairs come from :mod:`inpaintlib.pairs`; the tables and their files from
:mod:`inpaintlib.results`; the figures from :mod:`inpaintlib.plots`.

Command line::

    python -m inpaintlib evaluate --checkpoint data/runs/pconv --images data/photos/val --out eval/
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from inpaintlib import inference, masks
from inpaintlib.cliname import program
from inpaintlib.device import resolve_device
from inpaintlib.errors import exits_cleanly
from inpaintlib.hub import resolve_checkpoint
from inpaintlib.images import pixel_limit
from inpaintlib.inpainters import CLASSICAL_METHODS, METHOD_NAMES, Method, load_checkpoint, model_method, resolve_methods
from inpaintlib.masks import composite
from inpaintlib.metrics import lpips_available, lpips_scorer, score_batch, torch_threads
from inpaintlib.pairs import Example, ExamplePicker, Pair, center_hole_size, large_hole_notes, list_images, pairs
from inpaintlib.plots import plot_method_comparison, plot_metric_by_bucket
from inpaintlib.results import EVALUATION_MARKER, OUTPUT_NAMES, check_output_folder, claimed_output_folder, summarize
from inpaintlib.results import summary_markdown, write_metrics_csv, write_summary
from inpaintlib.rundir import atomic_write, check_apart, staged_files, write_text

__all__ = ["Example", "Evaluation", "evaluate", "write_outputs", "cli"]


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    ``rows``: one dict per image x mask x method (``results.ROW_FIELDS``, plus "lpips" when available);
    ``summary``: means per method x bucket and per method over "all" (see ``results.summarize``);
    ``skipped``: (name, reason) for every image or mask left out; ``notes``: metrics skipped and why;
    ``examples``: pairs kept for the example grid; ``files``: the outputs written, by kind.
    """

    rows: list[dict]
    summary: list[dict]
    skipped: list[tuple[str, str]]
    notes: list[str]
    examples: list[Example]
    methods: list[str]
    files: dict[str, Path] = field(default_factory=dict)

    def __iter__(self) -> Iterator[list[dict]]:
        """``rows, summary = evaluate(...)`` unpacks the two tables."""
        return iter((self.rows, self.summary))


def _metric_notes(lpips: bool | None, device: str | torch.device, ensemble: int) -> tuple[list[str], Callable | None]:
    """The notes on metrics left out (or how models were run) and the LPIPS scorer when it is used."""
    ok, note = lpips_available(download=lpips)
    if lpips is None:
        lpips = ok
    if lpips and not ok:
        raise ValueError(note)
    notes = [note, "FID skipped: it needs thousands of images and Inception weights, neither available here"]
    if ensemble > 1:
        notes.append(f"pconv / ce: predictions averaged over {ensemble} mirrored copies of each input "
                     "(test-time self-ensemble, inference.inpaint(ensemble=...))")
    return notes, (lpips_scorer(device) if lpips else None)


def _refusals(method_list: Sequence[Method], image: torch.Tensor, mask: torch.Tensor,
              raise_first: bool = False) -> list[str]:
    """``"name: reason"`` for every method whose check refuses the pair (or the first error, raised)."""
    refused = []
    for m in method_list:
        if m.check is not None:
            try:
                m.check(image, mask)
            except ValueError as err:
                if raise_first:
                    raise
                refused.append(f"{m.name}: {err}")
    return refused


def _score_pair(pair: Pair, method_list: Sequence[Method], lpips_fn: Callable | None,
                bar: tqdm | None) -> tuple[list[dict], list[torch.Tensor]]:
    """Run every method on one pair; the rows (one per method) and the composites."""
    ratio = float(masks.hole_ratio(pair.mask))
    bucket = masks.bucket_of(ratio)
    # Methods get x_in = M * x (report §3.2.2): the hole is blanked, so a method that reads the
    # ground truth there by mistake cannot score with it.
    masked = pair.image * pair.mask
    comps, seconds = [], []
    for m in method_list:
        if bar is not None:
            bar.set_postfix_str(m.name)
        start = time.perf_counter()
        out = m.fn(masked, pair.mask).detach().float().cpu()  # the copy to CPU also waits for a GPU to finish
        seconds.append(time.perf_counter() - start)
        if out.shape != pair.image.shape:
            raise ValueError(f"method {m.name} returned shape {tuple(out.shape)}, expected {tuple(pair.image.shape)}")
        comps.append(out)
    with torch_threads(1):  # see metrics.score_batch
        comps = [composite(out.clamp(0, 1), pair.image, pair.mask) for out in comps]
        scores = score_batch(torch.stack(comps), pair.image, pair.mask)  # all methods in one batch
    rows = []
    for k, m in enumerate(method_list):
        row = {"file": pair.file, "mask": pair.mask_name, "hole_ratio": ratio, "bucket": bucket,
               "method": m.name, **{key: float(v[k]) for key, v in scores.items()}, "seconds": seconds[k]}
        if lpips_fn is not None:
            row["lpips"] = lpips_fn(comps[k], pair.image)
        rows.append(row)
    return rows, comps


def _score_all(todo: Iterator[Pair | None], method_list: Sequence[Method], lpips_fn: Callable | None,
               picker: ExamplePicker, skipped: list[tuple[str, str]], bar: tqdm | None, per_file: int) -> list[dict]:
    """Score every pair (refused ones go to ``skipped``), offering each to the example picker."""
    rows: list[dict] = []
    for pair in todo:
        if pair is None or (refused := _refusals(method_list, pair.image, pair.mask)):
            if pair is not None:
                skipped.append((f"{pair.file} + {pair.mask_name}", "; ".join(refused)))
            if bar is not None:  # a skipped image stands for all its pairs
                bar.update(per_file if pair is None else 1)
            continue
        pair_rows, comps = _score_pair(pair, method_list, lpips_fn, bar)
        rows += pair_rows
        example = picker.offer(pair, pair_rows[0]["bucket"])
        if example is not None:
            example.outputs.update({m.name: c for m, c in zip(method_list, comps)})
            picker.keep(example)
        if bar is not None:
            bar.update(1)
    return rows


def _check_settings(size: int, limit: int | None, masks_dir: str | Path | None, center_masks: bool,
                    masks_per_image: int | None) -> int:
    """Raise ValueError for bad settings; return the number of masks per image."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if size * size > pixel_limit():
        raise ValueError(f"size {size} makes {size * size / 1e6:.0f}-megapixel pairs, over the limit of "
                         f"{pixel_limit() / 1e6:g} megapixels (INPAINTLIB_MAX_PIXELS); evaluate at e.g. 256 or 512")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    if masks_dir is not None and center_masks:
        raise ValueError("give either masks_dir or center_masks=True, not both")
    per_image = len(masks.BUCKETS) if masks_per_image is None else int(masks_per_image)
    if per_image < 1:
        raise ValueError(f"masks_per_image must be at least 1, got {masks_per_image}")
    return per_image


def evaluate(
    images_dir: str | Path,
    methods: Sequence[str | Method] | Mapping[str, Callable] | str,
    masks_dir: str | Path | None = None,
    size: int = 256,
    out_dir: str | Path | None = None,
    invert_masks: bool = False,
    progress: bool = True,
    limit: int | None = None,
    *,
    checkpoint: str | Path | torch.nn.Module | None = None,
    device: str | torch.device = "cpu",
    center_masks: bool = False,
    masks_per_image: int | None = None,
    seed: int = 0,
    examples_per_bucket: int = 1,
    lpips: bool | None = None,
    ensemble: int = 1,
    overwrite: bool = False,
) -> Evaluation:
    """Run every method on the same image/mask pairs and score the composites by hole-ratio bucket.

    Images (found recursively and sorted as ``data.PhotoFolder`` does; the first ``limit`` when given) are
    centre-cropped to ``size``, mirror-padded when smaller. Masks (:mod:`inpaintlib.pairs`): with
    ``masks_dir``, the PNG with the image's file stem (255 = valid, 0 = hole, or the other way round with
    ``invert_masks``), at the image's own size and cropped with it; with ``center_masks``, the report's
    centre square scaled to ``size`` (56 px at 128, §4.1); otherwise the fixed set
    :func:`masks.evaluation_masks`, cycled deterministically so that image i gets ``masks_per_image`` masks
    from different buckets (default: one from each bucket). Bad images/masks are skipped by name. Methods
    receive x_in = M * x (hole blanked, report §3.2.2) and are timed per call; ``examples_per_bucket``
    pairs per bucket (from different photos when possible) keep their completions for the example grid.

    ``methods`` are names for ``inpainters.get_method`` (a comma string works too), ``inpainters.Method``
    objects, or a mapping name -> callable; ``ensemble`` (1, 2, 4, 8) averages the models' predictions over
    that many mirrored copies of the input (``inference.inpaint``). ``lpips=None`` adds LPIPS when its
    weights are cached locally. When ``out_dir`` is given, :func:`write_outputs` writes the tables, the
    figures and the settings there; a folder that already holds files is refused unless ``overwrite``.
    Pairs whose hole is beyond the training range (over 60 %, often an inverted mask) are listed in the notes.
    """
    size = int(size)
    per_image = _check_settings(size, limit, masks_dir, center_masks, masks_per_image)
    run = functools.partial(_evaluate, images_dir, methods, masks_dir, size, invert_masks, progress, limit, checkpoint,
                            device, center_masks, per_image, seed, examples_per_bucket, lpips, ensemble)
    if out_dir is None:
        return run()
    check_apart(out_dir, {"--images": images_dir, "--masks": masks_dir})  # an output never becomes an input
    with claimed_output_folder(out_dir, overwrite):  # held from this check to the last write
        result = run()
        settings = {
            "images": str(images_dir), "size": size, "masks": None if masks_dir is None else str(masks_dir),
            "invert_masks": invert_masks, "center_masks": center_masks, "masks_per_image": per_image,
            "seed": seed, "limit": limit, "ensemble": ensemble, "methods": result.methods,
        }  # fmt: skip
        write_outputs(result, out_dir, settings)
    return result


def _evaluate(images_dir, methods, masks_dir, size, invert_masks, progress, limit, checkpoint, device, center_masks,
              per_image, seed, examples_per_bucket, lpips, ensemble) -> Evaluation:
    """:func:`evaluate` once its settings are checked and its output folder (if any) is held."""
    skipped: list[tuple[str, str]] = []
    root, files = list_images(images_dir, size, skipped)
    files = files[: None if limit is None else int(limit)]
    mdir = None if masks_dir is None else Path(masks_dir)
    if mdir is not None and not mdir.is_dir():
        raise FileNotFoundError(f"mask folder {mdir} does not exist or is not a folder")
    inference.check_ensemble(ensemble)
    method_list = resolve_methods(methods, checkpoint, device, ensemble)
    notes, lpips_fn = _metric_notes(lpips, device, ensemble)
    if mdir is None:  # masks known up front: refuse incompatible methods before any work
        probe = (masks.center_mask(image_size=size, hole_size=center_hole_size(size)) if center_masks
                 else masks.evaluation_masks(size, seed=seed)[0][1])
        _refusals(method_list, torch.full((3, size, size), 0.5), probe.float(), raise_first=True)
    picker = ExamplePicker(examples_per_bucket)
    per_file = 1 if (mdir is not None or center_masks) else per_image
    bar = tqdm(total=len(files) * per_file, desc="evaluate", unit="pair") if progress else None
    with bar if bar is not None else contextlib.nullcontext():
        todo = pairs(root, files, size, mdir, center_masks, invert_masks, per_image, seed, skipped)
        rows = _score_all(todo, method_list, lpips_fn, picker, skipped, bar, per_file)
    if not rows:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped[:5]) or "none"
        raise ValueError(f"no valid image/mask pairs in {images_dir} (first reasons: {reasons})")
    notes += large_hole_notes(rows)
    return Evaluation(rows, summarize(rows), skipped, notes, picker.chosen(), [m.name for m in method_list])


def _save(fig: plt.Figure, path: Path, dpi: int) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)  # written to a file, not shown: keep it out of a notebook's output
    atomic_write(path, lambda f: f.write(buf.getbuffer()))
    return path


def write_outputs(result: Evaluation, out_dir: str | Path, settings: Mapping) -> dict[str, Path]:
    """Write an evaluation to ``out_dir`` and record the files in ``result.files``: metrics.csv,
    summary.csv and summary.md (``results.write_metrics_csv`` / ``write_summary``), settings.json,
    metrics_by_hole_ratio.png (PSNR and SSIM per bucket) and examples.png (the example grid).

    All or nothing (:func:`inpaintlib.rundir.staged_files`): the files are written aside and renamed into
    place together, so a full disk leaves an earlier evaluation's files exactly as they were; files of
    :data:`results.OUTPUT_NAMES` the new evaluation does not write are then removed (no stale figure)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with staged_files(out) as stage:
        names = {"metrics": "metrics.csv", "settings": "settings.json", "summary_csv": "summary.csv",
                 "summary_md": "summary.md", "plot": "metrics_by_hole_ratio.png"}
        write_metrics_csv(result.rows, stage / names["metrics"])
        write_text(stage / names["settings"], json.dumps(dict(settings), indent=2) + "\n")
        write_summary(result.summary, stage / names["summary_csv"], stage / names["summary_md"],
                      notes=result.notes, skipped=result.skipped)
        fig = plot_metric_by_bucket(result.summary, ("psnr", "ssim"),
                                    title="Quality against hole size (composites; higher is better)")
        _save(fig, stage / names["plot"], dpi=110)
        if result.examples:
            names["examples"] = "examples.png"
            _save(_example_figure(result), stage / names["examples"], dpi=100)
    for stale in set(OUTPUT_NAMES) - set(names.values()):
        (out / stale).unlink(missing_ok=True)
    write_text(out / EVALUATION_MARKER, "written by python -m inpaintlib evaluate; photos are never read from here\n")
    result.files.update({kind: out / name for kind, name in names.items()})
    return result.files


def _wrapped(stem: str, width: int = 14, lines: int = 3) -> str:
    """A photo's name over at most ``lines`` lines of ``width`` characters (broken at hyphens), so a row label
    of the example grid is never cut short; a longer name ends in an ellipsis."""
    parts = textwrap.wrap(stem, width, break_on_hyphens=True)
    if len(parts) > lines:
        parts = parts[: lines - 1] + [parts[lines - 1] + "…"]
    return "\n".join(parts)


def _example_figure(result: Evaluation) -> plt.Figure:
    ex = result.examples
    stems = [Path(e.file).stem for e in ex]
    labels = [f"{_wrapped(s)}\nhole {e.bucket}" for s, e in zip(stems, ex)]
    return plot_method_comparison(torch.stack([e.image for e in ex]), torch.stack([e.mask for e in ex]),
                                  {m: torch.stack([e.outputs[m] for e in ex]) for m in result.methods},
                                  row_labels=labels, size=1.4)


# ------------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{program()} evaluate",
        description="Score a trained model next to classical inpainting on the same image/mask pairs, "
        "by hole-ratio bucket; writes metrics.csv, summary.csv, summary.md and two PNG figures.",
    )
    p.add_argument("--checkpoint", help="run directory, weights file or stored run name such as pconv-fill-scale "
                   "(needed for the pconv and ce methods)")
    p.add_argument("--images", required=True, help="folder of photos (centre-cropped to --size)")
    p.add_argument("--masks", help="folder of mask PNGs named like the images (255 = valid, 0 = hole); "
                   "default: the library's fixed bucketed masks")
    p.add_argument("--invert-masks", action="store_true", help="mask PNGs use 255 = hole, 0 = valid")
    p.add_argument("--center-masks", action="store_true",
                   help="use the report's centre square hole (56 px at 128 px) instead; needed for ce")
    p.add_argument("--size", type=int, default=256, help="evaluation size in pixels (default 256)")
    p.add_argument("--methods", default=None,
                   help="comma-separated, from " + ",".join(METHOD_NAMES) + " (default: the checkpoint's model "
                   "if one is given, plus telea,ns,biharmonic,mean)")
    p.add_argument("--masks-per-image", type=int, default=None,
                   help="fixed mask set: masks per image, each from another bucket (default: one per bucket)")
    p.add_argument("--examples-per-bucket", type=int, default=1, help="rows per bucket in examples.png")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="write into an --out folder that already holds files")
    p.add_argument("--device", default="auto", help="device for model methods: auto (default), cpu, cuda or mps")
    p.add_argument("--lpips", action="store_true", help="add LPIPS (AlexNet); downloads its weights into TORCH_HOME "
                   "when they are not cached (offline: pre-fill TORCH_HOME)")
    p.add_argument("--ensemble", type=int, default=1, choices=inference.ENSEMBLE_SIZES,
                   help="model methods: average the predictions for 1 (default), 2, 4 or 8 mirrored copies of the input")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


@exits_cleanly
def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m inpaintlib evaluate ...``; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    check_apart(args.out, {"--images": args.images, "--masks": args.masks})  # before any work
    if not args.overwrite:
        check_output_folder(args.out)
    args.checkpoint, args.device = resolve_checkpoint(args.checkpoint), str(resolve_device(args.device))
    if args.methods is None:
        names = list(CLASSICAL_METHODS)
        if args.checkpoint is not None:
            model = load_checkpoint(args.checkpoint, args.device)
            methods: list[str | Method] = [model_method(model, device=args.device, ensemble=args.ensemble), *names]
        else:
            methods = names
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the large-hole warning is printed as a note below
        result = evaluate(
            args.images, methods, masks_dir=args.masks, size=args.size, out_dir=args.out,
            invert_masks=args.invert_masks, progress=not args.quiet, limit=args.limit,
            checkpoint=args.checkpoint, device=args.device, center_masks=args.center_masks,
            masks_per_image=args.masks_per_image, examples_per_bucket=args.examples_per_bucket,
            ensemble=args.ensemble, lpips=True if args.lpips else None, overwrite=args.overwrite,
        )
    print(summary_markdown(result.summary))
    for name, reason in result.skipped:
        print(f"skipped {name}: {reason}")
    for note in result.notes:
        print(f"note: {note}")
    for path in result.files.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
