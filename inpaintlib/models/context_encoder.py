"""Context Encoder generator and its adversarial discriminator (report §3.1, Fig 1; Pathak et al. 2016).

The generator F reads a 128x128 context whose central region is blanked and paints the
central 64x64 patch; the discriminator D tells real patches from painted ones.  Both follow
DCGAN: 4x4 convolutions with stride 2 instead of pooling, batch normalisation, leaky ReLU in
the encoder/discriminator and ReLU in the decoder.

Layer layout, checked against the authors' Torch code (``train.lua`` in
pathak22/context-encoder, run with ``nBottleneck=4000``, the setting the report quotes):

======================  ==============================  ===========
stage                   layer                           output
======================  ==============================  ===========
encoder 1               conv 4x4 s2, 3 -> w, LReLU      w x 64 x 64
encoder 2-5             conv 4x4 s2 + BN + LReLU        8w x 4 x 4
bottleneck              conv 4x4 (no padding) + BN +    4000 x 1 x 1
                        LReLU
decoder 1               tconv 4x4 + BN + ReLU           8w x 4 x 4
decoder 2-4             tconv 4x4 s2 + BN + ReLU        w x 32 x 32
decoder 5               tconv 4x4 s2, w -> 3, tanh      3 x 64 x 64
======================  ==============================  ===========

Where this implementation differs from the Torch original:

* The original zeroes the bias of every (transposed) convolution before each update, so
  its convolutions are bias-free in effect; here they are simply built with ``bias=False``.
* The original fills the blanked region with the mean pixel of its training set; the
  report (and this library) fills it with 0, the mid-grey of the [-1, 1] range.  Filling is
  the caller's job (see ``inpaintlib.train``), the model only checks the input's shape.
* The discriminator returns logits instead of sigmoid probabilities (see
  :class:`ContextDiscriminator`).
* Initialisation is the same: conv weights ~ N(0, 0.02), BN scales ~ N(1, 0.02), BN shifts 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.masks.shapes import center_mask, center_patch_slice
from inpaintlib.models.head import FullResolutionHead, HeadHolder
from inpaintlib.smooth_fill import biharmonic_fill

__all__ = ["ContextEncoder", "ContextDiscriminator", "INPUT_SIZE", "PATCH_SIZE"]

INPUT_SIZE = 128  # side of the context image the generator reads (report §3.1)
PATCH_SIZE = 64  # side of the patch it paints and the discriminator judges
HOLE_SIZE = 56  # side of the centred hole inside the patch (report §4.1)


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN/Pathak initialisation: conv ~ N(0, 0.02), BN scale ~ N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _down(c_in: int, c_out: int, bn: bool = True) -> nn.Sequential:
    """4x4 stride-2 convolution halving the size, optional BN, LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """4x4 stride-2 transposed convolution doubling the size, BN, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _WholeWindowConv2d(nn.Conv2d):
    """A 4x4 convolution without padding applied to a 4x4 map: the bottleneck layer.

    Its kernel covers the whole input, so it is a matrix product; computing it as one
    (``F.linear``) is ~3.5x faster on CPU than the convolution kernels.  Same parameters and
    state dict as ``nn.Conv2d``; other input sizes fall back to the convolution.
    """

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[2:]) != tuple(self.kernel_size):
            return super().forward(x)
        return F.linear(x.flatten(1), self.weight.flatten(1)).view(x.shape[0], -1, 1, 1)  # (N, C_out, 1, 1)


class _FromVectorConvTranspose2d(nn.ConvTranspose2d):
    """A 4x4 transposed convolution (stride 1, no padding) of a 1x1 code: the decoder's first layer.

    With a 1x1 input each output pixel (h, w) is ``sum_c z[c] * W[c, :, h, w]``: a matrix product
    (same parameters and state dict as ``nn.ConvTranspose2d``).
    """

    def forward(self, z: Tensor, output_size: list[int] | None = None) -> Tensor:
        if tuple(z.shape[2:]) != (1, 1) or output_size is not None:
            return super().forward(z, output_size)
        c_out, (kh, kw) = self.weight.shape[1], self.kernel_size
        return (z.flatten(1) @ self.weight.flatten(1)).view(z.shape[0], c_out, kh, kw)  # (N, C_out, 4, 4)


def _check_images(x: Tensor, size: int, who: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (3, size, size):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{who} expects a batch of shape (N, 3, {size}, {size}), got {shape}")


class ContextEncoder(HeadHolder):
    """Generator F of the Context Encoder (report §3.1, Fig 1).

    Args:
        bottleneck: channels of the 1x1 latent code (Pathak's ``nBottleneck``; 4000 in the
            report).
        width: channels of the first encoder layer (Pathak's ``nef``/``ngf``; 64).  The
            encoder uses w, w, 2w, 4w, 8w channels, the decoder mirrors them.

        head_width: channels of an optional :class:`inpaintlib.models.head.FullResolutionHead` on the
            64x64 patch (0, the default: the report's network; not in the report).
        head_fill_iterations: with a head, > 0 makes it read a biharmonic fill of the centre hole and
            blend it in (CG steps per pyramid level).

    ``forward(x)``: ``x`` is ``(N, 3, 128, 128)`` in [-1, 1] with the hole already filled
    with 0; returns the painted central patch ``(N, 3, 64, 64)`` in [-1, 1] (tanh).  A network with a
    head assumes the report's centred 56 px hole.

    See the module docstring for the layer table and the differences from the Torch code.
    """

    def __init__(self, bottleneck: int = 4000, width: int = 64, head_width: int = 0, head_fill_iterations: int = 0) -> None:
        super().__init__()
        if bottleneck < 1 or width < 1:
            raise ValueError(f"bottleneck and width must be positive, got {bottleneck} and {width}")
        if head_width < 0 or (head_fill_iterations and not head_width):
            raise ValueError(f"head_width must be >= 0, and > 0 for head_fill_iterations; got {head_width}")
        self.bottleneck = bottleneck
        self.width = width
        w = width
        self.encoder = nn.Sequential()
        self.encoder.add_module("enc1", _down(3, w, bn=False))  # (N, w, 64, 64)
        self.encoder.add_module("enc2", _down(w, w))  # (N, w, 32, 32)
        self.encoder.add_module("enc3", _down(w, 2 * w))  # (N, 2w, 16, 16)
        self.encoder.add_module("enc4", _down(2 * w, 4 * w))  # (N, 4w, 8, 8)
        self.encoder.add_module("enc5", _down(4 * w, 8 * w))  # (N, 8w, 4, 4)
        self.encoder.add_module(
            "bottleneck",
            nn.Sequential(  # (N, bottleneck, 1, 1)
                _WholeWindowConv2d(8 * w, bottleneck, 4, bias=False),
                nn.BatchNorm2d(bottleneck),
                nn.LeakyReLU(0.2, inplace=True),
            ),
        )
        self.decoder = nn.Sequential()
        self.decoder.add_module(
            "dec1",
            nn.Sequential(  # (N, 8w, 4, 4)
                _FromVectorConvTranspose2d(bottleneck, 8 * w, 4, bias=False),
                nn.BatchNorm2d(8 * w),
                nn.ReLU(inplace=True),
            ),
        )
        self.decoder.add_module("dec2", _up(8 * w, 4 * w))  # (N, 4w, 8, 8)
        self.decoder.add_module("dec3", _up(4 * w, 2 * w))  # (N, 2w, 16, 16)
        self.decoder.add_module("dec4", _up(2 * w, w))  # (N, w, 32, 32)
        self.decoder.add_module(
            "dec5",
            nn.Sequential(  # (N, 3, 64, 64)
                nn.ConvTranspose2d(w, 3, 4, stride=2, padding=1, bias=False),
                nn.Tanh(),
            ),
        )
        _dcgan_init(self)
        self.head = FullResolutionHead(head_width, head_fill_iterations) if head_width else None
        self.register_buffer("hole_mask", center_mask(INPUT_SIZE, HOLE_SIZE)[None], persistent=False)

    def forward(self, x: Tensor, fill: Tensor | None = None) -> Tensor:
        """``fill``: the head's biharmonic fill of the whole 128x128 input in [0, 1] with its hole, when computed
        elsewhere (the ONNX export takes it as an input); None computes it here."""
        _check_images(x, INPUT_SIZE, "ContextEncoder")
        if self.head is None:
            return self.decoder(self.encoder(x))
        pre = self.decoder.dec5[0](self.decoder[:-1](self.encoder(x)))  # (N, 3, 64, 64), before the tanh
        # In [0, 1]: tanh(pre) = 2 * sigmoid(2 * pre) - 1, so the head corrects the logits 2 * pre.
        s = center_patch_slice(INPUT_SIZE, PATCH_SIZE)
        image = (x + 1) / 2  # (N, 3, 128, 128), the hole at 0.5 (never read)
        mask = self.hole_mask.to(image.dtype).expand(x.shape[0], 1, INPUT_SIZE, INPUT_SIZE)
        known = mask[:, :, s, s]  # (N, 1, 64, 64): the 4 px band around the hole
        logits = 2 * pre
        composite = image[:, :, s, s] * known + (1 - known) * torch.sigmoid(logits).to(image.dtype)
        if self.head.fill_iterations and fill is None:
            fill = biharmonic_fill(image * mask, mask, self.head.fill_iterations)
        patch_fill = fill[:, :, s, s] if self.head.fill_iterations else None
        return 2 * self.head.correct(logits, composite, known, patch_fill) - 1


class ContextDiscriminator(nn.Module):
    """Adversarial discriminator D on a 64x64 patch (report §3.1, eq. (4)).

    Four 4x4 stride-2 convolutions (w, 2w, 4w, 8w channels; BN on all but the first;
    LeakyReLU 0.2) bring the patch to 4x4, and a final 4x4 convolution gives one number.

    It returns the *logit* ``l`` of the patch being real, shape ``(N,)``, not the sigmoid
    probability ``D = sigmoid(l)`` of the report.  Training with
    ``torch.nn.functional.binary_cross_entropy_with_logits`` gives exactly the log-loss of
    eq. (4), ``-[y log D + (1 - y) log(1 - D)]``, but computes it as
    ``softplus(-l)`` / ``softplus(l)``, which stays finite and keeps its gradient when the
    discriminator is very sure (``log(sigmoid(l))`` underflows to ``-inf`` in float32 for
    ``l`` below about -88).
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.width = width
        w = width
        self.body = nn.Sequential()
        self.body.add_module("conv1", _down(3, w, bn=False))  # (N, w, 32, 32)
        self.body.add_module("conv2", _down(w, 2 * w))  # (N, 2w, 16, 16)
        self.body.add_module("conv3", _down(2 * w, 4 * w))  # (N, 4w, 8, 8)
        self.body.add_module("conv4", _down(4 * w, 8 * w))  # (N, 8w, 4, 4)
        self.body.add_module("logit", nn.Conv2d(8 * w, 1, 4, bias=False))  # (N, 1, 1, 1)
        _dcgan_init(self)

    def forward(self, patch: Tensor) -> Tensor:
        _check_images(patch, PATCH_SIZE, "ContextDiscriminator")
        return self.body(patch).flatten()  # (N,)
