"""Score inpainting methods on the same image/mask pairs, by hole-ratio bucket.

The question this module answers for the book: are the networks of report §3.1 (Context Encoder) and
§3.2 (PConv U-Net) worth it next to classical inpainting? Every method -- ours and the classical ones in
:mod:`inpaintlib.classical` -- is a callable ``method(image, mask) -> completed`` (image (3, H, W) in [0, 1],
mask (1, H, W) with 1 = valid, 0 = hole, report §3) and is scored on the **composite**: known pixels kept,
the method's prediction in the hole only (report §3.2.2, x_comp). Scores are grouped by the fraction of
hole pixels, in the buckets 0.01-0.1 ... 0.5-0.6 that Liu et al. [4] use for their evaluation.

Metrics (images in [0, 1]):

* PSNR in dB with data range 1: 10 log10(1 / MSE) over all pixels and channels. Two identical images have
  MSE 0 and an infinite PSNR; this module clamps it to :data:`PSNR_MAX_DB` = 100 dB so that means over a
  set stay finite (100 dB is an MSE of 1e-10, far below 8-bit quantisation noise, ~59 dB).
* SSIM: torchmetrics' structural similarity map with an 11x11 Gaussian window, sigma 1.5, data range 1,
  averaged without the 5-pixel border (as scikit-image and Wang et al.'s reference code do).
* L1 over the hole: mean |completed - target| over hole pixels and channels, times 100.
* LPIPS only when the AlexNet backbone weights are already in the local torch hub cache; otherwise it is
  left out and a note says so. FID is not computed: it needs thousands of images and Inception weights.

Masks come either from the library's fixed bucketed set (:func:`inpaintlib.masks.evaluation_masks`), from
the report's centre square (§4.1, for the Context Encoder), or from a folder of mask PNGs paired with the
images by file stem. Bad masks are skipped *by name* with the reason, never resized or repaired.

Command line::

    python -m inpaintlib evaluate --checkpoint data/runs/pconv --images data/photos/val --out eval/
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inpaintlib import classical, data, inference, masks
from inpaintlib.cliname import program
from inpaintlib.device import resolve_device
from inpaintlib.hub import resolve_checkpoint
from inpaintlib.masks import composite
from inpaintlib.metrics import METRICS, PSNR_MAX_DB, l1_hole, lpips_available, psnr, score, ssim, torch_threads
from inpaintlib.metrics import lpips_scorer as _lpips_scorer
from inpaintlib.metrics import score_batch as _score_stack
from inpaintlib.data import center_crop_pad  # re-exported: the crop every method is scored on

__all__ = [
    "PSNR_MAX_DB",
    "METHOD_NAMES",
    "CLASSICAL_METHODS",
    "MODEL_METHODS",
    "LABELS",
    "ROW_FIELDS",
    "Method",
    "Example",
    "Evaluation",
    "psnr",
    "ssim",
    "l1_hole",
    "score",
    "lpips_available",
    "composite",
    "center_crop_pad",
    "get_method",
    "model_method",
    "evaluate",
    "summarize",
    "read_summary",
    "against_classical",
    "format_against_classical",
    "summary_markdown",
    "write_metrics_csv",
    "write_summary",
    "plot_metrics",
    "plot_examples",
    "cli",
]

CLASSICAL_METHODS = ("telea", "ns", "biharmonic", "mean")
MODEL_METHODS = ("pconv", "ce")
METHOD_NAMES = MODEL_METHODS + CLASSICAL_METHODS
LABELS = {
    "pconv": "PConv U-Net",
    "ce": "Context Encoder",
    "telea": "OpenCV Telea",
    "ns": "OpenCV Navier-Stokes",
    "biharmonic": "biharmonic",
    "mean": "mean fill",
}
ROW_FIELDS = ("file", "mask", "hole_ratio", "bucket", "method", "psnr", "ssim", "l1_hole", "seconds")
CE_IMAGE_SIZE = 128  # report §4.1: 128x128 inputs, 56x56 centre hole
CE_HOLE_SIZE = 56


# ----------------------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    """An inpainting method behind the common interface: ``method(image, mask) -> completed``.

    ``check(image, mask)`` raises ValueError for pairs the method cannot handle (e.g. the Context Encoder
    outside its 128 px centre-hole setting); calling the method runs the check first.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    check: Callable[[torch.Tensor, torch.Tensor], None] | None = None

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.check is not None:
            self.check(image, mask)
        return self.fn(image, mask)

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


