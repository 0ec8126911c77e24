"""The trained PConv U-Net rewritten for inference: the same function with about a third fewer operations.

Two exact rewrites of :class:`~inpaintlib.models.PConvUNet` in eval mode (report §3.2, eqs. (6)-(7)), for the
exported graph that the live demo runs on one WebAssembly thread (issue 27):

* **Batch norm folded.** In eval mode a batch norm is ``y * s + t`` per channel. It follows a partial
  convolution, ``y = conv(x ⊙ m, W) * ratio (+ b * update)``, so ``s`` moves into ``W`` and ``t`` stays as
  one addition: a pass over every feature map less.
* **Sub-pixel decoder.** Each decoder level upsamples its input ``z`` by nearest neighbour and convolves it
  with a 3x3 kernel ``W`` (rows ``W0, W1, W2``). At an output row ``2i`` the kernel's three rows read only two
  rows of ``z``: ``i - 1`` (weight ``W0``) and ``i`` (``W1 + W2``); at ``2i + 1`` rows ``i`` (``W0 + W1``) and
  ``i + 1`` (``W2``); the same for columns. That is a transposed convolution of ``z`` at the LOW resolution,
  stride 2, with the 4x4 kernel whose rows and columns are ``W2, W1 + W2, W0 + W1, W0``: 16 multiply-adds per
  input channel for each 2x2 block of outputs instead of 36, and no upsampled copy of ``z`` is built. The skip
  connection keeps its own 3x3 convolution, and the two halves are added instead of concatenated. The product
  of two nearest-upsampled maps is the upsampled product, so masking at the low resolution (``z = x ⊙ m``) is
  the same as masking after upsampling.

Together they take the stored 256 px U-Net from 5.4 to 4.1 GFLOP per picture (the transposed convolution
also ran faster per operation in onnxruntime-web than the same work as four 2x2 convolutions and a pixel
shuffle: 141 against 152 ms for the whole network on one WebAssembly thread, Node.js, AMD EPYC).

The masks and the rescaling ``ratio`` of eq. (6) are computed exactly as in
:class:`~inpaintlib.layers.PartialConv2d`; the full-resolution head, if any, is used as it is. Outputs
agree with the original to float32 rounding (tests/test_folded.py). Evaluation only: nothing here trains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.models.pconv_unet import PConvUNet

__all__ = ["FoldedPConvUNet"]

# Row u of the 4x4 transposed-convolution kernel (stride 2, padding 1) as a sum of the 3x3 kernel's rows:
# output row 2i reads input rows i - 1 (kernel row 3 = W0) and i (row 1 = W1 + W2), output row 2i + 1 reads
# rows i (row 2 = W0 + W1) and i + 1 (row 0 = W2).
_SUBPIXEL_ROWS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def _count_ratio(pixels: Tensor, kernel: int, stride: int, padding: int, window: int) -> tuple[Tensor, Tensor]:
    """``(ratio, update)`` of eqs. (6)-(7) from the valid elements per pixel (see ``PartialConv2d._convolve``)."""
    ones = torch.ones(1, 1, kernel, kernel, dtype=pixels.dtype, device=pixels.device)
    count = F.conv2d(pixels, ones, None, stride, padding)
    update = count.clamp(max=1)
    return (window / count.clamp(min=1)) * update, update


def _bn_scale_shift(bn: nn.BatchNorm2d | None, channels: int, like: Tensor) -> tuple[Tensor, Tensor | None]:
    """Eval-mode batch norm as ``y * scale + shift`` (``scale`` 1 and ``shift`` None without one)."""
    if bn is None:
        return torch.ones(channels, dtype=like.dtype, device=like.device), None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class _FoldedEncoder(nn.Module):
    """One encoder level: partial conv (stride 2) with the batch norm folded in, then ReLU."""

    def __init__(self, level: nn.Module) -> None:
        super().__init__()
        conv = level.conv
        scale, shift = _bn_scale_shift(level.bn, conv.out_channels, conv.weight)
        self.kernel, self.stride, self.padding = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        self.register_buffer("weight", conv.weight.detach() * scale.detach().view(-1, 1, 1, 1))
        bias = conv.bias if shift is None else None  # a level with batch norm has no bias (pconv_unet)
        self.register_buffer("bias", None if bias is None else bias.detach().view(1, -1, 1, 1))
        self.register_buffer("shift", None if shift is None else shift.detach().view(1, -1, 1, 1))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        ratio, update = _count_ratio(mask, self.kernel, self.stride, self.padding, self.kernel**2)
        y = F.conv2d(x * mask, self.weight, None, self.stride, self.padding) * ratio
        if self.bias is not None:
            y = y + self.bias * update
        if self.shift is not None:
            y = y + self.shift
        return torch.relu(y), update


class _FoldedDecoder(nn.Module):
    """One decoder level: the upsampled input's half of the 3x3 partial conv as a transposed convolution of the
    low-resolution input, the skip connection's half as a 3x3 conv, the batch norm folded in, then
    LeakyReLU(0.2) (the last level: its bias, no batch norm, no activation)."""

    def __init__(self, level: nn.Module) -> None:
        super().__init__()
        conv = level.conv
        self.c_up, self.c_skip = level.c_up, level.c_skip
        c_out = conv.out_channels
        scale, shift = _bn_scale_shift(level.bn, c_out, conv.weight)
        weight = conv.weight.detach() * scale.detach().view(-1, 1, 1, 1)
        w_up, w_skip = weight[:, : self.c_up], weight[:, self.c_up :]
        rows = _SUBPIXEL_ROWS.to(weight)
        # conv_transpose2d's weight is (C_in, C_out, 4, 4)
        self.register_buffer("w_up", torch.einsum("uk,oikl,vl->iouv", rows, w_up, rows).contiguous())
        self.register_buffer("w_skip", w_skip.contiguous())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().view(1, -1, 1, 1))
        self.register_buffer("shift", None if shift is None else shift.detach().view(1, -1, 1, 1))
        self.activate = level.act is not None
        self.window = (self.c_up + self.c_skip) * 9

    def forward(self, x: Tensor, mask: Tensor, skip: Tensor, skip_mask: Tensor) -> tuple[Tensor, Tensor]:
        mask_up = F.interpolate(mask, scale_factor=2.0, mode="nearest")
        ratio, update = _count_ratio(mask_up * self.c_up + skip_mask * self.c_skip, 3, 1, 1, self.window)
        up = F.conv_transpose2d(x * mask, self.w_up, None, stride=2, padding=1)
        y = (up + F.conv2d(skip * skip_mask, self.w_skip, None, 1, 1)) * ratio
        if self.bias is not None:
            y = y + self.bias * update
        if self.shift is not None:
            y = y + self.shift
        return (F.leaky_relu(y, 0.2) if self.activate else y), update


class FoldedPConvUNet(nn.Module):
    """``model`` (a trained :class:`PConvUNet`) as the same function of ``(image, mask[, fill])`` with its batch
    norms folded and a sub-pixel decoder (see the module docstring). Built from the model's current weights and
    running statistics; later changes to ``model`` are not seen, except in its head, which is shared (and, like
    the rest, put in eval mode)."""

    def __init__(self, model: PConvUNet) -> None:
        super().__init__()
        if not isinstance(model, PConvUNet):
            raise ValueError(f"FoldedPConvUNet needs a PConvUNet, got {type(model).__name__}")
        self.multiple = model.multiple
        self.encoders = nn.ModuleList(_FoldedEncoder(level) for level in model.encoders)
        self.decoders = nn.ModuleList(_FoldedDecoder(level) for level in model.decoders)
        self.head = model.head
        self._check_inputs = model._check_inputs
        self.eval()

    # The levels take and return the same (features, mask) pairs as the model's, so the model's own forward
    # (encoder stack, decoders with skips, head and its fill) runs them unchanged.
    forward = PConvUNet.forward
