"""Image-quality metrics of a completion, shared by training (``metrics.json``) and :mod:`inpaintlib.evaluate`.

Images are float tensors in [0, 1]; masks use the library's polarity (1 = valid, 0 = hole).

* PSNR in dB with data range 1: 10 log10(1 / MSE) over all pixels and channels. Two identical images have
  MSE 0 and an infinite PSNR; it is clamped to :data:`PSNR_MAX_DB` = 100 dB so that means over a set stay
  finite (100 dB is an MSE of 1e-10, far below 8-bit quantisation noise, ~59 dB).
* SSIM: torchmetrics' structural similarity map with an 11x11 Gaussian window, sigma 1.5, data range 1,
  averaged without the 5-pixel border (as scikit-image and Wang et al.'s reference code do).
* L1 over the hole: mean |completed - target| over hole pixels and channels, times 100.
* LPIPS (opt-in): torchmetrics' AlexNet LPIPS, only when its backbone weights are available.
* Artefact ratios (:func:`artefact_ratios`): the completion's high-frequency energy in the hole relative to the
  ground truth's, for blur (below 1) and checkerboard or blocky patterns (above 1); not a quality score.
  :func:`artefact_peaks` takes the worst 32x32 square of the hole instead, where the local artefacts of
  Fig. 4.5 show (above 2: the square holds over twice the photo's energy at that frequency).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from inpaintlib.masks import check_pair, composite

__all__ = ["PSNR_MAX_DB", "METRICS", "SSIM_WINDOW", "psnr", "ssim", "l1_hole", "score", "score_batch", "lpips_available",
           "artefact_ratios", "artefact_tiles", "artefact_peaks"]

PSNR_MAX_DB = 100.0
"""PSNR returned for identical images (MSE 0); any PSNR above it is clamped to it."""

METRICS = ("psnr", "ssim", "l1_hole")

SSIM_WINDOW = 11
"""Side of SSIM's Gaussian window: images must be at least this many pixels on each side."""