def _center_square_side(mask: torch.Tensor) -> int | None:
    """Side of the mask's hole when the hole is exactly one centred square, else None."""
    hole = mask[0] == 0
    rows, cols = hole.any(dim=1).nonzero(), hole.any(dim=0).nonzero()
    if rows.numel() == 0:
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    side = bottom - top
    h, w = hole.shape
    if right - left != side or int(hole.sum()) != side * side:
        return None
    if (top, left) != ((h - side) // 2, (w - side) // 2):
        return None
    return side


def _check_ce(image: torch.Tensor, mask: torch.Tensor) -> None:
    classical.check_pair(image, mask)
    size = tuple(image.shape[-2:])
    side = _center_square_side(mask)
    if size != (CE_IMAGE_SIZE, CE_IMAGE_SIZE) or side is None or side > 64:
        raise ValueError(
            f"the Context Encoder only fills a centred square hole (at most 64 px, {CE_HOLE_SIZE} px in the report) "
            f"of {CE_IMAGE_SIZE}x{CE_IMAGE_SIZE} images (report §4.1); got a {size[1]}x{size[0]} image with "
            + ("a non-square or off-centre hole" if side is None else f"a {side} px centred hole")
            + f". Evaluate it with size={CE_IMAGE_SIZE} and centre masks (--size {CE_IMAGE_SIZE} --center-masks)"
        )


def model_method(
    model: torch.nn.Module, name: str | None = None, device: str | torch.device | None = None, ensemble: int = 1
) -> Method:
    """Wrap a loaded PConv U-Net or Context Encoder as a :class:`Method` via ``inference.inpaint``
    (``ensemble``: mirrored copies averaged, see there).

    Inference runs the model in eval mode (BatchNorm with running statistics) and restores its mode after.

    ``name`` defaults to "pconv" / "ce" from the model's class. The PConv U-Net accepts any size (inference
    pads to a multiple of 2**layers); the Context Encoder only its report setting, see ``_check_ce``.
    """
    kind = type(model).__name__
    guessed = {"PConvUNet": "pconv", "ContextEncoder": "ce"}.get(kind)
    name = name or guessed
    if name not in MODEL_METHODS:
        raise ValueError(f"cannot tell which method a {kind} is; pass name='pconv' or name='ce'")
    if guessed is not None and guessed != name:
        raise ValueError(f"method {name!r} needs a {'PConvUNet' if name == 'pconv' else 'ContextEncoder'}, "
                         f"but the checkpoint holds a {kind}")
    if device is None:
        device = next(model.parameters()).device

    def run(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = inference.inpaint(model, image.to(device), mask.to(device), ensemble=ensemble)
        out = out.detach().float().cpu()
        out = out[0] if out.ndim == 4 else out
        return composite(out, image.cpu().float(), mask.cpu())

    if name == "ce":
        return Method("ce", run, _check_ce)
    # inference.inpaint pads sides that are not multiples of 2**layers and crops back: any size works
    return Method("pconv", run, classical.check_pair)


def _load_model(checkpoint: str | Path, device: str | torch.device) -> torch.nn.Module:
    from inpaintlib.rundir import load_model  # reads weights.pt / checkpoint.pt with weights_only=True

    return load_model(checkpoint, device=device)


def get_method(
    name: str,
    checkpoint: str | Path | torch.nn.Module | None = None,
    device: str | torch.device = "cpu",
    ensemble: int = 1,
) -> Method:
    """The method called ``name``: one of pconv, ce (need ``checkpoint``), telea, ns, biharmonic, mean.

    ``checkpoint`` is a run directory, a weights file, or an already loaded model; ``ensemble`` applies
    to the models (``inference.inpaint``).
    """
    if name not in METHOD_NAMES:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHOD_NAMES)}")
    if name == "telea":
        return Method("telea", classical.telea, classical.check_pair)
    if name == "ns":
        return Method("ns", classical.navier_stokes, classical.check_pair)
    if name == "biharmonic":
        return Method("biharmonic", classical.biharmonic, classical.check_pair)
    if name == "mean":
        return Method("mean", classical.mean_fill, classical.check_pair)
    if checkpoint is None:
        raise ValueError(f"method {name!r} needs a checkpoint (a run directory or a weights file)")
    if isinstance(checkpoint, torch.nn.Module):
        model = checkpoint.to(device)
    else:
        path = Path(checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {path} does not exist (expected a run directory or a weights file)")
        model = _load_model(path, device)
    return model_method(model, name, device, ensemble)


def _resolve_methods(
    methods: Sequence[str | Method] | Mapping[str, Callable] | str,
    checkpoint: str | Path | torch.nn.Module | None,
    device: str | torch.device,
    ensemble: int = 1,
) -> list[Method]:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if isinstance(methods, Mapping):
        items = [m if isinstance(m, Method) else Method(str(k), m) for k, m in methods.items()]
    else:
        items = [m if isinstance(m, Method) else get_method(m, checkpoint, device, ensemble) for m in methods]
    if not items:
        raise ValueError("no methods to evaluate; expected e.g. ['telea', 'mean']")
    names = [m.name for m in items]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique, got {names}")
    return items


# ------------------------------------------------------------------------------------------- image/mask pairs
def _list_images(images_dir: str | Path, size: int, skipped: list[tuple[str, str]]) -> tuple[Path, list[Path]]:
    """The readable photos under ``images_dir`` in ``data.PhotoFolder`` order; unreadable ones go to ``skipped``."""
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        folder = data.PhotoFolder(root, size, train=False)  # raises ValueError when no image is readable
    for w in caught:
        skipped.append(("unreadable images", str(w.message)))
    return root, list(folder.files)


@dataclass
class _Pair:
    file: str
    mask_name: str
    image: torch.Tensor  # (3, size, size)
    mask: torch.Tensor  # (1, size, size)


def _find_mask_files(masks_dir: Path) -> dict[str, list[Path]]:
    if not masks_dir.is_dir():
        raise FileNotFoundError(f"mask folder {masks_dir} does not exist or is not a folder")
    exts = {e.lower() for e in data.IMAGE_EXTENSIONS} | {".png"}
    found: dict[str, list[Path]] = {}
    for p in sorted(masks_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in exts:
            found.setdefault(p.stem, []).append(p)
    return found


def _hole_problem(mask: torch.Tensor) -> str | None:
    try:
        masks.check_mask_not_degenerate(mask)
    except ValueError as err:
        return str(err)
    return None


def _pairs(
    root: Path,
    files: list[Path],
    size: int,
    masks_dir: Path | None,
    center_masks: bool,
    invert_masks: bool,
    per_image: int,
    seed: int,
    skipped: list[tuple[str, str]],
) -> Iterator[_Pair | None]:
    """Yield the evaluation pairs in a fixed order; for a bad image or mask, append (name, reason) to
    ``skipped`` and yield None (so a progress bar still advances)."""
    if masks_dir is not None:
        mask_files = _find_mask_files(masks_dir)
    elif center_masks:
        hole = round(size * CE_HOLE_SIZE / CE_IMAGE_SIZE)
        center = [(f"center{hole}", masks.center_mask(image_size=size, hole_size=hole))]
    else:
        assign = masks.evaluation_assignment(size, per_image, seed)
    for i, path in enumerate(files):
        name = path.relative_to(root).as_posix()
        try:
            full = data.load_image(path)  # (3, H, W)
        except (ValueError, OSError) as err:
            skipped.append((name, f"image could not be read: {err}"))
            yield None
            continue
        image = center_crop_pad(full, size)  # (3, size, size)
        if masks_dir is None:
            for mask_name, m in center if center_masks else assign(i):
                yield _Pair(name, mask_name, image, m.float())
            continue
        candidates = mask_files.get(path.stem, [])
        if not candidates:
            skipped.append((name, f"no mask named {path.stem}.png in {masks_dir}"))
            yield None
            continue
        if len(candidates) > 1:
            names = ", ".join(c.name for c in candidates)
            skipped.append((name, f"several masks share the stem {path.stem!r} ({names}); keep one"))
            yield None
            continue
        mpath = candidates[0]
        try:
            m = masks.load_mask_png(mpath, invert=invert_masks)
        except (ValueError, OSError) as err:
            skipped.append((mpath.name, f"unusable mask: {err}"))
            yield None
            continue
        if tuple(m.shape[-2:]) != tuple(full.shape[-2:]):
            skipped.append((
                mpath.name,
                f"mask is {m.shape[-1]}x{m.shape[-2]} but its image {name} is {full.shape[-1]}x{full.shape[-2]}"
                " (masks are never resized)",
            ))
            yield None
            continue
        problem = _hole_problem(m)
        if problem is None:
            m = center_crop_pad(m.float(), size)
            if _hole_problem(m) is not None:
                problem = f"the centre {size}x{size} crop of the mask has no hole or no valid pixel"
        if problem is not None:
            hint = " (check the polarity: 255 = valid, 0 = hole; --invert-masks flips it)"
            skipped.append((mpath.name, problem + hint))
            yield None
            continue
        yield _Pair(name, mpath.name, image, m)


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass
class Example:
    """One pair kept for the example grid: the masked input, each method's completion, the ground truth."""

    file: str
    mask_name: str
    bucket: str
    image: torch.Tensor
    mask: torch.Tensor
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    ``rows``: one dict per image x mask x method (:data:`ROW_FIELDS`, plus "lpips" when available);
    ``summary``: means per method x bucket and per method over "all" (see :func:`summarize`);
    ``skipped``: (name, reason) for every image or mask left out; ``notes``: metrics skipped and why;
    ``examples``: pairs kept for :func:`plot_examples`; ``files``: the outputs written, by kind.
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
) -> Evaluation:
    """Run every method on the same image/mask pairs and score the composites by hole-ratio bucket.

    Images (found recursively and sorted as ``data.PhotoFolder`` does; the first ``limit`` when given) are
    centre-cropped to ``size``, mirror-padded when smaller. Masks: with ``masks_dir``, the PNG with the
    image's file stem (255 = valid, 0 = hole, or the other way round with ``invert_masks``), at the image's
    own size and cropped with it; with ``center_masks``, the report's centre square scaled to ``size``
    (56 px at 128, §4.1); otherwise the fixed set :func:`masks.evaluation_masks`, cycled deterministically
    so that image i gets ``masks_per_image`` masks from different buckets (default: one from each bucket).
    Bad images/masks are skipped by name. Methods receive x_in = M * x (hole blanked, report §3.2.2) and
    are timed per call; ``examples_per_bucket`` pairs per bucket (from different photos when possible) keep
    their completions for the example grid.

    ``methods`` are names for :func:`get_method` (a comma string works too), :class:`Method` objects, or a
    mapping name -> callable; ``ensemble`` (1, 2, 4, 8) averages the models' predictions over that many
    mirrored copies of the input (``inference.inpaint``). ``lpips=None`` adds LPIPS when its weights are cached locally. When ``out_dir``
    is given, :func:`write_metrics_csv`, :func:`write_summary`, :func:`plot_metrics` and :func:`plot_examples`
    write metrics.csv, summary.csv, summary.md, metrics_by_hole_ratio.png and examples.png there, and the
    settings of the evaluation (images, size, masks, seed, ensemble, methods) as settings.json.
    """
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    if masks_dir is not None and center_masks:
        raise ValueError("give either masks_dir or center_masks=True, not both")
    per_image = len(masks.BUCKETS) if masks_per_image is None else int(masks_per_image)
    if per_image < 1:
        raise ValueError(f"masks_per_image must be at least 1, got {masks_per_image}")
    skipped: list[tuple[str, str]] = []
    root, files = _list_images(images_dir, size, skipped)
    files = files[: None if limit is None else int(limit)]
    mdir = None if masks_dir is None else Path(masks_dir)
    if mdir is not None and not mdir.is_dir():
        raise FileNotFoundError(f"mask folder {mdir} does not exist or is not a folder")
    inference.check_ensemble(ensemble)
    method_list = _resolve_methods(methods, checkpoint, device, ensemble)

    notes: list[str] = []
    lpips_fn = None
    ok, note = lpips_available(download=lpips)
    if lpips is None:
        lpips = ok
    if lpips and not ok:
        raise ValueError(note)
    notes.append(note)
    if lpips:
        lpips_fn = _lpips_scorer(device)
    notes.append("FID skipped: it needs thousands of images and Inception weights, neither available here")
    if ensemble > 1:
        notes.append(f"pconv / ce: predictions averaged over {ensemble} mirrored copies of each input "
                     "(test-time self-ensemble, inference.inpaint(ensemble=...))")

    if mdir is None:  # masks known up front: refuse incompatible methods before any work
        probe = (
            masks.center_mask(image_size=size, hole_size=round(size * CE_HOLE_SIZE / CE_IMAGE_SIZE))
            if center_masks
            else masks.evaluation_masks(size, seed=seed)[0][1]
        )
        for m in method_list:
            if m.check is not None:
                m.check(torch.full((3, size, size), 0.5), probe.float())

    rows: list[dict] = []
    # Example grid: per bucket, pairs from photos not shown in another bucket when possible
    picked: dict[str, list[Example]] = {}
    fallback: dict[str, list[Example]] = {}
    example_files: set[str] = set()
    pairs = _pairs(root, files, size, mdir, center_masks, invert_masks, per_image, seed, skipped)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = len(files) * (1 if (mdir is not None or center_masks) else per_image)
        bar = tqdm(total=total, desc="evaluate", unit="pair")
    try:
        for pair in pairs:
            if pair is None:  # skipped image or mask, already recorded
                if bar is not None:
                    bar.update(1 if (mdir is not None or center_masks) else per_image)
                continue
            refused = []
            for m in method_list:
                if m.check is not None:
                    try:
                        m.check(pair.image, pair.mask)
                    except ValueError as err:
                        refused.append(f"{m.name}: {err}")
            if refused:
                skipped.append((f"{pair.file} + {pair.mask_name}", "; ".join(refused)))
                if bar is not None:
                    bar.update(1)
                continue
            ratio = float(masks.hole_ratio(pair.mask))
            bucket = masks.bucket_of(ratio)
            example = None
            if examples_per_bucket > 0:
                preferred = pair.file not in example_files and len(picked.setdefault(bucket, [])) < examples_per_bucket
                if preferred or len(fallback.setdefault(bucket, [])) < examples_per_bucket:
                    example = Example(pair.file, pair.mask_name, bucket, pair.image, pair.mask)
            # Methods get x_in = M * x (report §3.2.2): the hole is blanked, so a method that reads the
            # ground truth there by mistake cannot score with it.
            masked = pair.image * pair.mask
            comps, seconds = [], []
            for m in method_list:
                if bar is not None:
                    bar.set_postfix_str(m.name)
                start = time.perf_counter()
                out = m.fn(masked, pair.mask)
                out = out.detach().float().cpu()  # the copy to CPU also waits for a GPU to finish
                seconds.append(time.perf_counter() - start)
                if out.shape != pair.image.shape:
                    raise ValueError(f"method {m.name} returned shape {tuple(out.shape)}, expected {tuple(pair.image.shape)}")
                comps.append(out)
            with torch_threads(1):  # see _score_stack
                comps = [composite(out.clamp(0, 1), pair.image, pair.mask) for out in comps]
                scores = _score_stack(torch.stack(comps), pair.image, pair.mask)  # all methods in one batch
            for k, m in enumerate(method_list):
                row = {"file": pair.file, "mask": pair.mask_name, "hole_ratio": ratio, "bucket": bucket,
                       "method": m.name, **{key: float(v[k]) for key, v in scores.items()}, "seconds": seconds[k]}
                if lpips_fn is not None:
                    row["lpips"] = lpips_fn(comps[k], pair.image)
                rows.append(row)
                if example is not None:
                    example.outputs[m.name] = comps[k]
            if example is not None:
                if preferred:
                    picked[bucket].append(example)
                    example_files.add(pair.file)
                else:
                    fallback[bucket].append(example)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not rows:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped[:5]) or "none"
        raise ValueError(f"no valid image/mask pairs in {images_dir} (first reasons: {reasons})")

    examples = []
    for bucket in sorted(picked.keys() | fallback.keys(), key=masks.bucket_sort_key):
        chosen = picked.get(bucket, [])
        examples += chosen + fallback.get(bucket, [])[: examples_per_bucket - len(chosen)]
    result = Evaluation(rows, summarize(rows), skipped, notes, examples, [m.name for m in method_list])
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result.files["metrics"] = write_metrics_csv(rows, out / "metrics.csv")
        settings = {
            "images": str(images_dir), "size": size, "masks": None if mdir is None else str(mdir),
            "invert_masks": invert_masks, "center_masks": center_masks, "masks_per_image": per_image,
            "seed": seed, "limit": limit, "ensemble": ensemble, "methods": result.methods,
        }  # fmt: skip
        result.files["settings"] = out / "settings.json"
        result.files["settings"].write_text(json.dumps(settings, indent=2) + "\n")
        result.files["summary_csv"], result.files["summary_md"] = write_summary(
            result.summary, out / "summary.csv", out / "summary.md", notes=notes, skipped=skipped
        )
        result.files["plot"] = plot_metrics(rows, out / "metrics_by_hole_ratio.png")[1]
        if examples:
            result.files["examples"] = plot_examples(examples, out / "examples.png")[1]
    return result


