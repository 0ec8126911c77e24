"""Photos for training and evaluation: robust image loading, random crops with mirror padding, Places365.

The report (§4) trains both models on photographs augmented by *random cropping and mirror padding*:
a random ``size x size`` window is cut from each photo, and a photo smaller than the window is
extended by mirroring its border rather than by a constant colour. :class:`PhotoFolder` does that for
any folder of images; :func:`photo_dir` points at the small photo set embedded in the repository, and
:func:`places365` wraps the Places2 (Places365) data the report used (its validation split, 36,500
images, §4).

Images are float tensors ``(3, H, W)`` with values in [0, 1]. Masks (1 = valid, 0 = hole) are made
separately by :mod:`inpaintlib.masks`.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from inpaintlib.images import (  # load_image and IMAGE_EXTENSIONS: the entry points of the photo pipeline
    CACHE_LIMIT_BYTES,
    IMAGE_EXTENSIONS,
    as_float_rgb,
    check_readable,
    decode,
    decoded_bytes,
    load_image,
)
from inpaintlib.paths import photos_dir

__all__ = ["IMAGE_EXTENSIONS", "PhotoFolder", "center_crop_pad", "load_image", "photo_dir", "places365"]

def _normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions,)
    normalised = tuple("." + ext.lower().lstrip(".") for ext in extensions)
    if not normalised:
        raise ValueError("extensions must name at least one file suffix, e.g. ('.jpg', '.png')")
    return normalised


#: Files that mark a folder the library wrote: a run directory (its lock or its log) or an evaluation folder.
#: Photos are never listed from such a folder, so an output (sample grids, example figures) never becomes an input.
PROJECT_MARKERS = (".inpaintlib.lock", ".inpaintlib-evaluation", "history.csv", "metrics.csv")


def is_project_output(folder: Path) -> bool:
    """True for a folder the library wrote: a run directory (``config.json`` with ``history.csv`` or a lock)
    or an evaluation folder (its marker file, or ``metrics.csv`` with ``summary.csv``)."""
    def has(name: str) -> bool:
        return (folder / name).is_file()

    lock, evaluation_marker, history, metrics = PROJECT_MARKERS
    run = has(lock) or (has(history) and has("config.json"))
    return run or has(evaluation_marker) or (has(metrics) and has("summary.csv"))


def _find_images(root: Path, extensions: tuple[str, ...]) -> list[Path]:
    found = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        if here != root and is_project_output(here):
            subfolders.clear()  # a run or evaluation folder inside the photos: its PNGs are outputs
            continue
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]  # e.g. .ipynb_checkpoints
        for name in files:
            path = here / name
            if not name.startswith(".") and path.suffix.lower() in extensions and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _centred_start(extra: int) -> int:
    """Start of a centred window along an axis ``extra`` pixels longer (< 0: shorter) than the window."""
    return extra // 2 if extra >= 0 else -((-extra) // 2)


def center_crop_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop (C, H, W) to (C, size, size), mirror-padding sides shorter than ``size`` (report §4).

    The window ``PhotoFolder(train=False)`` cuts, for tensors already loaded. Pure geometry, no
    resampling: a binary mask stays binary, so a mask at its photo's size can be cropped with it.
    """
    arr = x.detach().cpu().numpy().transpose(1, 2, 0)  # (H, W, C)
    for axis in (0, 1):
        arr = _mirror_pad_or_crop(arr, size, _centred_start(arr.shape[axis] - size), axis)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(x.dtype)


def _mirror_pad_or_crop(image: np.ndarray, window: int, start: int, axis: int) -> np.ndarray:
    """Cut ``window`` pixels along ``axis`` starting at ``start`` of the mirror-extended image.

    ``start`` may be negative or run past the end: the image is then extended by reflection
    (``np.pad(mode="reflect")``, which reflects repeatedly when the image is much smaller than the
    window; an axis of length 1 is repeated instead).
    """
    length = image.shape[axis]
    before, after = max(0, -start), max(0, start + window - length)
    if before or after:
        widths = [(0, 0)] * image.ndim
        widths[axis] = (before, after)
        image = np.pad(image, widths, mode="reflect" if length > 1 else "edge")
        start += before
    index = [slice(None)] * image.ndim
    index[axis] = slice(start, start + window)
    return image[tuple(index)]


