"""Partial convolution, the building block of the PConv U-Net (report §3.2.1, eqs. (6)-(7)).

A partial convolution only looks at the valid (known) inputs inside each window.  It
convolves the masked input, rescales every output by how much of its window was valid,
and hands on an updated mask in which every output that saw at least one valid input is
itself valid.  Applied layer after layer, the hole shrinks until it is gone (report Fig 3).

Mask polarity, as everywhere in inpaintlib: 1 = valid, 0 = hole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.masks.check import check_binary

__all__ = ["PartialConv2d"]


def _count_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class PartialConv2d(nn.Conv2d):
    """2-D partial convolution: a ``torch.nn.Conv2d`` that also takes and returns a mask.

    For every output position with a window of ``N = C_in * kh * kw`` input elements
    ``x_i`` with mask values ``m_i`` (report eq. (6)):

    * if ``sum(m_i) > 0``: ``y = sum(w_i * m_i * x_i) * N / sum(m_i) + b``
    * otherwise: ``y = 0`` (no bias either),

    and the updated mask (report eq. (7)) is 1 where ``sum(m_i) > 0`` and 0 elsewhere.
    Zero padding counts as hole, so borders are renormalised rather than darkened (Fig 3).

    The mask may be shared by all input channels, shape ``(N, 1, H, W)``, or given per
    channel, shape ``(N, C_in, H, W)`` (what a U-Net decoder gets after concatenating a skip
    connection).  A per-channel mask that is an ``expand``-ed single-channel mask is
    recognised from its zero channel stride and costs no more than the shared form.

    Implementation notes (what differs from NVIDIA's public layer):

    * the valid counts come from ONE single-channel convolution with a ``1 x 1 x kh x kw``
      ones kernel (the per-channel mask is summed over channels first), not from a
      ``C_out x C_in`` all-ones convolution that is as costly as the layer itself;
    * counts and ratios are computed in fp32 (fp64 for fp64 inputs) with autocast off, so
      they stay exact under bf16/fp16 autocast; the ratio uses ``count.clamp(min=1)`` times
      the update mask instead of dividing by ``count + 1e-8`` (which is ``count + 0`` in
      fp16, giving inf * 0 = NaN in holes);
    * nothing is cached on the module between calls.

    Only ``groups=1`` and zero padding are supported (the constructor takes neither).

    Input checks: shapes and dtypes are always checked (they cost nothing).  The check that
    a float mask holds only 0 and 1 reads the whole mask and, on a GPU, makes the host wait
    for the device; ``check_mask_values=False`` skips it, for models that validate their
    input mask once and then feed each layer the ``new_mask`` of the one before.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        *,
        check_mask_values: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=1,
            bias=bias,
            padding_mode="zeros",
            device=device,
            dtype=dtype,
        )
        self.check_mask_values = check_mask_values

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.check_mask_values else ", check_mask_values=False")

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """Apply eq. (6) to ``x`` and eq. (7) to ``mask``.

        Args:
            x: input features, shape ``(N, C_in, H, W)``.
            mask: 1 = valid, 0 = hole; shape ``(N, 1, H, W)`` or ``(N, C_in, H, W)``,
                dtype bool or floating point with values in {0, 1}.

        Returns:
            ``(y, new_mask)``: ``y`` of shape ``(N, C_out, H', W')`` and ``new_mask`` of shape
            ``(N, 1, H', W')`` with values 0/1, both in the dtype of the convolution output
            (``x.dtype``, or the autocast dtype under ``torch.autocast``).
        """
        mask = self._checked_mask(x, mask)
        kh, kw = self.kernel_size
        if mask.dtype != torch.bool and mask.dtype != x.dtype:
            mask = mask.to(x.dtype)  # keep x's dtype (bf16 stays bf16 under autocast)
        # Masking before the convolution makes the output blind to whatever lies in the hole.
        if mask.shape[1] > 1:
            with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
                pixels = mask.sum(dim=1, keepdim=True, dtype=_count_dtype(x))  # valid channels per pixel
            return self._convolve(x * mask, pixels, self.in_channels * kh * kw)
        # Every channel shares the mask: N / sum(m_i) = (C_in kh kw) / (C_in * pixel count) = (kh kw) / pixel count.
        return self._convolve(x * mask, mask, kh * kw)

    def forward_premasked(self, x_masked: Tensor, valid_channels: Tensor) -> tuple[Tensor, Tensor]:
        """Eqs. (6)-(7) for an input that is already multiplied by its per-channel mask.

        ``valid_channels`` ``(N, 1, H, W)`` counts, at each pixel, how many of the ``C_in`` input
        channels are valid.  Equal to ``forward(x, mask)`` with ``x_masked = x * mask`` and
        ``valid_channels = mask.sum(1, keepdim=True)``, without building the ``(N, C_in, H, W)`` mask:
        a U-Net decoder knows its mask as two single-channel masks, one for the upsampled path and
        one for the skip connection.  Shapes are checked, the values are trusted.
        """
        if x_masked.dim() != 4 or x_masked.shape[1] != self.in_channels:
            raise ValueError(f"x_masked must have shape (N, {self.in_channels}, H, W), got {tuple(x_masked.shape)}")
        expected = (x_masked.shape[0], 1, *x_masked.shape[2:])
        if tuple(valid_channels.shape) != expected:
            raise ValueError(f"valid_channels must have shape {expected}, got {tuple(valid_channels.shape)}")
        kh, kw = self.kernel_size
        return self._convolve(x_masked, valid_channels, self.in_channels * kh * kw)

    def _convolve(self, x_masked: Tensor, pixels: Tensor, window: int) -> tuple[Tensor, Tensor]:
        """Convolve the masked input, rescale by ``window / count`` (eq. (6)), update the mask (eq. (7)).

        ``pixels`` ``(N, 1, H, W)``: the valid elements per pixel, in units such that a window of
        ``kh x kw`` fully valid pixels counts ``window``.
        """
        # Counting in fp32 keeps window sums exact (bf16 is exact only up to 256, and a
        # 64-channel 3x3 window holds 576 elements); fp64 inputs get fp64 ratios.
        count_dtype = _count_dtype(x_masked)
        kh, kw = self.kernel_size
        with torch.no_grad(), torch.autocast(x_masked.device.type, enabled=False):
            ones = torch.ones(1, 1, kh, kw, dtype=count_dtype, device=pixels.device)
            count = F.conv2d(pixels.to(count_dtype), ones, None, self.stride, self.padding, self.dilation)
            update = count.clamp(max=1)  # eq. (7): counts are whole numbers, so this is 0/1
            ratio = (window / count.clamp(min=1)) * update  # N / sum(m_i), 0 in dead windows

        out = F.conv2d(x_masked, self.weight, None, self.stride, self.padding, self.dilation)
        # In place: the convolution's backward does not need its own output.
        out.mul_(ratio.to(out.dtype))
        update = update.to(out.dtype)
        if self.bias is not None:
            # The bias only where the window saw something: eq. (6)'s "0 otherwise".
            out.addcmul_(self.bias.to(out.dtype).view(1, -1, 1, 1), update)
        return out, update

    def _checked_mask(self, x: Tensor, mask: Tensor) -> Tensor:
        """Validate ``x`` and ``mask``; return the mask, reduced to 1 channel if it is an expanded view."""
        if x.dim() != 4:
            raise ValueError(
                f"PartialConv2d expects x of shape (N, C_in, H, W), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"PartialConv2d expects x with C_in={self.in_channels} channels, "
                f"got {x.shape[1]} (shape {tuple(x.shape)})"
            )
        if mask.dim() != 4:
            raise ValueError(
                "PartialConv2d expects a 4-D mask of shape (N, 1, H, W) or (N, C_in, H, W), "
                f"got shape {tuple(mask.shape)}"
            )
        if mask.shape[0] != x.shape[0]:
            raise ValueError(
                f"mask batch size {mask.shape[0]} does not match x batch size {x.shape[0]}"
            )
        if mask.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"mask spatial size {tuple(mask.shape[2:])} does not match x spatial size "
                f"{tuple(x.shape[2:])}"
            )
        if mask.shape[1] not in (1, self.in_channels):
            raise ValueError(
                f"mask must have 1 channel (shared) or C_in={self.in_channels} channels "
                f"(one per input channel), got {mask.shape[1]}"
            )
        if mask.shape[1] > 1 and mask.stride(1) == 0:
            mask = mask[:, :1]  # an expanded shared mask: count and multiply one channel
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise ValueError(f"mask must be bool or floating point, got dtype {mask.dtype}")
        if self.check_mask_values:
            check_binary(mask)
        return mask