def summarize(rows: Sequence[Mapping]) -> list[dict]:
    """Mean of each metric (and of seconds per image) per method x bucket, then per method over "all".

    Each summary row: method, bucket, n, hole_ratio (mean), psnr, ssim, l1_hole, [lpips], seconds.
    Methods keep their first-seen order; buckets follow the order of :data:`masks.BUCKETS`.
    """
    if not rows:
        return []
    metrics = [k for k in (*METRICS, "lpips") if k in rows[0]]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    buckets = sorted({r["bucket"] for r in rows}, key=masks.bucket_sort_key)
    out = []
    for method in methods:
        for bucket in [*buckets, "all"]:
            sel = [r for r in rows if r["method"] == method and (bucket == "all" or r["bucket"] == bucket)]
            if not sel:
                continue
            entry = {"method": method, "bucket": bucket, "n": len(sel)}
            for key in ("hole_ratio", *metrics, "seconds"):
                entry[key] = sum(float(r[key]) for r in sel) / len(sel)
            out.append(entry)
    return out


def read_summary(path: str | Path) -> list[dict]:
    """The rows of a summary.csv written by :func:`write_summary`, numbers as numbers."""
    return _read_table(path, "evaluation summary", text_fields=("method", "bucket"))


def _read_table(path: str | Path, what: str, text_fields: Sequence[str]) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}; write one with python -m inpaintlib evaluate ... --out")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k not in text_fields:
                r[k] = int(v) if k == "n" else float(v)
    return rows


