"""The image/mask pairs an evaluation scores, in a fixed order.

Images are the photos of a folder (found and sorted as ``data.PhotoFolder`` does), centre-cropped to the
evaluation size (mirror-padded when smaller, :func:`inpaintlib.data.center_crop_pad`). Masks come from one
of three sources:

* the library's fixed bucketed set, cycled so that image i gets masks from different hole-ratio buckets
  (:func:`inpaintlib.masks.evaluation_assignment`, the protocol training's ``metrics.json`` uses too);
* the report's centre square (§4.1: 56 px at 128 px, scaled to the size), for the Context Encoder;
* a folder of mask PNGs paired with the images by file stem, at the image's own size and cropped with it.

Bad images and masks are skipped *by name* with the reason, never resized or repaired.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from inpaintlib import data, masks
from inpaintlib.data import center_crop_pad
from inpaintlib.inpainters import CE_HOLE_SIZE, CE_IMAGE_SIZE

__all__ = ["Pair", "Example", "ExamplePicker", "list_images", "center_hole_size", "find_mask_files", "pairs"]

_POLARITY_HINT = " (check the polarity: 255 = valid, 0 = hole; --invert-masks flips it)"


@dataclass
class Pair:
    """One image with one mask, both at the evaluation size."""

    file: str  # the image's path relative to the image folder
    mask_name: str
    image: torch.Tensor  # (3, size, size)
    mask: torch.Tensor  # (1, size, size), 1 = valid, 0 = hole


def list_images(images_dir: str | Path, size: int, skipped: list[tuple[str, str]]) -> tuple[Path, list[Path]]:
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


def center_hole_size(size: int) -> int:
    """Side of the report's centre hole (56 px at 128 px, §4.1) scaled to ``size``."""
    return round(size * CE_HOLE_SIZE / CE_IMAGE_SIZE)