class PhotoFolder(Dataset):
    """Square crops of the photos in a folder, as float tensors ``(3, size, size)`` in [0, 1].

    Implements the report's augmentation (§4): random crops and mirror padding.

    * ``train=True``: optionally rescale by a random factor in ``scale`` (done as a crop of
      ``size / factor`` pixels resized to ``size``: area averaging when shrinking, bilinear when
      enlarging), cut a random window, mirror-padding the photo
      where it is smaller than the window (the offset is random there too), and flip horizontally with
      probability 1/2. The randomness comes from ``generator`` (a ``torch.Generator``; None = torch's
      global one), or from the generator passed to :meth:`crop`, which makes a sample a pure function
      of ``(index, generator seed)`` -- how training draws its data (see :mod:`inpaintlib.train.sampling`).
    * ``train=False``: the deterministic central window, mirror-padded symmetrically where the photo
      is smaller; no rescale, no flip.

    Files are found recursively under ``root`` (hidden files and folders skipped, and folders the library
    wrote -- run directories and evaluation folders, :func:`is_project_output` -- so that sample grids and
    example figures are never read as photos), sorted by their relative path so the order is the same
    everywhere. Each is checked once at construction (header
    parse + Pillow's ``verify``, no decode); unreadable files are skipped with a single warning that
    lists them all. A file that passes this check but fails to decode later raises ``ValueError``
    naming it.

    Args:
        root: folder with the photos.
        size: side of the square crops in pixels.
        train: random (training) or central (validation) crops, see above.
        scale: ``(lo, hi)`` range of random rescale factors for training, ``0 < lo <= hi``;
            ``None`` for no rescale.
        extensions: file suffixes to include, compared case-insensitively.
        files: explicit list of image files (absolute, or relative to ``root``) used instead of
            scanning ``root``; e.g. a dataset's official file list.
        cache: ``True`` decodes every photo once, at construction, and keeps the pixels in memory
            (decoding a JPEG costs far more than cropping it, and a fast GPU can outrun the loader
            workers otherwise); files that fail to decode are then skipped with the same warning.
            ``"auto"`` caches when the decoded photos take at most :data:`CACHE_LIMIT_BYTES`.
            DataLoader workers started by fork share the cache without copying it.

    Attributes:
        files: the readable image files, in order (``dataset[i]`` comes from ``files[i]``).
    """

    def __init__(
        self,
        root: str | Path,
        size: int,
        train: bool = True,
        scale: tuple[float, float] | None = None,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        *,
        files: Sequence[str | Path] | None = None,
        cache: bool | str = False,
        generator: torch.Generator | None = None,
    ) -> None:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"photo folder not found: {root}")
        if not root.is_dir():
            raise ValueError(f"expected a folder of photos, but {root} is a file")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
            raise ValueError(f"size must be a positive integer (crop side in pixels), got {size!r}")
        if scale is not None:
            try:
                lo, hi = (float(v) for v in scale)
            except (TypeError, ValueError):
                raise ValueError(f"scale must be None or a pair (lo, hi) of factors, got {scale!r}") from None
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ValueError(f"scale must satisfy 0 < lo <= hi (finite), got ({lo}, {hi})")
            scale = (lo, hi)
        extensions = _normalise_extensions(extensions)

        if files is None:
            candidates = _find_images(root, extensions)
        else:
            candidates = [p if Path(p).is_absolute() else root / p for p in map(Path, files)]
        if cache not in (True, False, "auto"):
            raise ValueError(f"cache must be True, False or 'auto', got {cache!r}")
        readable, skipped = [], []
        for path in candidates:
            reason = check_readable(path) if path.is_file() else "file not found"
            if reason is None:
                readable.append(path)
            else:
                skipped.append(f"{path} ({reason})")
        if cache == "auto":
            cache = sum(decoded_bytes(path) for path in readable) <= CACHE_LIMIT_BYTES
        pixels: list[np.ndarray] | None = None
        if cache:
            pixels, kept = [], []
            for path in readable:
                try:
                    pixels.append(decode(path))
                    kept.append(path)
                except ValueError as error:  # e.g. a truncated JPEG that passed the header check
                    skipped.append(f"{path} ({error.__cause__ or error})")
            readable = kept
        if skipped:
            shown = "; ".join(skipped[:20]) + (f"; ... and {len(skipped) - 20} more" if len(skipped) > 20 else "")
            warnings.warn(
                f"PhotoFolder({root}): skipped {len(skipped)} unreadable image file(s): {shown}",
                RuntimeWarning,
                stacklevel=2,
            )
        if not readable:
            what = f"{len(skipped)} file(s) were unreadable" if skipped else f"no file ends in {', '.join(extensions)}"
            raise ValueError(f"no readable image in {root} ({what}); expected photos such as .jpg or .png files")

        self.root = root
        self.size = int(size)
        self.train = bool(train)
        self.scale = scale
        self.files: list[Path] = readable
        self._pixels = pixels  # decoded photos when cached, else None
        self.generator = generator

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        mode = "train" if self.train else "val"
        return f"PhotoFolder({str(self.root)!r}, size={self.size}, {mode}, scale={self.scale}, {len(self)} photos)"

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.crop(index, self.generator)

    def crop(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Photo ``index`` as a ``(3, size, size)`` crop; training crops draw from ``generator``."""

        def randint(high: int) -> int:  # uniform in [0, high]
            return int(torch.randint(0, high + 1, (1,), generator=generator).item())

        # numpy/OpenCV throughout: small torch ops wake its thread pool, which costs milliseconds
        # each on a busy 2-core machine when no DataLoader worker has set one thread.
        # (H, W, C) in its storage type, converted after cropping; the cached array is never written to
        image = self._pixels[index] if self._pixels is not None else decode(self.files[index])
        window = self.size
        if self.train and self.scale is not None:
            lo, hi = self.scale
            factor = lo + (hi - lo) * float(torch.rand((), generator=generator).item())
            window = max(1, round(self.size / factor))  # crop this much, then resize to size
        for axis in (0, 1):
            extra = image.shape[axis] - window  # >= 0: room to move; < 0: mirror padding needed
            if self.train:
                start = randint(extra) if extra >= 0 else -randint(-extra)
            else:
                start = _centred_start(extra)
            image = _mirror_pad_or_crop(image, window, start, axis)
        image = as_float_rgb(image)  # (window, window, 3)
        if window != self.size:
            shrinking = window > self.size
            image = cv2.resize(
                np.ascontiguousarray(image),
                (self.size, self.size),
                interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
            )
            image = np.clip(image, 0.0, 1.0)
        if self.train and torch.rand((), generator=generator).item() < 0.5:
            image = image[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (3, size, size)


def photo_dir(split: str = "train") -> Path:
    """Folder of the photos embedded in the repository: ``<repo>/data/photos/<split>``.

    Args:
        split: ``"train"`` or ``"val"``.

    Raises:
        ValueError: unknown split.
        FileNotFoundError: the folder is missing (the photos ship with a clone of the repository,
            not with an installed package).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    folder = photos_dir() / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"embedded photo folder not found: {folder}. The photos come with a clone of the "
            f"inpaint-book repository (data/photos/); an installed package without the repository "
            f"has none -- clone the repository, or pass your own folder to PhotoFolder."
        )
    return folder