def against_classical(
    summary: Sequence[Mapping], method: str = "pconv", others: Sequence[str] = ("telea", "ns", "biharmonic")
) -> list[dict]:
    """Per bucket: does ``method`` beat every one of ``others`` on mean PSNR and on mean hole L1?

    Each row: bucket, psnr, best_psnr (value, method), beats_psnr, l1_hole, best_l1 (value, method),
    beats_l1 -- "best" among ``others``. Buckets where ``method`` or any of ``others`` is missing are left out.
    """
    cell = {(s["method"], s["bucket"]): s for s in summary}
    out = []
    for bucket in dict.fromkeys(s["bucket"] for s in summary):
        if (method, bucket) not in cell or any((o, bucket) not in cell for o in others):
            continue
        ours, rivals = cell[(method, bucket)], [cell[(o, bucket)] for o in others]
        top_psnr = max(rivals, key=lambda r: r["psnr"])
        top_l1 = min(rivals, key=lambda r: r["l1_hole"])
        out.append({
            "bucket": bucket,
            "psnr": ours["psnr"], "best_psnr": (top_psnr["psnr"], top_psnr["method"]),
            "beats_psnr": ours["psnr"] > top_psnr["psnr"],
            "l1_hole": ours["l1_hole"], "best_l1": (top_l1["l1_hole"], top_l1["method"]),
            "beats_l1": ours["l1_hole"] < top_l1["l1_hole"],
        })  # fmt: skip
    return out


