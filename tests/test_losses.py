"""Losses of both models (report eqs. (3)-(5) and (8)-(12)) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib.losses import (
    DEFAULT_PCONV_WEIGHTS,
    PConvLoss,
    context_encoder_discriminator_loss,
    context_encoder_generator_loss,
    context_encoder_reconstruction_loss,
    gram_matrix,
)

# ---------------------------------------------------------------------------------------
# Context Encoder
# ---------------------------------------------------------------------------------------


def _band_weights_by_loops(size: int, overlap: int, weight: float) -> np.ndarray:
    w = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            distance_to_edge = min(i, j, size - 1 - i, size - 1 - j)
            w[i, j] = weight if distance_to_edge < overlap else 1.0
    return w


@pytest.mark.parametrize("overlap, weight", [(4, 10.0), (2, 3.0), (0, 10.0)])
def test_context_encoder_reconstruction_loss_matches_explicit_weight_map(overlap, weight):
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    real = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    w = _band_weights_by_loops(16, overlap, weight)
    expected = float((w[None, None] * (pred.numpy().astype(np.float64) - real.numpy()) ** 2).mean())
    got = context_encoder_reconstruction_loss(pred, real, overlap=overlap, overlap_weight=weight)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_context_encoder_band_pixel_costs_ten_times_an_inner_pixel():
    real = torch.zeros(1, 3, 64, 64)
    in_band = real.clone()
    in_band[0, 0, 3, 30] = 1.0  # row 3: inside the 4-px band
    inner = real.clone()
    inner[0, 0, 4, 30] = 1.0  # row 4: first row inside
    band_loss = context_encoder_reconstruction_loss(in_band, real)
    inner_loss = context_encoder_reconstruction_loss(inner, real)
    assert band_loss.item() == pytest.approx(10 * inner_loss.item())
    assert inner_loss.item() == pytest.approx(1 / (3 * 64 * 64))  # divided by the element count
    # A uniform error e costs e^2 * mean(W) = (960 * 10 + 3136) / 4096.
    uniform = context_encoder_reconstruction_loss(torch.full_like(real, 0.5), real)
    assert uniform.item() == pytest.approx(0.25 * (960 * 10 + 3136) / 4096)


def test_context_encoder_reconstruction_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="same square shape"):
        context_encoder_reconstruction_loss(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="overlap"):
        context_encoder_reconstruction_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), overlap=4)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.log1p(np.exp(-x))


def test_context_encoder_generator_loss_is_eq5_with_non_saturating_adversarial_term():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    real = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    logits = torch.tensor([-2.0, 0.5, 3.0])
    out = context_encoder_generator_loss(pred, real, logits)
    adv = float(-_log_sigmoid(logits.double().numpy()).mean())  # -log D(F(x))
    rec = context_encoder_reconstruction_loss(pred, real).item()
    assert out["adv"].item() == pytest.approx(adv, rel=1e-6)
    assert out["rec"].item() == pytest.approx(rec)
    assert out["total"].item() == pytest.approx(0.999 * rec + 0.001 * adv, rel=1e-6)


def test_context_encoder_discriminator_loss_and_accuracy():
    real_logits = torch.tensor([2.0, -1.0, 0.3, 4.0])  # 3 of 4 called real
    fake_logits = torch.tensor([-3.0, 1.0, -0.2, -0.1])  # 3 of 4 called fake
    out = context_encoder_discriminator_loss(real_logits, fake_logits)
    real = float(-_log_sigmoid(real_logits.double().numpy()).mean())
    fake = float(-_log_sigmoid(-fake_logits.double().numpy()).mean())  # -log(1 - D)
    assert out["real"].item() == pytest.approx(real, rel=1e-6)
    assert out["fake"].item() == pytest.approx(fake, rel=1e-6)
    assert out["total"].item() == pytest.approx(real + fake, rel=1e-6)
    assert out["accuracy"].item() == pytest.approx(6 / 8)
    # Logits keep the loss finite where sigmoid + log would give inf.
    extreme = context_encoder_discriminator_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert torch.isfinite(extreme["total"]) and extreme["total"].item() == pytest.approx(400.0)


# ---------------------------------------------------------------------------------------
# Gram matrix and the PConv loss with a small stand-in feature extractor
# ---------------------------------------------------------------------------------------


def test_gram_matrix_matches_loops_and_is_normalised_by_chw():
    g = torch.Generator().manual_seed(2)
    feat = torch.randn(2, 3, 4, 5, generator=g)
    f = feat.double().numpy()
    expected = np.zeros((2, 3, 3))
    for n in range(2):
        for a in range(3):
            for b in range(3):
                expected[n, a, b] = sum(f[n, a, i, j] * f[n, b, i, j] for i in range(4) for j in range(5))
    expected /= 3 * 4 * 5
    got = gram_matrix(feat)
    assert got.shape == (2, 3, 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    # Constant features c give c^2 / C in every entry, whatever the spatial size.
    assert torch.allclose(gram_matrix(torch.full((1, 4, 7, 9), 2.0)), torch.full((1, 4, 4), 1.0))


def test_gram_matrix_stays_float32_under_bf16_autocast():
    feat = torch.rand(1, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = gram_matrix(feat.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, gram_matrix(feat.bfloat16().float()))


class TinyFeatures(nn.Module):
    """A fixed two-layer stand-in for VGG16Features that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.5)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x):
        self.calls.append((x.shape[0], torch.is_grad_enabled() and x.requires_grad))
        f1 = F.max_pool2d(F.relu(self.conv1(x)), 2)
        f2 = F.max_pool2d(F.relu(self.conv2(f1)), 2)
        return [f1, f2]


