"""Mask polarity and shape checks, hole ratios and the composite: the one place that says what a valid
mask is (1 = valid, 0 = hole; ``(1, H, W)`` or ``(N, 1, H, W)``). Layers, models, the classical methods,
evaluation and inference all call these checks.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["positive_int", "hole_ratio", "check_binary", "validate_mask", "check_mask_not_degenerate", "check_pair", "composite"]


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _hole_pixels(mask: torch.Tensor) -> torch.Tensor:
    return ~mask if mask.dtype == torch.bool else mask < 0.5


def hole_ratio(mask: torch.Tensor) -> float | torch.Tensor:
    """Fraction of hole pixels (value 0; 1 = valid) in a mask.

    Args:
        mask: ``(H, W)`` or ``(1, H, W)`` for one mask, ``(N, 1, H, W)`` for a batch. Values below
            0.5 count as hole (for a binary mask: exactly the zeros).

    Returns:
        a Python float for one mask, a float64 tensor ``(N,)`` for a batch. The ratio is the exact
        integer count divided by ``H * W``, so it can be compared with bucket limits safely.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 2 or (mask.ndim == 3 and mask.shape[0] == 1):
        if mask.numel() == 0:
            raise ValueError("mask is empty")
        # numpy: no thread-pool wake-up for one small mask (numpy has no bfloat16)
        if mask.device.type == "cpu" and mask.dtype != torch.bfloat16:
            values = mask.detach().numpy()
            holes = ~values if values.dtype == np.bool_ else values < 0.5
            return int(np.count_nonzero(holes)) / mask.numel()
        return int(_hole_pixels(mask).sum()) / mask.numel()
    if mask.ndim == 4 and mask.shape[1] == 1:
        pixels = mask.shape[-2] * mask.shape[-1]
        if pixels == 0:
            raise ValueError("mask is empty")
        counts = _hole_pixels(mask).flatten(1).sum(dim=1)  # (N,) int64
        return counts.to(torch.float64) / pixels
    raise ValueError(f"mask must have shape (H, W), (1, H, W) or (N, 1, H, W); got {tuple(mask.shape)}")


def check_binary(mask: torch.Tensor, name: str = "mask") -> None:
    """Raise ``ValueError`` unless every value of ``mask`` is 0 (hole) or 1 (valid); bool masks pass.

    The value check every mask goes through -- here, in :class:`~inpaintlib.layers.PartialConv2d` and in
    the models -- with a message that counts the offenders and says how to fix them.

    Skipped while ``torch.compile`` traces or ``torch.export``/ONNX exports: a graph cannot branch on a
    tensor's values (it would break the compiled graph in two).  Check masks before calling a compiled
    model; the training engine's masks are binary by construction and ``inpaint`` checks its input.
    """
    if mask.dtype == torch.bool or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return
    ok = mask.eq(0).logical_or_(mask.eq(1))  # in place: one temporary, not two
    if bool(ok.all()):
        return
    bad = ~ok
    n_bad = int(bad.sum())
    example = mask[bad][0].item()
    raise ValueError(
        f"{name} must be binary (1 = valid, 0 = hole): {n_bad} of {mask.numel()} values are "
        f"neither 0 nor 1 (e.g. {example!r}); threshold it, e.g. (mask > 0.5).float()"
    )