def read_metrics(path: str | Path) -> list[dict]:
    """The per-pair rows of a metrics.csv written by :func:`write_metrics_csv`, numbers as numbers."""
    return _read_table(path, "per-pair metrics", text_fields=("file", "mask", "bucket", "method"))


def paired_margin(rows: Sequence[Mapping], bucket: str, metric: str, method: str, rival: str) -> dict:
    """How far ``method`` leads ``rival`` on one bucket, pair by pair (the same photo and mask for both).

    Returns ``{"mean", "se", "better", "n"}``: the mean of the per-pair differences (method - rival for
    PSNR and SSIM, rival - method for hole L1, so positive always means ``method`` is better), its
    standard error, and on how many of the ``n`` pairs ``method`` is better. A mean lead smaller than
    about two standard errors is a tie on this many photos.
    """
    values = {m: {(r["file"], r["mask"]): float(r[metric]) for r in rows if r["bucket"] == bucket and r["method"] == m}
              for m in (method, rival)}
    keys = sorted(values[method].keys() & values[rival].keys())
    if len(keys) < 2:
        raise ValueError(f"bucket {bucket!r} has {len(keys)} pair(s) scored by both {method!r} and {rival!r}; need 2")
    sign = -1.0 if metric == "l1_hole" else 1.0
    d = sign * np.array([values[method][k] - values[rival][k] for k in keys])
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "better": int((d > 0).sum()),
            "n": len(d)}