def _reference_pconv_terms(out, gt, mask, features) -> dict[str, float]:
    """Eqs. (8)-(12) in float64 numpy, with explicit loops for the total variation."""
    o, x, m = (t.double().numpy() for t in (out, gt, mask))
    n, c, h, w = o.shape
    comp = m * x + (1 - m) * o
    ref = {
        "valid": np.abs(m * (o - x)).sum() / o.size,
        "hole": np.abs((1 - m) * (o - x)).sum() / o.size,
    }
    with torch.no_grad():
        phi = [[f.double().numpy() for f in features(torch.from_numpy(a).float())] for a in (o, comp, x)]
    phi_out, phi_comp, phi_gt = phi

    def gram(f):
        nn_, cc, hh, ww = f.shape
        flat = f.reshape(nn_, cc, hh * ww)
        return np.einsum("nap,nbp->nab", flat, flat) / (cc * hh * ww)

    ref["perceptual"] = sum(np.abs(a - g).mean() + np.abs(b - g).mean() for a, b, g in zip(phi_out, phi_comp, phi_gt))
    ref["style_out"] = sum(np.abs(gram(a) - gram(g)).mean() for a, g in zip(phi_out, phi_gt))
    ref["style_comp"] = sum(np.abs(gram(b) - gram(g)).mean() for b, g in zip(phi_comp, phi_gt))

    hole = 1 - m[:, 0]  # (N, H, W)
    in_p = np.zeros_like(hole, dtype=bool)  # P: hole dilated by one pixel (8-neighbourhood)
    for k in range(n):
        for i in range(h):
            for j in range(w):
                in_p[k, i, j] = hole[k, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].any()
    tv = 0.0
    for k in range(n):
        for i in range(h):
            for j in range(w):
                if j + 1 < w and in_p[k, i, j] and in_p[k, i, j + 1]:
                    tv += np.abs(comp[k, :, i, j + 1] - comp[k, :, i, j]).sum()
                if i + 1 < h and in_p[k, i, j] and in_p[k, i + 1, j]:
                    tv += np.abs(comp[k, :, i + 1, j] - comp[k, :, i, j]).sum()
    ref["tv"] = tv / comp.size
    wt = DEFAULT_PCONV_WEIGHTS
    ref["total"] = (
        wt["valid"] * ref["valid"]
        + wt["hole"] * ref["hole"]
        + wt["perceptual"] * ref["perceptual"]
        + wt["style"] * (ref["style_out"] + ref["style_comp"])
        + wt["tv"] * ref["tv"]
    )
    return ref


def _random_case(seed: int = 4, n: int = 2, size: int = 12):
    g = torch.Generator().manual_seed(seed)
    out = torch.rand(n, 3, size, size, generator=g)
    gt = torch.rand(n, 3, size, size, generator=g)
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.35).float()
    return out, gt, mask


def test_pconv_loss_terms_match_independent_computation():
    out, gt, mask = _random_case()
    features = TinyFeatures()
    got = PConvLoss(features)(out, gt, mask)
    ref = _reference_pconv_terms(out, gt, mask, features)
    assert set(got) == {"valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total"}
    for key, value in ref.items():
        assert got[key].item() == pytest.approx(value, rel=1e-5, abs=1e-8), key