def _as_batch(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor (C, H, W) or (N, C, H, W), got {got}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    p, single = _as_batch(pred, "prediction")
    t, _ = _as_batch(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    return p.float(), t.float().to(p.device), single


def _out(values: torch.Tensor, single: bool) -> float | torch.Tensor:
    return float(values[0]) if single else values


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float | torch.Tensor:
    """PSNR in dB, data range 1: 10 log10(1 / MSE), clamped to :data:`PSNR_MAX_DB` for identical images.

    (3, H, W) inputs give a float; (N, 3, H, W) give a tensor (N,) with one PSNR per image.
    """
    p, t, single = _pair(pred, target)
    values = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return _out(values.clamp(max=PSNR_MAX_DB), single)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float | torch.Tensor:
    """SSIM with an 11x11 Gaussian window (sigma 1.5), data range 1, averaged over channels and pixels.

    The SSIM map comes from torchmetrics; the 5-pixel border, where the window would reach outside the
    image, is left out of the mean as in Wang et al.'s reference code and scikit-image (torchmetrics
    alone averages over mirrored borders too, which at 64 px shifts SSIM by ~0.03).
    Images must be at least 11 px on each side. (3, H, W) gives a float, (N, 3, H, W) a tensor (N,).
    """
    p, t, single = _pair(pred, target)
    if min(p.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its window), "
                         f"got {tuple(p.shape[-2:])}")
    _, full = structural_similarity_index_measure(
        p, t, gaussian_kernel=True, sigma=1.5, kernel_size=SSIM_WINDOW, data_range=1.0, reduction="none",
        return_full_image=True,
    )  # full: (N, C, H, W) SSIM map
    values = full[..., 5:-5, 5:-5].reshape(full.shape[0], -1).mean(dim=1)
    return _out(values, single)


def l1_hole(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float | torch.Tensor:
    """Mean absolute error over the hole pixels (mask == 0) and all channels, times 100.

    ``mask`` is (1, H, W) for one image or (N, 1, H, W); an image whose mask has no hole raises ValueError.
    """
    p, t, single = _pair(pred, target)
    m, _ = _as_batch(mask, "mask")
    if m.shape[0] != p.shape[0] or m.shape[1] != 1 or m.shape[-2:] != p.shape[-2:]:
        raise ValueError(f"mask must be (1, H, W) / (N, 1, H, W) matching the image, got {tuple(mask.shape)}")
    hole = (m.to(p.device) == 0).float()  # (N, 1, H, W)
    count = hole.sum(dim=(1, 2, 3)) * p.shape[1]  # hole pixels x channels, per image
    if bool((count == 0).any()):
        raise ValueError("l1_hole needs a hole in every mask (some mask has no pixel equal to 0)")
    return _out(((p - t).abs() * hole).sum(dim=(1, 2, 3)) / count * 100.0, single)


def score(completed: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """PSNR, SSIM and hole L1 of one completion, computed on its composite with ``target``'s known pixels."""
    check_pair(target, mask)
    if completed.shape != target.shape:
        raise ValueError(f"completion {tuple(completed.shape)} must have the target's shape {tuple(target.shape)}")
    comp = composite(completed.float().clamp(0, 1), target.float(), mask)
    return {"psnr": psnr(comp, target), "ssim": ssim(comp, target), "l1_hole": l1_hole(comp, target, mask)}


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_CHECKERBOARD = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) / 2  # answers only to the period-2 pattern in x and y


def _hole_energy(images: torch.Tensor, hole: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Mean squared response of a high-pass ``kernel`` (per channel, summed over channels) at hole pixels."""
    k = kernel.to(images)[None, None].expand(images.shape[1], 1, *kernel.shape)
    response = torch.nn.functional.conv2d(images, k, groups=images.shape[1])  # valid: no padding at the border
    r = response.pow(2).sum(dim=1, keepdim=True)
    h = hole[..., : r.shape[-2], : r.shape[-1]]  # each response pixel is placed at its window's top-left corner
    return (r * h).sum(dim=(1, 2, 3)) / h.sum(dim=(1, 2, 3)).clamp(min=1)


def _completion_triplet(completed: torch.Tensor, target: torch.Tensor, mask: torch.Tensor):
    """``(completion, target, mask, single)`` as batches of one size (checked), ``single`` for unbatched input."""
    comp_, single = _as_batch(completed, "completion")
    tgt, _ = _as_batch(target, "target")
    m, _ = _as_batch(mask, "mask")
    if comp_.shape != tgt.shape or m.shape[0] != tgt.shape[0] or m.shape[1] != 1 or m.shape[-2:] != tgt.shape[-2:]:
        raise ValueError(f"completion {tuple(completed.shape)}, target {tuple(target.shape)} and mask "
                         f"{tuple(mask.shape)} must be (N, C, H, W), (N, C, H, W) and (N, 1, H, W) of one size")
    return comp_, tgt, m, single


def artefact_ratios(completed: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """High-frequency energy of the composite in the hole divided by the ground truth's there, per image.

    * ``laplacian``: the 3x3 Laplacian's energy. A faithful completion reads about 1; a blurred one
      (the Context Encoder's L2 mean) below 1; noise, checkerboard or hard block edges above 1.
    * ``checkerboard``: the energy at the highest spatial frequency in both axes (the 2x2 kernel
      [[1, -1], [-1, 1]] / 2), where the stride-2 up/down-sampling artefacts of the U-Net sit (Fig. 4.5).

    Inputs (3, H, W) / (N, 3, H, W) in [0, 1] with masks (1, H, W) / (N, 1, H, W), 1 = known. The hole is
    scored on the composite, so a seam at its border counts. Aggregate ratios over images by their geometric
    mean. Returns tensors of shape (N,) (a 0-d tensor per key for one image).
    """
    comp_, tgt, m, single = _completion_triplet(completed, target, mask)
    hole = (m.to(tgt.device) == 0).float()
    if bool((hole.sum(dim=(1, 2, 3)) == 0).any()):
        raise ValueError("artefact_ratios needs a hole in every mask (some mask has no pixel equal to 0)")
    comp = tgt.float() * (1 - hole) + comp_.float().clamp(0, 1) * hole
    out = {}
    for name, kernel in (("laplacian", _LAPLACIAN), ("checkerboard", _CHECKERBOARD)):
        ratio = _hole_energy(comp, hole, kernel) / _hole_energy(tgt.float(), hole, kernel).clamp(min=1e-12)
        out[name] = ratio[0] if single else ratio
    return out


def _tail(r: torch.Tensor, full: torch.Tensor) -> tuple[int, int, int, int]:
    return (0, full.shape[-1] - r.shape[-1], 0, full.shape[-2] - r.shape[-2])


def artefact_tiles(completed: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, tile: int = 32,
                   min_hole: float = 0.5, floor: float = 1e-4) -> dict[str, torch.Tensor]:
    """:func:`artefact_ratios` per ``tile`` x ``tile`` square of the hole: maps (N, 1, H // tile, W // tile).

    The composite and the truth are cut into non-overlapping squares; in each square with at least
    ``min_hole`` of its pixels in the hole, the completion's high-pass energy at hole pixels is divided by
    the truth's, the latter raised to ``floor`` (a flat sky would otherwise turn a faint ripple into a huge
    ratio). Squares with too little hole hold NaN. Tile (i, j) covers rows i*tile.. and columns j*tile..
    """
    comp_, tgt, m, _ = _completion_triplet(completed, target, mask)
    if tile < 2 or not 0 < min_hole <= 1:
        raise ValueError(f"tile must be >= 2 and min_hole in (0, 1], got {tile} and {min_hole}")
    hole = (m.to(tgt.device) == 0).float()
    comp = tgt.float() * (1 - hole) + comp_.float().clamp(0, 1) * hole
    out = {}
    for name, kernel in (("laplacian", _LAPLACIAN), ("checkerboard", _CHECKERBOARD)):
        sums = []
        for img in (comp, tgt.float()):
            k = kernel.to(img)[None, None].expand(img.shape[1], 1, *kernel.shape)
            r = torch.nn.functional.conv2d(img, k, groups=img.shape[1]).pow(2).sum(dim=1, keepdim=True)
            # each response sits at its window's top-left corner; the last rows/columns have none
            h = torch.nn.functional.pad(hole[..., : r.shape[-2], : r.shape[-1]], _tail(r, hole))
            r = torch.nn.functional.pad(r, _tail(r, hole))
            sums.append(torch.nn.functional.avg_pool2d(r * h, tile, ceil_mode=True))
        share = torch.nn.functional.avg_pool2d(h, tile, ceil_mode=True).clamp(min=1e-12)  # hole share of each square
        ratio = (sums[0] / share) / (sums[1] / share).clamp(min=floor)
        out[name] = torch.where(share >= min_hole, ratio, torch.full_like(ratio, float("nan")))
    return out


def artefact_peaks(completed: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, tile: int = 32,
                   min_hole: float = 0.5, floor: float = 1e-4) -> dict[str, torch.Tensor]:
    """The worst local artefact ratio in the hole: the maximum over squares of :func:`artefact_tiles`.

    The checkerboard and blocks of Fig. 4.5 are local, a few squares of a few large holes; averaged over a
    whole hole (:func:`artefact_ratios`) and a bucket they vanish among blurred squares. The peak reads 1
    when the worst square holds as much detail as the photo, above 2 when some square holds at least twice
    the photo's energy at that frequency: checkerboard (``checkerboard``), block edges or noise
    (``laplacian``). Returns (N,) tensors per key (0-d for one image); NaN where no square qualifies.
    """
    single = completed.ndim == 3
    out = {}
    for name, tiles in artefact_tiles(completed, target, mask, tile, min_hole, floor).items():
        flat = tiles.flatten(1)
        peak = torch.where(flat.isnan(), torch.full_like(flat, float("-inf")), flat).amax(dim=1)
        peak = torch.where(torch.isinf(peak), torch.full_like(peak, float("nan")), peak)
        out[name] = peak[0] if single else peak
    return out


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with at most ``n`` torch CPU threads, restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def score_batch(comps: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Metrics of M composites (M, 3, H, W) of one target at once (one call per metric: cheaper than M).

    Runs single-threaded: these small CPU ops gain nothing from a thread pool, and on a busy shared CPU
    waking one costs more than the work (SSIM of a 64 px image: ~4 ms on one thread, ~120 ms on two).
    """
    targets = target[None].expand_as(comps)
    masks_ = mask[None].expand(comps.shape[0], *mask.shape)
    with torch_threads(1):
        return {"psnr": psnr(comps, targets), "ssim": ssim(comps, targets), "l1_hole": l1_hole(comps, targets, masks_)}


def lpips_available(download: bool | None = None) -> tuple[bool, str]:
    """Whether LPIPS can run: torchmetrics' linear layers plus torchvision's AlexNet weights in the torch hub cache.

    The weights are downloaded into the cache (``$TORCH_HOME/hub/checkpoints``) only when ``download`` is
    True (``evaluate --lpips``), or when it is None and ``INPAINTLIB_LPIPS=download`` (set by the Colab setup).
    Returns ``(available, note)``; the note says what to pre-fill when the download is impossible.
    """
    if download is None:
        download = os.environ.get("INPAINTLIB_LPIPS") == "download"
    try:
        import torchvision  # only to name the AlexNet weights file: LPIPS is opt-in

        url = torchvision.models.AlexNet_Weights.DEFAULT.url
    except Exception as err:  # pragma: no cover - torchvision is a dependency
        return False, f"LPIPS skipped: torchvision AlexNet weights unknown ({err})"
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not cached.is_file() and download:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), progress=False)  # atomic: temp file, then rename
        except Exception as err:
            return False, (f"LPIPS needs torchvision's AlexNet weights, which could not be downloaded from {url} "
                           f"({type(err).__name__}: {err}). Offline, copy that file to {cached} (set TORCH_HOME to "
                           "choose the folder; the file goes in $TORCH_HOME/hub/checkpoints/)")
    if not cached.is_file():
        return False, (f"LPIPS skipped: AlexNet weights ({cached.name}) not in the torch hub cache; "
                       "`evaluate --lpips` downloads them")
    return True, f"LPIPS (AlexNet, torchmetrics) computed with the cached weights {cached.name}"


def lpips_scorer(device: str | torch.device) -> Callable[[torch.Tensor, torch.Tensor], float]:
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity  # opt-in metric: loaded on demand

    metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).to(device).eval()

    def lpips(pred: torch.Tensor, target: torch.Tensor) -> float:
        with torch.no_grad():
            return float(metric(pred[None].to(device), target[None].to(device)))

    return lpips