def format_against_classical(table: Sequence[Mapping], name: str = "model") -> str:
    """:func:`against_classical`'s rows as a text table (76 columns): a title line, then one line per bucket."""
    lines = [f"{name}: PSNR in dB, hole L1 x100",
             f"{'bucket':>8} | {'PSNR':>6} | {'best classical':>17} | win | {'L1':>5} | {'best classical':>16} | win"]
    for t in table:
        (bp, mp), (bl, ml) = t["best_psnr"], t["best_l1"]
        lines.append(f"{t['bucket']:>8} | {t['psnr']:6.2f} | {mp:>10} {bp:6.2f} | {'yes' if t['beats_psnr'] else 'no':>3} | "
                     f"{t['l1_hole']:5.2f} | {ml:>10} {bl:5.2f} | {'yes' if t['beats_l1'] else 'no':>3}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- writers
def write_metrics_csv(rows: Sequence[Mapping], path: str | Path) -> Path:
    """metrics.csv: one line per image x mask x method with :data:`ROW_FIELDS` (+ lpips when present)."""
    path = Path(path)
    fields = list(ROW_FIELDS) + (["lpips"] if rows and "lpips" in rows[0] else [])
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in fields})
    return path


def summary_markdown(
    summary: Sequence[Mapping], notes: Sequence[str] = (), skipped: Sequence[tuple[str, str]] = ()
) -> str:
    """Markdown tables (one per metric; methods as rows, buckets as columns, best in bold) for a run card."""
    if not summary:
        return "_no results_\n"
    methods = list(dict.fromkeys(s["method"] for s in summary))
    buckets = list(dict.fromkeys(s["bucket"] for s in summary if s["bucket"] != "all")) + ["all"]
    cell = {(s["method"], s["bucket"]): s for s in summary}
    specs = [("psnr", "PSNR (dB, higher is better)", max, "{:.2f}"),
             ("ssim", "SSIM (higher is better)", max, "{:.4f}"),
             ("l1_hole", "L1 over the hole x100 (lower is better)", min, "{:.2f}")]
    if "lpips" in summary[0]:
        specs.append(("lpips", "LPIPS AlexNet (lower is better)", min, "{:.4f}"))
    lines = []
    for key, title, best_of, fmt in specs:
        lines += [f"**{title}**", "", "| method | " + " | ".join(buckets) + " |",
                  "|---|" + "---:|" * len(buckets)]
        best = {b: best_of((cell[(m, b)][key] for m in methods if (m, b) in cell), default=None) for b in buckets}
        for m in methods:
            cells = []
            for b in buckets:
                if (m, b) not in cell:
                    cells.append("-")
                    continue
                v = cell[(m, b)][key]
                text = fmt.format(v)
                cells.append(f"**{text}**" if len(methods) > 1 and v == best[b] else text)
            lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
        lines.append("")
    counts = " | ".join(str(cell[(methods[0], b)]["n"]) if (methods[0], b) in cell else "0" for b in buckets)
    lines += ["**Pairs per bucket and time per image**", "",
              "| | " + " | ".join(buckets) + " |", "|---|" + "---:|" * len(buckets),
              f"| pairs | {counts} |"]
    for m in methods:
        secs = " | ".join(f"{cell[(m, b)]['seconds']:.3f} s" if (m, b) in cell else "-" for b in buckets)
        lines.append(f"| {LABELS.get(m, m)} | {secs} |")
    lines.append("")
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    if skipped:
        lines += [f"Skipped ({len(skipped)}):", ""] + [f"- `{n}`: {r}" for n, r in skipped] + [""]
    return "\n".join(lines)


