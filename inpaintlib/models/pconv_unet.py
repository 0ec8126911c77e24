"""U-Net with partial convolutions for irregular holes (report §3.2, Fig 2; Liu et al. 2018).

Every convolution is an :class:`inpaintlib.layers.PartialConv2d`, so the network only ever
reads valid pixels, and each layer hands an updated mask to the next (eqs. (6)-(7)).

Layout for ``L`` levels (``L = 7`` at 256 px, ``8`` at 512 px as in Liu et al.):

* encoder level ``i = 1..L``: partial conv with stride 2 (kernels 7, 5, 5, 3, 3, ...;
  channels w, 2w, 4w, 8w, 8w, ...), batch norm on every level but the first, ReLU;
* decoder level ``i = L..1``: nearest-neighbour x2 upsampling of the features *and* of the
  mask, concatenation with the skip connection (the output of encoder level ``i - 1``, or
  the input image for ``i = 1``) and its mask, a 3x3 partial conv, batch norm and
  LeakyReLU(0.2); the last level maps to 3 channels with no batch norm, then a sigmoid
  (images live in [0, 1], report §3.2).

After the concatenation, features from the upsampled path and from the skip connection
have different masks, so the decoder's partial convolutions get a per-channel mask
``(N, C_up + C_skip, H, W)``.

Optional, not in the report: ``head_width > 0`` adds a full-resolution head
(:class:`inpaintlib.models.head.FullResolutionHead`) after the last decoder level; see there for why.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.layers import PartialConv2d
from inpaintlib.models.head import FullResolutionHead, HeadHolder
from inpaintlib.masks.check import check_binary
from inpaintlib.smooth_fill import biharmonic_fill

__all__ = ["PConvUNet", "freeze_encoder_batchnorm", "default_layers"]

# The last layer starts with weights this much smaller than PyTorch's default, so the
# sigmoid begins near 0.5 with a useful gradient instead of saturating where the partial
# convolution's renormalisation (up to k*k*C / count) inflates its input near the hole.
_LAST_LAYER_INIT_SCALE = 0.1


def default_layers(image_size: int) -> int:
    """Number of U-Net levels for square images of side ``image_size``: log2(size) - 1.

    The bottleneck is then 2x2 (64 px: 5, 128 px: 6, 256 px: 7, 512 px: 8 — Liu et al. use
    8 at 512 px).
    """
    if image_size < 4 or image_size & (image_size - 1):
        raise ValueError(
            f"image_size={image_size} is not a power of two >= 4; give the number of levels explicitly "
            "(--layers on the command line, layers= in Python; the side must be a multiple of 2**layers)"
        )
    return int(math.log2(image_size)) - 1


def _encoder_plan(layers: int, width: int) -> list[tuple[int, int]]:
    """(kernel, channels) of each encoder level, Liu et al.'s schedule extended or cut to ``layers``."""
    kernels = [7, 5, 5] + [3] * max(0, layers - 3)
    channels = [width, 2 * width, 4 * width] + [8 * width] * max(0, layers - 3)
    return list(zip(kernels[:layers], channels[:layers]))