def places365(
    root: str | Path,
    size: int = 256,
    split: str = "val",
    small: bool = True,
    download: bool = True,
    train: bool = True,
    scale: tuple[float, float] | None = None,
) -> PhotoFolder:
    """Places365 (Places2) photos as a :class:`PhotoFolder` of ``(3, size, size)`` crops in [0, 1].

    The report trained both models on the Places2 *validation* split, 36,500 photos, holding 1,460
    out for validation (§4). torchvision's ``Places365`` downloads and checks the archives (the
    256x256 ``small`` validation images are about 500 MB); the returned dataset reads its official
    file list and crops with mirror padding like any :class:`PhotoFolder`. Class labels are dropped.

    Args:
        root: folder holding (or receiving) the dataset files.
        size, train, scale: as for :class:`PhotoFolder`.
        split: ``"train-standard"``, ``"train-challenge"``, ``"val"`` or ``"test"``.
        small: the 256x256 images (``True``) or the high-resolution ones.
        download: fetch missing files; with ``False`` missing files raise.

    Raises:
        FileNotFoundError: with ``download=False``, the metadata files or the image folder are not
            in ``root``; the message says which file is expected where.
    """
    from torchvision.datasets import Places365  # imported here: torchvision is only needed for this

    root = Path(root)
    if not download and not root.is_dir():
        raise FileNotFoundError(f"Places365 folder not found: {root} (pass download=True to fetch the data)")
    try:
        dataset = Places365(str(root), split=split, small=small, download=download)
    except RuntimeError as error:
        if download:
            raise
        raise FileNotFoundError(
            f"Places365 {split!r} (small={small}) is not in {root}: {error} "
            f"Expected the metadata files (categories_places365.txt, places365_{split.replace('-', '_')}.txt) "
            f"and the extracted image folder there; pass download=True to fetch them."
        ) from error
    images_dir = Path(dataset.images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(
            f"Places365 images not found: expected the extracted folder {images_dir}; "
            f"pass download=True to fetch and extract them."
        )
    files = [Path(path) for path, _ in dataset.imgs]
    return PhotoFolder(images_dir, size, train=train, scale=scale, files=files)