def find_mask_files(masks_dir: Path) -> dict[str, list[Path]]:
    """Mask image files of a folder by file stem (a stem with several files is reported by :func:`pairs`)."""
    if not masks_dir.is_dir():
        raise FileNotFoundError(f"mask folder {masks_dir} does not exist or is not a folder")
    exts = {e.lower() for e in data.IMAGE_EXTENSIONS} | {".png"}
    found: dict[str, list[Path]] = {}
    for p in sorted(masks_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in exts:
            found.setdefault(p.stem, []).append(p)
    return found


def _mask_from_folder(
    name: str, stem: str, full_shape: tuple[int, int], candidates: list[Path], masks_dir: Path, size: int,
    invert: bool,
) -> tuple[str, torch.Tensor] | tuple[str, str]:
    """The cropped mask for one image as ``(mask file name, mask)``, or ``(name, reason)`` when unusable."""
    if not candidates:
        return name, f"no mask named {stem}.png in {masks_dir}"
    if len(candidates) > 1:
        return name, f"several masks share the stem {stem!r} ({', '.join(c.name for c in candidates)}); keep one"
    mpath = candidates[0]
    try:
        m = masks.load_mask_png(mpath, invert=invert)
    except (ValueError, OSError) as err:
        return mpath.name, f"unusable mask: {err}"
    if tuple(m.shape[-2:]) != full_shape:
        return mpath.name, (f"mask is {m.shape[-1]}x{m.shape[-2]} but its image {name} is "
                            f"{full_shape[1]}x{full_shape[0]} (masks are never resized)")
    try:
        masks.check_mask_not_degenerate(m)
    except ValueError as err:
        return mpath.name, str(err) + _POLARITY_HINT
    m = center_crop_pad(m.float(), size)
    try:
        masks.check_mask_not_degenerate(m)
    except ValueError:
        return mpath.name, f"the centre {size}x{size} crop of the mask has no hole or no valid pixel" + _POLARITY_HINT
    return mpath.name, m


def _fixed_masks(size: int, center: bool, per_image: int, seed: int) -> Callable[[int], list[tuple[str, torch.Tensor]]]:
    """Image index -> its (mask name, mask) list when the masks do not come from a folder."""
    if center:
        hole = center_hole_size(size)
        chosen = [(f"center{hole}", masks.center_mask(image_size=size, hole_size=hole))]
        return lambda i: chosen
    return masks.evaluation_assignment(size, per_image, seed)


def pairs(
    root: Path,
    files: list[Path],
    size: int,
    masks_dir: Path | None,
    center_masks: bool,
    invert_masks: bool,
    per_image: int,
    seed: int,
    skipped: list[tuple[str, str]],
) -> Iterator[Pair | None]:
    """Yield the evaluation pairs in a fixed order; for a bad image or mask, append (name, reason) to
    ``skipped`` and yield None (so a progress bar still advances)."""
    mask_files = find_mask_files(masks_dir) if masks_dir is not None else {}
    fixed = None if masks_dir is not None else _fixed_masks(size, center_masks, per_image, seed)
    for i, path in enumerate(files):
        name = path.relative_to(root).as_posix()
        try:
            full = data.load_image(path)  # (3, H, W)
        except (ValueError, OSError) as err:
            skipped.append((name, f"image could not be read: {err}"))
            yield None
            continue
        image = center_crop_pad(full, size)  # (3, size, size)
        if fixed is not None:
            for mask_name, m in fixed(i):
                yield Pair(name, mask_name, image, m.float())
            continue
        mask_name, found = _mask_from_folder(name, path.stem, tuple(full.shape[-2:]), mask_files.get(path.stem, []),
                                             masks_dir, size, invert_masks)
        if isinstance(found, str):
            skipped.append((mask_name, found))
            yield None
            continue
        yield Pair(name, mask_name, image, found)


def large_hole_notes(rows: Sequence[Mapping]) -> list[str]:
    """A warning (and a note) listing the pairs whose hole exceeds the training range: often inverted masks."""
    large = sorted({f"{r['file']} + {r['mask']} ({r['hole_ratio']:.0%})" for r in rows if r["hole_ratio"] > 0.6})
    if not large:
        return []
    text = (f"{len(large)} pair(s) have holes over 60 % of the image, beyond the training range -- inverted masks? "
            "(here 255 = valid; masks with 255 = hole need --invert-masks): " + "; ".join(large[:10])
            + (" ..." if len(large) > 10 else ""))
    warnings.warn(text, UserWarning, stacklevel=4)  # the caller of evaluate()
    return [text]


@dataclass
class Example:
    """One pair kept for the example grid: the masked input, each method's completion, the ground truth."""

    file: str
    mask_name: str
    bucket: str
    image: torch.Tensor
    mask: torch.Tensor
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


class ExamplePicker:
    """Per bucket, ``per_bucket`` pairs for the example grid, from photos not shown in another bucket
    when possible (pairs of already shown photos are kept as a fallback)."""

    def __init__(self, per_bucket: int) -> None:
        self.per_bucket = per_bucket
        self.picked: dict[str, list[Example]] = {}
        self.fallback: dict[str, list[Example]] = {}
        self.files: set[str] = set()

    def offer(self, pair: Pair, bucket: str) -> Example | None:
        """An empty Example to fill with the methods' outputs when this pair is wanted, else None."""
        if self.per_bucket <= 0:
            return None
        if self._preferred(pair.file, bucket) or len(self.fallback.get(bucket, [])) < self.per_bucket:
            return Example(pair.file, pair.mask_name, bucket, pair.image, pair.mask)
        return None

    def _preferred(self, file: str, bucket: str) -> bool:
        return file not in self.files and len(self.picked.get(bucket, [])) < self.per_bucket

    def keep(self, example: Example) -> None:
        """Keep an example :meth:`offer` returned, once its outputs are filled in."""
        if self._preferred(example.file, example.bucket):
            self.picked.setdefault(example.bucket, []).append(example)
            self.files.add(example.file)
        else:
            self.fallback.setdefault(example.bucket, []).append(example)

    def chosen(self) -> list[Example]:
        out = []
        for bucket in sorted(self.picked.keys() | self.fallback.keys(), key=masks.bucket_sort_key):
            chosen = self.picked.get(bucket, [])
            out += chosen + self.fallback.get(bucket, [])[: self.per_bucket - len(chosen)]
        return out
