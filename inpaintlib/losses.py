"""Training losses of both models.

* Context Encoder (report §3.1.1): masked L2 reconstruction with a heavier border band
  (eq. (3)), the adversarial log-loss (eq. (4)) and their 0.999 / 0.001 mix (eq. (5)).
* PConv U-Net (report §3.2.2): per-pixel L1 on hole and valid pixels, perceptual and style
  losses on VGG16 features (eqs. (8)-(10)), total variation around the hole (eq. (11)) and
  their weighted sum (eq. (12)).

Each report equation is one function here, and training calls these very functions. The VGG16
feature extractor the perceptual and style terms need lives in :mod:`inpaintlib.vgg`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.masks import overlap_band_weights

__all__ = [
    "context_encoder_reconstruction_loss",
    "context_encoder_generator_loss",
    "context_encoder_discriminator_loss",
    "discriminator_half_loss",
    "pixel_losses",
    "perceptual_loss",
    "style_losses",
    "hole_total_variation",
    "gram_matrix",
    "PConvLoss",
    "DEFAULT_PCONV_WEIGHTS",
]


# --------------------------------------------------------------------------------------
# Context Encoder (report §3.1.1)
# --------------------------------------------------------------------------------------


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
    weights = overlap_band_weights(pred_patch.shape[-1], overlap, overlap_weight).to(pred_patch.device)  # (1, S, S)
    squared = (pred_patch.float() - real_patch.float()).square()
    return _mean(squared * weights)


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
    adv = discriminator_half_loss(fake_logits, real=True)  # the generator wants D to say "real"
    return {"rec": rec, "adv": adv, "total": rec_weight * rec + adv_weight * adv}


def discriminator_half_loss(logits: Tensor, real: bool) -> Tensor:
    """One side of eq. (4) as a loss to minimise: ``-log D(x)`` for real patches (``real=True``) or
    ``-log(1 - D(F(M ⊙ x)))`` for generated ones, i.e. binary cross-entropy from logits against label 1
    or 0, averaged over the batch, in float32. Training back-propagates each side right after its own
    discriminator pass (DistributedDataParallel needs each forward paired with its backward)."""
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def context_encoder_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """The discriminator's side of eq. (4): ``-[log D(x) + log(1 - D(F(M ⊙ x)))]`` averaged over the batch.

    The two halves come from :func:`discriminator_half_loss` (pass ``fake_logits`` computed on detached
    patches); like Pathak's ``errD`` the total is their sum. Also returns ``accuracy``: the share of the
    ``2N`` patches on the right side of 0.5 (report Fig 5), without gradient.
    """
    real = discriminator_half_loss(real_logits, real=True)
    fake = discriminator_half_loss(fake_logits, real=False)
    with torch.no_grad():
        correct = (real_logits > 0).float().sum() + (fake_logits < 0).float().sum()
        accuracy = correct / (real_logits.numel() + fake_logits.numel())
    return {"real": real, "fake": fake, "total": real + fake, "accuracy": accuracy}


# --------------------------------------------------------------------------------------
# PConv U-Net loss (report eqs. (8)-(12))
# --------------------------------------------------------------------------------------


def _mean(t: Tensor) -> Tensor:
    """``t.mean()`` as a sum divided by the count: the same number. Its backward is one multiply, while
    ``mean``'s expands and divides a broadcast gradient, several times slower on a CPU for channels-last
    feature maps; over a whole training step the gain is within noise (bench/RESULTS.md, ablation)."""
    return t.sum() / t.numel()


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
        f = feat.float()
        if f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous():
            # (N, HW, C) is a view of a channels-last map: no copy, and the gradient comes back
            # channels-last too, so the VGG backward needs no layout conversion.
            f = f.permute(0, 2, 3, 1).reshape(n, h * w, c)
            return torch.bmm(f.transpose(1, 2), f) / (c * h * w)  # (N, C, C)
        f = f.reshape(n, c, h * w)  # (N, C, HW)
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

        out, gt, valid_px = output.float(), target.float(), mask.float()
        comp = valid_px * gt + (1.0 - valid_px) * out  # x_comp: known pixels restored
        terms = pixel_losses(out, gt, valid_px)
        wt = self.weights
        if wt["perceptual"] == 0 and wt["style"] == 0:  # VGG terms switched off: skip the costly passes
            zero = out.new_zeros(())
            terms.update(perceptual=zero, style_out=zero, style_comp=zero)
        else:
            feats_out, feats_comp = zip(*(f.chunk(2) for f in self.features(torch.cat([out, comp]))))  # one pass
            with torch.no_grad():
                feats_gt = self.features(gt)  # a fixed target: no gradient needed
            terms["perceptual"] = perceptual_loss(feats_out, feats_comp, feats_gt)
            terms.update(style_losses(feats_out, feats_comp, feats_gt))
        terms["tv"] = hole_total_variation(comp, 1.0 - valid_px)
        terms["total"] = (
            wt["valid"] * terms["valid"]
            + wt["hole"] * terms["hole"]
            + wt["perceptual"] * terms["perceptual"]
            + wt["style"] * (terms["style_out"] + terms["style_comp"])
            + wt["tv"] * terms["tv"]
        )  # eq. (12)
        return terms


def pixel_losses(output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """L_valid and L_hole of eq. (12) (report §3.2.2): ``|M ⊙ (x_out - x)|`` and ``|(1 - M) ⊙ (x_out - x)|``,
    each summed and divided by the number of elements ``N * 3 * H * W`` (the report's N_x)."""
    diff = (output - target).abs()
    return {"valid": _mean(mask * diff), "hole": _mean((1.0 - mask) * diff)}


def perceptual_loss(feats_out, feats_comp, feats_gt) -> Tensor:
    """Eq. (8): over the VGG pooling layers, mean |Φ(x_out) - Φ(x)| plus mean |Φ(x_comp) - Φ(x)|
    (each a mean over all ``N * C * H * W`` feature elements), in float32."""
    total = feats_gt[0].new_zeros((), dtype=torch.float32)
    for f_out, f_comp, f_gt in zip(feats_out, feats_comp, feats_gt):
        f_gt = f_gt.float()
        total = total + _mean((f_out.float() - f_gt).abs()) + _mean((f_comp.float() - f_gt).abs())
    return total


def style_losses(feats_out, feats_comp, feats_gt) -> dict[str, Tensor]:
    """Eqs. (9)-(10): over the layers, mean |G(Φ(x_out)) - G(Φ(x))| (``style_out``) and the same for
    ``x_comp`` (``style_comp``), with :func:`gram_matrix` normalised by ``C H W``; the mean runs over
    the ``N * C * C`` entries."""
    out = comp = feats_gt[0].new_zeros((), dtype=torch.float32)
    for f_out, f_comp, f_gt in zip(feats_out, feats_comp, feats_gt):
        g_gt = gram_matrix(f_gt)
        out = out + _mean((gram_matrix(f_out) - g_gt).abs())
        comp = comp + _mean((gram_matrix(f_comp) - g_gt).abs())
    return {"style_out": out, "style_comp": comp}


def hole_total_variation(comp: Tensor, hole: Tensor) -> Tensor:
    """Eq. (11): total variation of ``comp`` over pixel pairs inside the 1-px dilated hole ``P`` (``hole``
    is 1 in the hole), summed and divided by ``N * 3 * H * W``."""
    region = F.max_pool2d(hole, kernel_size=3, stride=1, padding=1)  # P, (N, 1, H, W)
    pairs_h = region[..., :, 1:] * region[..., :, :-1]  # both neighbours in P
    pairs_v = region[..., 1:, :] * region[..., :-1, :]
    tv_h = (pairs_h * (comp[..., :, 1:] - comp[..., :, :-1]).abs()).sum()
    tv_v = (pairs_v * (comp[..., 1:, :] - comp[..., :-1, :]).abs()).sum()
    return (tv_h + tv_v) / comp.numel()