class _EncoderLevel(nn.Module):
    """Partial conv (stride 2) + optional BN + ReLU; maps (x, mask) to (x', mask') at half size."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bn: bool) -> None:
        super().__init__()
        # A bias right before BN is cancelled by BN's mean subtraction: leave it out.
        self.conv = PartialConv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=not bn, check_mask_values=False)
        self.bn = nn.BatchNorm2d(c_out) if bn else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x, mask = self.conv(x, mask)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x), mask


class _DecoderLevel(nn.Module):
    """Upsample x2, concatenate the skip connection, 3x3 partial conv, optional BN, activation."""

    def __init__(self, c_up: int, c_skip: int, c_out: int, last: bool) -> None:
        super().__init__()
        self.c_up, self.c_skip = c_up, c_skip
        self.conv = PartialConv2d(c_up + c_skip, c_out, 3, stride=1, padding=1, bias=last, check_mask_values=False)
        self.bn = None if last else nn.BatchNorm2d(c_out)
        self.act = None if last else nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor, mask: Tensor, skip: Tensor, skip_mask: Tensor) -> tuple[Tensor, Tensor]:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (N, C_up, H, W)
        mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")  # (N, 1, H, W)
        skip_mask = skip_mask.to(mask.dtype)
        # Each channel keeps the mask of the path it came from.  The (N, C_up + C_skip, H, W) mask is
        # never built: each path is masked by its own single-channel mask, and the valid channels per
        # pixel are C_up * mask + C_skip * skip_mask.
        x = torch.cat([x * mask, skip.to(x.dtype) * skip_mask], dim=1)  # (N, C_up + C_skip, H, W)
        with torch.no_grad():
            valid_channels = mask.float() * self.c_up + skip_mask.float() * self.c_skip
        x, mask = self.conv.forward_premasked(x, valid_channels)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x, mask


class PConvUNet(HeadHolder):
    """Partial-convolution U-Net of Liu et al. (report §3.2, Fig 2).

    Args:
        image_size: side of the training images; only used to pick the default number of
            levels and as the size shown by ``inpaintlib.models.layer_table``.  The network is fully
            convolutional: any ``H, W`` that are multiples of ``2**layers`` work.
        layers: number of encoder (and decoder) levels; ``None`` gives
            ``log2(image_size) - 1`` (see :func:`default_layers`).
        width: channels of the first level (64 in the paper); deeper levels use up to 8x.
        head_width: channels of the optional :class:`FullResolutionHead` (0, the default, is the
            report's network without it).
        head_fill_iterations: with a head, > 0 makes it read a biharmonic fill and blend it in
            (CG steps per pyramid level; see :class:`FullResolutionHead`).

    ``forward(image, mask)``: ``image`` ``(N, 3, H, W)`` in [0, 1], ``mask`` ``(N, 1, H, W)``
    (or ``(1, 1, H, W)``, shared by the batch), 1 = valid, 0 = hole, float or bool.
    Returns ``x_out`` ``(N, 3, H, W)`` in [0, 1], the network's prediction *everywhere*; the
    composite ``mask * image + (1 - mask) * x_out`` is the inpainted picture.  Pixels under
    the hole are zeroed on entry and never read, so the output does not depend on them.

    Call :func:`freeze_encoder_batchnorm` before the fine-tuning phase (report §4.2).
    """

    def __init__(
        self, image_size: int = 256, layers: int | None = None, width: int = 64, head_width: int = 0,
        head_fill_iterations: int = 0,
    ) -> None:
        super().__init__()
        if layers is None:
            layers = default_layers(image_size)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if head_width < 0:
            raise ValueError(f"head_width must be >= 0 (0 = no head), got {head_width}")
        if image_size % (2**layers):
            raise ValueError(
                f"image_size={image_size} is not a multiple of 2**layers = {2**layers}; "
                f"use a smaller layers= (--layers) or a size such as {2**layers * max(1, image_size // 2**layers)}"
            )
        self.image_size = image_size
        self.layers = layers
        self.width = width
        self.head_width = head_width
        self.encoder_bn_frozen = False

        plan = _encoder_plan(layers, width)
        self.encoders = nn.ModuleList()
        c_in = 3
        for i, (kernel, c_out) in enumerate(plan):
            self.encoders.append(_EncoderLevel(c_in, c_out, kernel, bn=i > 0))
            c_in = c_out

        # decoders[i] undoes encoders[i]: it sees the output of the level below and the
        # input of encoders[i] (the image for i = 0), and returns that input's channel count.
        skips = [3] + [c for _, c in plan[:-1]]
        self.decoders = nn.ModuleList(
            _DecoderLevel(c_up=plan[i][1], c_skip=skips[i], c_out=skips[i], last=i == 0) for i in range(layers)
        )
        with torch.no_grad():
            self.decoders[0].conv.weight.mul_(_LAST_LAYER_INIT_SCALE)
        if head_fill_iterations and not head_width:
            raise ValueError("head_fill_iterations needs a head: give head_width > 0 as well")
        self.head = FullResolutionHead(head_width, head_fill_iterations) if head_width else None

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (``2**layers``)."""
        return 2**self.layers

    def forward(self, image: Tensor, mask: Tensor, fill: Tensor | None = None) -> Tensor:
        """``fill``: the head's biharmonic fill of ``image * mask`` when computed elsewhere (the ONNX export takes
        it as an input); None computes it here."""
        mask = self._check_inputs(image, mask)
        m_in = mask = mask.to(image.dtype)
        x_in = image * mask  # x_in = M ⊙ x: the hole's content never enters the network
        stack = [(x_in, mask)]  # (features, mask) at the input of each encoder level
        for enc in self.encoders:
            stack.append(enc(*stack[-1]))
        x, mask = stack.pop()
        for dec in reversed(self.decoders):
            skip, skip_mask = stack.pop()
            x, mask = dec(x, mask, skip, skip_mask)
        if self.head is None:
            return torch.sigmoid(x)
        composite = x_in + (1 - m_in) * torch.sigmoid(x).to(x_in.dtype)
        if self.head.fill_iterations and fill is None:
            fill = biharmonic_fill(x_in, m_in, self.head.fill_iterations)
        return self.head.correct(x, composite, m_in, fill if self.head.fill_iterations else None)

    def train(self, mode: bool = True) -> PConvUNet:
        """Like ``nn.Module.train``, but frozen encoder BN layers stay in eval mode (report §4.2), and so does
        everything but the head after :func:`inpaintlib.models.freeze_all_but_head`."""
        super().train(mode)
        if self.encoder_bn_frozen:
            for bn in self._encoder_batchnorms():
                bn.eval()
        return self

    def _encoder_batchnorms(self) -> list[nn.BatchNorm2d]:
        return [enc.bn for enc in self.encoders if enc.bn is not None]

    def _check_inputs(self, image: Tensor, mask: Tensor) -> Tensor:
        if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"PConvUNet expects image of shape (N, 3, H, W), got {shape}")
        n, _, h, w = image.shape
        m = self.multiple
        if h % m or w % m:
            raise ValueError(
                f"PConvUNet with {self.layers} levels needs H and W that are multiples of 2**{self.layers} = {m} "
                f"(e.g. {m}, {2 * m}, {3 * m}, {4 * m}); got {h}x{w}. Crop or pad the image, "
                "or build the model with fewer layers"
            )
        if not isinstance(mask, Tensor) or mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != image.shape[2:]:
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"PConvUNet expects mask of shape (N, 1, {h}, {w}) (1 = valid, 0 = hole), got {shape}")
        # The 0/1 check runs once here rather than in each of the ~15 partial convs (one host sync
        # per layer on a GPU); inner layers receive masks that eq. (7) makes binary by construction.
        # (check_binary is skipped while compiling or exporting: a graph cannot branch on the mask's values.)
        check_binary(mask)
        if mask.shape[0] != n:
            if mask.shape[0] != 1:
                raise ValueError(f"mask batch size {mask.shape[0]} does not match image batch size {n} (or 1)")
            mask = mask.expand(n, 1, h, w)
        return mask


def freeze_encoder_batchnorm(model: PConvUNet) -> None:
    """Freeze the encoder's batch norms for fine-tuning (report §4.2, Liu et al. §4).

    Holes bias the batch statistics of the encoder, whose inputs still contain zeroed
    pixels, so the second training phase keeps those statistics fixed: every encoder BN is
    put in eval mode (running mean/variance are used and no longer updated) and its scale
    and shift get ``requires_grad=False``.  The model remembers this, so a later
    ``model.train()`` keeps them in eval mode.  Decoder BNs are untouched.  Hand the
    optimizer ``[p for p in model.parameters() if p.requires_grad]``.  The flag is not part
    of the state dict: call this again after rebuilding the model from a checkpoint.
    """
    if not isinstance(model, PConvUNet):
        raise ValueError(f"freeze_encoder_batchnorm expects a PConvUNet, got {type(model).__name__}")
    model.encoder_bn_frozen = True
    for bn in model._encoder_batchnorms():
        bn.eval()
        for p in bn.parameters():
            p.requires_grad_(False)