def test_pconv_loss_runs_features_once_batched_and_target_without_grad():
    out, gt, mask = _random_case()
    out.requires_grad_(True)
    features = TinyFeatures()
    result = PConvLoss(features)(out, gt, mask)
    # x_out and x_comp in one batched call that tracks gradients, then x under no_grad.
    assert features.calls == [(2 * out.shape[0], True), (out.shape[0], False)]
    result["total"].backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_pconv_loss_reduces_in_float32_under_bf16_autocast():
    out, gt, mask = _random_case()
    features = TinyFeatures()
    reference = PConvLoss(features)(out, gt, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = PConvLoss(features)(out.bfloat16(), gt, mask)
    for key, value in low.items():
        assert value.dtype == torch.float32, key
        # Only the feature extractor runs in bf16 (about 3 significant digits).
        assert value.item() == pytest.approx(reference[key].item(), rel=0.05, abs=1e-4), key


def test_pconv_loss_weights_override_and_validation():
    out, gt, mask = _random_case()
    features = TinyFeatures()
    base = PConvLoss(features)(out, gt, mask)
    custom = PConvLoss(features, weights={"style": 0.0, "tv": 2.0})(out, gt, mask)
    expected = base["valid"] + 6 * base["hole"] + 0.05 * base["perceptual"] + 2.0 * base["tv"]
    assert custom["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss weight"):
        PConvLoss(features, weights={"styl": 1.0})
    with pytest.raises(ValueError, match="mask must have shape"):
        PConvLoss(features)(out, gt, mask[:, :, :5])


def test_pconv_loss_without_vgg_terms_skips_the_features_and_keeps_pixel_terms():
    out, gt, mask = _random_case()
    out.requires_grad_(True)
    features = TinyFeatures()
    base = PConvLoss(TinyFeatures())(out, gt, mask)
    pixel_only = PConvLoss(features, weights={"style": 0.0, "perceptual": 0.0})(out, gt, mask)
    assert features.calls == []  # no VGG pass at all
    assert pixel_only["perceptual"].item() == pixel_only["style_out"].item() == pixel_only["style_comp"].item() == 0
    expected = base["valid"] + 6 * base["hole"] + 0.1 * base["tv"]
    assert pixel_only["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    pixel_only["total"].backward()
    assert out.grad.abs().sum() > 0


def test_pconv_loss_perfect_output_costs_nothing_and_hole_only_error_hits_hole_terms():
    out, gt, mask = _random_case()
    features = TinyFeatures()
    loss = PConvLoss(features)
    perfect = loss(gt.clone(), gt, mask)
    for key, value in perfect.items():
        if key not in ("tv", "total"):  # tv measures the (non-zero) texture of x_comp itself
            assert value.item() == pytest.approx(0.0, abs=1e-7), key
    assert perfect["total"].item() == pytest.approx(0.1 * perfect["tv"].item(), rel=1e-5)
    # An output that is wrong only under the hole: valid = 0 and x_comp carries the error.
    wrong_in_hole = gt + (1 - mask) * 0.3
    terms = loss(wrong_in_hole, gt, mask)
    assert terms["valid"].item() == 0.0
    assert terms["hole"].item() == pytest.approx(0.3 * (1 - mask).mean().item(), rel=1e-5)


def test_total_variation_only_sees_the_dilated_hole():
    size = 9
    mask = torch.ones(1, 1, size, size)
    mask[..., 4, 4] = 0.0  # a one-pixel hole: P is the 3x3 block rows/cols 3..5
    gt = torch.zeros(1, 3, size, size)
    loss = PConvLoss(TinyFeatures())

    def tv_with(pixel: tuple[int, int]) -> float:
        img = gt.clone()
        img[..., pixel[0], pixel[1]] = 1.0
        return loss(img, img, mask)["tv"].item()  # x_comp == img

    n_elems = 3 * size * size
    # A change at the centre: 4 neighbours inside P, 3 channels.
    assert tv_with((4, 4)) == pytest.approx(4 * 3 / n_elems)
    # A corner of P has 2 neighbours inside P.
    assert tv_with((3, 3)) == pytest.approx(2 * 3 / n_elems)
    # Just outside P: invisible, although standard TV would count it.
    assert tv_with((2, 4)) == 0.0
    assert tv_with((4, 6)) == 0.0
