"""Binary inpainting masks: the Context Encoder's centre square, free-form masks, buckets and PNG I/O.

Polarity, here and in the whole library: **1 = valid (known) pixel, 0 = hole** -- the ``M`` of the
report's eq. (3) and eqs. (6)-(12). A single mask is a float tensor of shape ``(1, H, W)``, a batch
``(N, 1, H, W)``.

Two kinds of mask are used in the report:

* the Context Encoder's deterministic central square (§3.1, §4.1): the network predicts a 64x64 patch
  of a 128x128 image, the hole is the central 56x56 square, and the 4-pixel band between the two is
  known context whose reconstruction error is weighted 10x (the paragraph after eq. (5));
* the Partial-Convolution U-Net's irregular masks, generated afresh for every training sample (§4.2)
  and grouped by hole ratio into the buckets of Liu et al. for evaluation.

The package's modules: :mod:`~inpaintlib.masks.check` (polarity and shape checks, hole ratio, composite),
:mod:`~inpaintlib.masks.shapes` (centre square, irregular masks), :mod:`~inpaintlib.masks.protocol`
(buckets and the evaluation masks) and :mod:`~inpaintlib.masks.png` (files).
"""

from __future__ import annotations

from .check import check_binary, check_mask_not_degenerate, check_pair, composite, hole_ratio, validate_mask
from .png import load_mask_png, save_mask_png
from .protocol import (
    BUCKET_LABELS,
    BUCKETS,
    bucket_label,
    bucket_of,
    bucket_order,
    bucket_sort_key,
    evaluation_assignment,
    evaluation_masks,
)
from .shapes import center_mask, center_patch_slice, irregular_mask, overlap_band_weights

__all__ = [
    "BUCKETS",
    "BUCKET_LABELS",
    "bucket_label",
    "bucket_of",
    "bucket_order",
    "bucket_sort_key",
    "evaluation_assignment",
    "center_mask",
    "center_patch_slice",
    "check_binary",
    "check_mask_not_degenerate",
    "check_pair",
    "composite",
    "evaluation_masks",
    "hole_ratio",
    "irregular_mask",
    "load_mask_png",
    "overlap_band_weights",
    "save_mask_png",
    "validate_mask",
]