def validate_mask(mask: torch.Tensor, like: torch.Tensor | None = None, name: str = "mask") -> None:
    """Check that ``mask`` is a binary mask (1 = valid, 0 = hole) of shape ``(1, H, W)`` or ``(N, 1, H, W)``.

    Args:
        mask: the tensor to check (float, integer or bool).
        like: optional image ``(C, H, W)`` or ``(N, C, H, W)`` the mask will be applied to: the
            spatial sizes must match, and batch sizes too when both are batched (a mask batch of 1
            broadcasts).
        name: how the mask is called in error messages.

    Raises:
        ValueError: not a tensor, wrong number of dimensions or channels, values other than 0 and 1
            (the message counts them), or a size mismatch with ``like``.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if not ((mask.ndim == 3 and mask.shape[0] == 1) or (mask.ndim == 4 and mask.shape[1] == 1)):
        hint = " (add a channel axis with mask[None])" if mask.ndim == 2 else ""
        raise ValueError(
            f"{name} must have shape (1, H, W) or (N, 1, H, W) -- one channel, 1 = valid, 0 = hole; "
            f"got {tuple(mask.shape)}{hint}"
        )
    if mask.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(mask.shape)}")
    check_binary(mask, name)
    if like is not None:
        if not isinstance(like, torch.Tensor) or like.ndim not in (3, 4):
            shape = tuple(like.shape) if isinstance(like, torch.Tensor) else type(like).__name__
            raise ValueError(f"the image for {name} must be a (C, H, W) or (N, C, H, W) tensor, got {shape}")
        if tuple(mask.shape[-2:]) != tuple(like.shape[-2:]):
            raise ValueError(
                f"{name} is {mask.shape[-2]}x{mask.shape[-1]} (HxW) but the image is "
                f"{like.shape[-2]}x{like.shape[-1]}; they must match"
            )
        if mask.ndim == 4 and like.ndim == 4 and mask.shape[0] not in (1, like.shape[0]):
            raise ValueError(
                f"{name} holds {mask.shape[0]} masks but the image batch holds {like.shape[0]} images; "
                f"expected {like.shape[0]} masks or 1"
            )
        if mask.ndim == 4 and like.ndim == 3 and mask.shape[0] != 1:
            raise ValueError(f"{name} holds {mask.shape[0]} masks for a single (C, H, W) image; expected 1")


def check_mask_not_degenerate(mask: torch.Tensor, name: str = "mask") -> None:
    """Raise ``ValueError`` when a mask (1 = valid, 0 = hole) is all hole or has no hole at all.

    An all-hole mask leaves nothing known to inpaint from; an all-valid mask leaves nothing to
    inpaint (hole metrics are then undefined). Kept apart from :func:`validate_mask` so callers such
    as the evaluation can report and skip such masks. For a batch every mask is checked and the
    message names the offending indices. The shape and values are validated first.
    """
    validate_mask(mask, name=name)
    batch = mask if mask.ndim == 4 else mask.unsqueeze(0)
    ratios = hole_ratio(batch)
    all_hole = torch.nonzero(ratios == 1.0).flatten().tolist()
    no_hole = torch.nonzero(ratios == 0.0).flatten().tolist()
    where = (lambda idx: "") if mask.ndim == 3 else (lambda idx: f" (indices {idx[:10]})")
    if all_hole:
        raise ValueError(f"{name} is entirely hole (all 0){where(all_hole)}: no known pixel to inpaint from")
    if no_hole:
        raise ValueError(f"{name} has no hole (all 1 = valid){where(no_hole)}: nothing to inpaint")


def check_pair(image: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Raise ``ValueError`` unless ``image`` is a float (3, H, W) and ``mask`` a binary (1, H, W) with a hole.

    A mask without any hole or without any known pixel has nothing to inpaint from or to, so both are
    refused here rather than producing a meaningless number later. Returns the (H, W) bool hole map.
    The checks run in numpy on purpose: a dozen tiny torch ops cost more than OpenCV's whole fill on a
    busy 2-core machine (each wakes torch's thread pool).
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a float tensor of shape (3, H, W) in [0, 1], got {got}")
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3 or mask.shape[0] != 1:
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a tensor of shape (1, H, W) with 1 = valid, 0 = hole, got {got}")
    if mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"mask is {mask.shape[-1]}x{mask.shape[-2]} (WxH) but the image is "
            f"{image.shape[-1]}x{image.shape[-2]}; they must have the same size"
        )
    m = mask.detach().cpu().numpy()[0]  # (H, W)
    hole = m == 0
    n_hole = int(np.count_nonzero(hole))
    if n_hole + int(np.count_nonzero(m == 1)) != m.size:
        raise ValueError("mask must be binary (only 0 = hole and 1 = valid), found other values")
    if n_hole == 0:
        raise ValueError("mask has no hole (every pixel is valid): nothing to inpaint")
    if n_hole == m.size:
        raise ValueError("mask is all hole (no valid pixel): nothing to inpaint from")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor with values in [0, 1], got dtype {image.dtype}")
    return hole


def composite(prediction: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``image``, hole pixels from ``prediction``: M * I + (1 - M) * P (report §3.2.2).

    Works for single images (C, H, W) with a (1, H, W) mask and for batches (N, C, H, W) with (N, 1, H, W).
    """
    if prediction.shape != image.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and image {tuple(image.shape)} must have the same shape")
    mask = mask.to(device=image.device, dtype=image.dtype)
    return mask * image + (1.0 - mask) * prediction.to(device=image.device, dtype=image.dtype)