def write_summary(
    summary: Sequence[Mapping],
    csv_path: str | Path,
    md_path: str | Path,
    notes: Sequence[str] = (),
    skipped: Sequence[tuple[str, str]] = (),
) -> tuple[Path, Path]:
    """summary.csv (one line per method x bucket, "all" last) and summary.md (:func:`summary_markdown`)."""
    csv_path, md_path = Path(csv_path), Path(md_path)
    fields = list(summary[0].keys()) if summary else ["method", "bucket", "n"]
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for s in summary:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in s.items()})
    md_path.write_text(summary_markdown(summary, notes, skipped))
    return csv_path, md_path


def plot_metrics(rows: Sequence[Mapping], path: str | Path | None = None):
    """PSNR and SSIM against hole ratio (bucket means) for every method; returns ``(figure, path)``."""
    from matplotlib.figure import Figure

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for key, ax, title in [("psnr", axes[0], "PSNR (dB)"), ("ssim", axes[1], "SSIM")]:
        for method in methods:
            sel = [r for r in rows if r["method"] == method]
            buckets = sorted({r["bucket"] for r in sel}, key=masks.bucket_sort_key)
            xs, ys = [], []
            for b in buckets:
                group = [r for r in sel if r["bucket"] == b]
                xs.append(sum(r["hole_ratio"] for r in group) / len(group))
                ys.append(sum(r[key] for r in group) / len(group))
            ax.plot(xs, ys, marker="o", label=LABELS.get(method, method))
        ax.set_xlabel("hole ratio (mean of each bucket)")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle("Quality against hole size (composites; higher is better)")
    out = None
    if path is not None:
        out = Path(path)
        fig.savefig(out, dpi=110)
    return fig, out


