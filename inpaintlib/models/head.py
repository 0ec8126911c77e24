"""A small full-resolution head that corrects a network's output, and can blend in a biharmonic fill
(not in the report).

Both networks of the report produce their final pixels from coarse features: the PConv U-Net's only
full-resolution layer is one linear 3x3 partial convolution after a 7x7 stride-2 first layer, and the
Context Encoder paints its patch from a 4000-number code.  Thin holes and smooth photos, where diffusion is
near perfect, show it (``bench/small_holes.py``, issue 18).  :class:`FullResolutionHead` works at the
output's full resolution, on inputs that have no holes, so plain convolutions suffice:

* without a fill (``fill_iterations = 0``) it reads the composite (known pixels, the network's prediction in
  the hole) and the mask, and returns a correction of the network's logits;
* with a fill it also reads a biharmonic fill of the hole (:func:`inpaintlib.smooth_fill.biharmonic_fill`)
  and the share of known pixels around each pixel, and returns a gate as well: the output is
  ``sigmoid((1 - g) * logits + g * logit(fill) + correction)``, so where the fill is better the network
  can take it, and correct it too.

The head's last convolution starts at zero: a head without a fill then changes nothing, one with a fill
starts as an even blend (``g = 0.5``).  :func:`freeze_all_but_head` trains the head alone on a trained
network (``--head-only``): a step costs a forward pass of the network, not a backward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FullResolutionHead", "HeadHolder", "freeze_all_but_head", "known_share"]

# The fill enters the blend as a logit; its values are clipped this far from 0 and 1 first.
_FILL_LOGIT_EPS = 1e-3
_KNOWN_SHARE_WINDOW = 31  # side of the window whose share of known pixels the head with a fill reads


def _window_sums(x: Tensor, window: int, dim: int) -> Tensor:
    """Sums of ``window`` consecutive values along ``dim`` (2 or 3), centred, zeros outside: by a running sum."""
    half = window // 2
    pad = (0, 0, half + 1, half) if dim == 2 else (half + 1, half, 0, 0)
    running = torch.cumsum(F.pad(x, pad), dim)
    n = x.shape[dim]
    return running.narrow(dim, window, n) - running.narrow(dim, 0, n)


def known_share(mask: Tensor, window: int) -> Tensor:
    """Share of known pixels (mask 1) in the ``window`` x ``window`` square around each pixel, counting only
    the squares' pixels inside the image: ``avg_pool2d(mask, window, stride=1, padding=window // 2,
    count_include_pad=False)`` for odd ``window``. Computed from running sums in float32 (exact for 0/1 masks
    of any size), which costs a tenth of the pooling in onnxruntime (the live demo runs this head)."""
    both = torch.cat([mask.float(), torch.ones_like(mask[:1], dtype=torch.float32)], dim=0)
    sums = _window_sums(_window_sums(both, window, 2), window, 3)
    return sums[:-1] / sums[-1:]


class FullResolutionHead(nn.Module):
    """Three 3x3 convolutions at the output's resolution (width channels; the middle one dilated by 2, so
    the head sees 9x9 pixels; replicate padding) that correct a network's output.

    ``forward(composite, mask, fill=None)``: ``composite`` ``(N, 3, H, W)`` in [0, 1], ``mask``
    ``(N, 1, H, W)`` (1 = known), and with ``fill_iterations > 0`` the biharmonic ``fill`` ``(N, 3, H, W)``.
    Returns ``(N, 3, H, W)`` (a logit correction) or, with a fill, ``(N, 4, H, W)`` (correction, gate
    logit); :meth:`correct` applies them.
    """

    def __init__(self, width: int, fill_iterations: int = 0) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"head width must be >= 1, got {width}")
        if fill_iterations < 0:
            raise ValueError(f"fill_iterations must be >= 0 (0 = no biharmonic fill), got {fill_iterations}")
        self.fill_iterations = fill_iterations
        conv = lambda c_in, c_out, dilation=1: nn.Conv2d(  # noqa: E731
            c_in, c_out, 3, padding=dilation, dilation=dilation, padding_mode="replicate"
        )
        c_in, c_out = (8, 4) if fill_iterations else (4, 3)
        self.layers = nn.Sequential(
            conv(c_in, width), nn.LeakyReLU(0.2, inplace=True),
            conv(width, width, dilation=2), nn.LeakyReLU(0.2, inplace=True),
            conv(width, c_out),
        )  # fmt: skip
        with torch.no_grad():
            self.layers[-1].weight.zero_()
            self.layers[-1].bias.zero_()

    def forward(self, composite: Tensor, mask: Tensor, fill: Tensor | None = None) -> Tensor:
        mask = mask.to(composite.dtype)
        inputs = [composite, mask]
        if self.fill_iterations:
            if fill is None:
                raise ValueError("this head reads a biharmonic fill: pass fill=")
            known = known_share(mask, _KNOWN_SHARE_WINDOW).to(composite.dtype)
            inputs += [fill.to(composite.dtype), known]
        return self.layers(torch.cat(inputs, dim=1))

    def correct(self, logits: Tensor, composite: Tensor, mask: Tensor, fill: Tensor | None = None) -> Tensor:
        """The network's corrected output in [0, 1] from its ``logits`` ``(N, 3, H, W)`` (before the sigmoid)."""
        out = self(composite, mask, fill)
        if fill is None:
            return torch.sigmoid(logits + out.to(logits.dtype))
        correction, gate = out.float().split([3, 1], dim=1)
        gate = torch.sigmoid(gate)  # (N, 1, H, W); the blend runs in float32 even under autocast
        blend = (1 - gate) * logits.float() + gate * torch.logit(fill.float(), eps=_FILL_LOGIT_EPS)
        return torch.sigmoid(blend + correction).to(logits.dtype)


class HeadHolder(nn.Module):
    """Base of the networks that may carry a ``head``: after :func:`freeze_all_but_head`, ``train()`` keeps
    every other part in eval mode (its batch norms use and keep their running statistics)."""

    head: FullResolutionHead | None
    body_frozen = False

    def train(self, mode: bool = True) -> HeadHolder:
        super().train(mode)
        if self.body_frozen:
            for name, child in self.named_children():
                if name != "head":
                    child.eval()
        return self


def freeze_all_but_head(model: HeadHolder) -> None:
    """Train only the head: every other parameter gets ``requires_grad=False`` and every other batch norm
    stays in eval mode, also after ``model.train()``.  Not part of the state dict: call it again after
    rebuilding the model.  Hand the optimizer ``[p for p in model.parameters() if p.requires_grad]``."""
    if not isinstance(model, HeadHolder) or model.head is None:
        raise ValueError("freeze_all_but_head needs a network with a head (head_width > 0): nothing would be trained")
    model.body_frozen = True
    for name, child in model.named_children():
        if name != "head":
            child.requires_grad_(False)
    model.train(model.training)