def plot_examples(examples: Sequence[Example], path: str | Path | None = None, methods: Sequence[str] | None = None):
    """Grid: one row per example pair; masked input, each method's composite, ground truth. Returns ``(figure, path)``."""
    from matplotlib.figure import Figure

    if not examples:
        raise ValueError("no examples to plot")
    methods = list(methods) if methods is not None else list(examples[0].outputs)
    cols = ["masked input", *[LABELS.get(m, m) for m in methods], "ground truth"]
    fig = Figure(figsize=(1.9 * len(cols), 1.9 * len(examples) + 0.4), layout="constrained")
    axes = fig.subplots(len(examples), len(cols), squeeze=False)
    for i, ex in enumerate(examples):
        masked = ex.image * ex.mask + (1 - ex.mask)  # hole shown in white
        panels = [masked, *[ex.outputs[m] for m in methods], ex.image]
        for j, panel in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(panel.clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
        stem = Path(ex.file).stem
        stem = stem if len(stem) <= 22 else stem[:20] + "..."
        axes[i][0].set_ylabel(f"{stem}\nhole {ex.bucket}", fontsize=8)
    out = None
    if path is not None:
        out = Path(path)
        fig.savefig(out, dpi=100)
    return fig, out


# ------------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{program()} evaluate",
        description="Score a trained model next to classical inpainting on the same image/mask pairs, "
        "by hole-ratio bucket; writes metrics.csv, summary.csv, summary.md and two PNG figures.",
    )
    p.add_argument("--checkpoint", help="run directory, weights file or stored run name such as pconv-l1 "
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
    p.add_argument("--device", default="auto", help="device for model methods: auto (default), cpu, cuda or mps")
    p.add_argument("--lpips", action="store_true", help="add LPIPS (AlexNet); downloads its weights into TORCH_HOME "
                   "when they are not cached (offline: pre-fill TORCH_HOME)")
    p.add_argument("--ensemble", type=int, default=1, choices=inference.ENSEMBLE_SIZES,
                   help="model methods: average the predictions for 1 (default), 2, 4 or 8 mirrored copies of the input")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m inpaintlib evaluate ...``; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        args.checkpoint, args.device = resolve_checkpoint(args.checkpoint), str(resolve_device(args.device))
        if args.methods is None:
            names = list(CLASSICAL_METHODS)
            if args.checkpoint is not None:
                if not Path(args.checkpoint).exists():
                    raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist (expected a run directory "
                                            "or a weights file)")
                model = _load_model(Path(args.checkpoint), args.device)
                methods: list[str | Method] = [model_method(model, device=args.device, ensemble=args.ensemble), *names]
            else:
                methods = names
        else:
            methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        result = evaluate(
            args.images, methods, masks_dir=args.masks, size=args.size, out_dir=args.out,
            invert_masks=args.invert_masks, progress=not args.quiet, limit=args.limit,
            checkpoint=args.checkpoint, device=args.device, center_masks=args.center_masks,
            masks_per_image=args.masks_per_image, examples_per_bucket=args.examples_per_bucket,
            ensemble=args.ensemble, lpips=True if args.lpips else None,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2
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
