"""Context Encoder (report §3.1) and PConv U-Net (report §3.2): shapes, layouts, invariances, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib.losses import context_encoder_reconstruction_loss
from inpaintlib.models import (
    ContextDiscriminator,
    ContextEncoder,
    PConvUNet,
    architecture_table,
    count_parameters,
    default_layers,
    freeze_encoder_batchnorm,
    freeze_all_but_head,
    layer_table,
)
from inpaintlib.smooth_fill import biharmonic_fill


def _smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Photo-like stand-ins in [0, 1]: random colours, bilinearly upsampled."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------
# Context Encoder
# ---------------------------------------------------------------------------------------


def test_context_encoder_maps_a_128px_context_to_a_64px_patch_in_tanh_range():
    model = ContextEncoder(bottleneck=32, width=8)
    out = model(torch.rand(3, 3, 128, 128) * 2 - 1)
    assert out.shape == (3, 3, 64, 64)
    assert out.abs().max() <= 1.0


def test_context_encoder_default_layout_follows_pathak():
    """nBottleneck=4000, 64 filters: the parameter count of Pathak's layout, derived by hand."""
    w, b = 64, 4000
    conv_weights = 16 * (3 * w + w * w + w * 2 * w + 2 * w * 4 * w + 4 * w * 8 * w + 8 * w * b)
    tconv_weights = 16 * (b * 8 * w + 8 * w * 4 * w + 4 * w * 2 * w + 2 * w * w + w * 3)
    bn = 2 * (w + 2 * w + 4 * w + 8 * w + b) + 2 * (8 * w + 4 * w + 2 * w + w)
    model = ContextEncoder()
    assert count_parameters(model) == conv_weights + tconv_weights + bn == 71_124_544
    table = layer_table(model)
    assert [r["output_shape"][1:] for r in table] == [
        (64, 64),
        (32, 32),
        (16, 16),
        (8, 8),
        (4, 4),
        (1, 1),  # encoder
        (4, 4),
        (8, 8),
        (16, 16),
        (32, 32),
        (64, 64),  # decoder
    ]
    assert table[5]["out_channels"] == 4000 and table[5]["kernel"] == 4 and table[5]["stride"] == 1
    assert "BN" not in table[0]["layer"] and "BN" not in table[-1]["layer"]
    assert table[-1]["layer"].endswith("tanh")
    assert sum(r["params"] for r in table) == count_parameters(model)
    # DCGAN initialisation: N(0, 0.02) convolutions.
    weight = model.encoder.enc4[0].weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (2, 1, 128, 128), (3, 128, 128), (2, 3, 128, 96)])
def test_context_encoder_rejects_other_input_shapes(shape):
    with pytest.raises(ValueError, match=r"\(N, 3, 128, 128\)"):
        ContextEncoder(bottleneck=16, width=4)(torch.zeros(shape))


def test_discriminator_returns_one_logit_per_patch():
    model = ContextDiscriminator(width=8)
    logits = model(torch.rand(5, 3, 64, 64) * 2 - 1)
    assert logits.shape == (5,)
    table = layer_table(model)
    assert [r["output_shape"] for r in table] == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4), (1, 1, 1)]
    assert "BN" not in table[0]["layer"] and all("BN" in r["layer"] for r in table[1:4])
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        model(torch.rand(5, 3, 128, 128))


def test_context_encoder_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = ContextEncoder(bottleneck=64, width=8)
    images = _smooth_images(4, 128) * 2 - 1  # the model works in [-1, 1]
    real = images[..., 32:96, 32:96].clone()
    context = images.clone()
    context[..., 36:92, 36:92] = 0.0  # 56 px hole, 4 px overlap band kept as context
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(40):
        loss = context_encoder_reconstruction_loss(model(context), real)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])


# ---------------------------------------------------------------------------------------
# PConv U-Net
# ---------------------------------------------------------------------------------------


def _hole_mask(n: int, size: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = (torch.rand(n, 1, size // 8, size // 8, generator=g) > 0.4).float()
    return F.interpolate(coarse, size=size, mode="nearest")  # (N, 1, size, size), blocky holes


@pytest.mark.parametrize("size, levels", [(64, 5), (128, 6), (256, 7)])
def test_pconv_unet_shapes_levels_and_range(size, levels):
    model = PConvUNet(image_size=size, width=8)
    assert model.layers == levels == default_layers(size)
    image = torch.rand(2, 3, size, size)
    out = model(image, _hole_mask(2, size))
    assert out.shape == image.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    # Small last-layer init: the sigmoid starts near 0.5, far from saturation (sigmoid(4) = 0.98),
    # though the partial convolutions' renormalisation leaves a few outliers.
    logits = torch.logit(out.double())
    assert logits.std() < 0.3 and logits.abs().max() < 4.0


def test_pconv_unet_rejects_sizes_that_are_not_multiples_of_2_pow_layers():
    model = PConvUNet(image_size=64, width=4)  # 5 levels: multiples of 32
    with pytest.raises(ValueError, match=r"multiples of 2\*\*5 = 32 \(e\.g\. 32, 64, 96, 128\); got 100x100"):
        model(torch.rand(1, 3, 100, 100), torch.ones(1, 1, 100, 100))
    with pytest.raises(ValueError, match="not a power of two"):
        PConvUNet(image_size=100)
    with pytest.raises(ValueError, match=r"mask of shape \(N, 1, 64, 64\)"):
        model(torch.rand(1, 3, 64, 64), torch.ones(1, 3, 64, 64))
    # Fully convolutional: other multiples of 32 work, including non-square ones.
    assert model(torch.rand(1, 3, 96, 160), torch.ones(1, 1, 96, 160)).shape == (1, 3, 96, 160)


@pytest.mark.parametrize("training", [False, True])
def test_pconv_unet_output_ignores_pixels_under_the_hole(training):
    torch.manual_seed(0)
    model = PConvUNet(image_size=64, width=8).train(training)
    mask = _hole_mask(3, 64)
    image = torch.rand(3, 3, 64, 64)
    other = torch.where(mask.bool(), image, torch.rand(3, 3, 64, 64) * 100)  # garbage in the hole only
    torch.testing.assert_close(model(image, mask), model(other, mask), rtol=0, atol=0)
    # ...while a change in the valid pixels does change it (the test can see differences).
    changed = torch.where(mask.bool(), torch.rand(3, 3, 64, 64), image)
    assert not torch.allclose(model(image, mask), model(changed, mask))


def test_pconv_unet_channels_last_and_bf16_autocast_agree_with_plain_fp32():
    torch.manual_seed(0)
    model = PConvUNet(image_size=64, width=8).eval()
    image, mask = torch.rand(2, 3, 64, 64), _hole_mask(2, 64)
    reference = model(image, mask)
    cl = model.to(memory_format=torch.channels_last)(
        image.to(memory_format=torch.channels_last), mask.to(memory_format=torch.channels_last)
    )
    torch.testing.assert_close(cl, reference, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(image, mask)
    assert (low.float() - reference).abs().max() < 0.05


def test_pconv_unet_layout_matches_liu_fig2_at_512px():
    model = PConvUNet(image_size=512, width=64)
    assert model.layers == 8
    table = layer_table(model, image_size=256)  # channels do not depend on the size shown
    enc, dec = table[:8], table[8:]
    assert [r["kernel"] for r in enc] == [7, 5, 5, 3, 3, 3, 3, 3]
    assert all(r["stride"] == 2 for r in enc) and all(r["stride"] == 1 and r["kernel"] == 3 for r in dec)
    assert [r["out_channels"] for r in enc] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert [r["name"] for r in dec] == [f"dec{i}" for i in range(8, 0, -1)]
    assert [r["in_channels"] for r in dec] == [1024, 1024, 1024, 1024, 768, 384, 192, 67]
    assert [r["out_channels"] for r in dec] == [512, 512, 512, 512, 256, 128, 64, 3]
    assert [r["output_shape"][1] for r in table] == [128, 64, 32, 16, 8, 4, 2, 1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert "BN" not in enc[0]["layer"] and all("BN" in r["layer"] for r in enc[1:])
    assert all("LReLU(0.2)" in r["layer"] for r in dec[:-1]) and dec[-1]["layer"].endswith("sigmoid")
    assert sum(r["params"] for r in table) == count_parameters(model)


def _bn_state(bn: nn.BatchNorm2d) -> list[torch.Tensor]:
    return [t.detach().clone() for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.num_batches_tracked)]


def _one_step(model: PConvUNet, seed: int = 0) -> None:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    image = _smooth_images(4, 64, seed)
    loss = (model(image, _hole_mask(4, 64, seed)) - image).abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_freeze_encoder_batchnorm_keeps_encoder_statistics_and_affine_fixed():
    torch.manual_seed(0)
    model = PConvUNet(image_size=64, width=8)
    _one_step(model, seed=5)  # move the BN parameters away from their init
    freeze_encoder_batchnorm(model)
    model.train()  # must not unfreeze
    assert model.encoders[0].bn is None  # the first level has no BN at all
    encoder_bns = [enc.bn for enc in model.encoders[1:]]
    assert all(not bn.training for bn in encoder_bns)
    assert all(not p.requires_grad for bn in encoder_bns for p in bn.parameters())
    assert all(bn.training for bn in (dec.bn for dec in model.decoders[1:]))
    before_enc = [_bn_state(bn) for bn in encoder_bns]
    before_dec = [_bn_state(dec.bn) for dec in model.decoders[1:]]
    conv_before = model.encoders[2].conv.weight.detach().clone()
    _one_step(model)
    for bn, before in zip(encoder_bns, before_enc):
        for now, then in zip(_bn_state(bn), before):
            assert torch.equal(now, then)
    for dec, before in zip(model.decoders[1:], before_dec):
        now = _bn_state(dec.bn)
        assert not torch.equal(now[0], before[0])  # running mean moved
        assert not torch.equal(now[2], before[2])  # scale trained
    assert not torch.equal(model.encoders[2].conv.weight, conv_before)  # encoder convs still train


def test_encoder_batchnorm_does_change_without_freezing():
    torch.manual_seed(0)
    model = PConvUNet(image_size=64, width=8).train()
    before = _bn_state(model.encoders[1].bn)
    _one_step(model)
    after = _bn_state(model.encoders[1].bn)
    assert not torch.equal(after[0], before[0]) and not torch.equal(after[2], before[2])
    with pytest.raises(ValueError, match="PConvUNet"):
        freeze_encoder_batchnorm(ContextDiscriminator(width=4))


def test_pconv_unet_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = PConvUNet(image_size=64, width=8)
    images = _smooth_images(4, 64)
    mask = torch.ones(4, 1, 64, 64)
    mask[..., 16:40, 20:44] = 0.0
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss = (model(images, mask) - images).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4, (losses[0], losses[-1])


def test_pconv_unet_rejects_a_non_binary_mask_once_at_the_input():
    model = PConvUNet(64, width=8)
    with pytest.raises(ValueError, match="must be binary"):
        model(torch.rand(1, 3, 64, 64), torch.full((1, 1, 64, 64), 0.5))


def test_context_encoder_matrix_product_layers_equal_the_convolutions_they_replace():
    from inpaintlib.models.context_encoder import _FromVectorConvTranspose2d, _WholeWindowConv2d

    torch.manual_seed(0)
    conv = _WholeWindowConv2d(16, 30, 4, bias=False)
    x = torch.randn(3, 16, 4, 4)
    reference = F.conv2d(x, conv.weight)
    torch.testing.assert_close(conv(x), reference)
    torch.testing.assert_close(conv(x.to(memory_format=torch.channels_last)), reference)
    up = _FromVectorConvTranspose2d(30, 8, 4, bias=False)
    z = torch.randn(3, 30, 1, 1)
    torch.testing.assert_close(up(z), F.conv_transpose2d(z, up.weight))


def test_architecture_table_displays_the_rows_as_text_and_html():
    model = ContextDiscriminator(width=8).train()
    rows = layer_table(model)
    assert model.training  # the measuring pass restores the mode
    table = architecture_table(model, title="D")
    text = str(table).splitlines()
    assert text[0] == "D" and text[3].startswith("body.conv1") and "8×32×32" in text[3]
    assert text[-1] == f"total parameters: {count_parameters(model):,}"
    assert table._repr_html_().count("<tr>") == 1 + len(rows)
    with pytest.raises(ValueError, match="64 px"):
        layer_table(model, image_size=128)
    with pytest.raises(ValueError, match="ContextEncoder, ContextDiscriminator or PConvUNet"):
        layer_table(nn.Linear(2, 2))


def test_full_resolution_head_starts_as_a_no_op_and_then_learns():
    torch.manual_seed(0)
    plain = PConvUNet(image_size=64, width=8).eval()
    headed = PConvUNet(image_size=64, width=8, head_width=8).eval()
    headed.load_state_dict({**headed.state_dict(), **plain.state_dict()})
    image, mask = torch.rand(2, 3, 64, 64), _hole_mask(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(headed(image, mask), plain(image, mask), rtol=0, atol=0)
    # The zero last layer still gets a gradient, so the head can move away from zero.
    (headed(image, mask) - image).abs().mean().backward()
    assert headed.head.layers[-1].weight.grad.abs().sum() > 0
    assert headed.head.layers[0].weight.grad.abs().sum() == 0  # nothing flows past a zero layer yet


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("fill_iterations", [0, 5])
def test_full_resolution_head_never_reads_the_hole(training, fill_iterations):
    torch.manual_seed(0)
    model = PConvUNet(image_size=64, width=8, head_width=8, head_fill_iterations=fill_iterations)
    with torch.no_grad():
        model.head.layers[-1].weight.normal_(0, 0.1)  # a head that does something
    model.train(training)
    mask = _hole_mask(3, 64)
    image = torch.rand(3, 3, 64, 64)
    other = torch.where(mask.bool(), image, torch.rand(3, 3, 64, 64) * 100)
    torch.testing.assert_close(model(image, mask), model(other, mask), rtol=0, atol=0)
    without = PConvUNet(image_size=64, width=8)
    without.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("head.")})
    without.train(training)
    assert not torch.allclose(model(image, mask), without(image, mask))


def test_full_resolution_head_rejects_a_negative_width():
    with pytest.raises(ValueError, match="head_width must be >= 0"):
        PConvUNet(64, width=8, head_width=-1)
    with pytest.raises(ValueError, match="head_fill_iterations needs a head"):
        PConvUNet(64, width=8, head_fill_iterations=3)


def test_a_head_with_a_fill_starts_as_an_even_blend_of_the_u_net_and_the_biharmonic_fill():
    torch.manual_seed(0)
    plain = PConvUNet(image_size=64, width=8).eval()
    model = PConvUNet(image_size=64, width=8, head_width=4, head_fill_iterations=5).eval()
    model.load_state_dict({**model.state_dict(), **plain.state_dict()})
    image, mask = _smooth_images(2, 64), _hole_mask(2, 64)
    with torch.no_grad():
        fill = biharmonic_fill(image * mask, mask, 5).clamp(1e-3, 1 - 1e-3)
        expected = torch.sigmoid(0.5 * torch.logit(plain(image, mask)) + 0.5 * torch.log(fill / (1 - fill)))
        torch.testing.assert_close(model(image, mask), expected, atol=1e-5, rtol=0)
    # The gate and the correction both get a gradient from the start.
    (model(image, mask) - image).abs().mean().backward()
    assert model.head.layers[-1].weight.grad[:3].abs().sum() > 0 and model.head.layers[-1].bias.grad[3] != 0


def test_freeze_all_but_head_trains_only_the_head_and_keeps_the_u_nets_statistics():
    torch.manual_seed(0)
    model = PConvUNet(image_size=64, width=8, head_width=4, head_fill_iterations=3)
    freeze_all_but_head(model)
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    image, mask = _smooth_images(2, 64), _hole_mask(2, 64)
    out = model(image, mask)
    assert out.requires_grad  # through the head only
    out.mean().backward()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="needs a network with a head"):
        freeze_all_but_head(PConvUNet(image_size=64, width=8))


def test_a_context_encoder_with_a_fill_head_starts_as_an_even_blend_of_its_patch_and_the_fill():
    from inpaintlib.masks import center_mask, center_patch_slice

    torch.manual_seed(0)
    plain = ContextEncoder(bottleneck=16, width=8).eval()
    model = ContextEncoder(bottleneck=16, width=8, head_width=4, head_fill_iterations=3).eval()
    model.load_state_dict({**model.state_dict(), **plain.state_dict()})
    assert set(model.state_dict()) - set(plain.state_dict()) == {k for k in model.state_dict() if k.startswith("head.")}
    mask = center_mask(128, 56)[None]  # (1, 1, 128, 128)
    image = _smooth_images(2, 128)
    x = (image * 2 - 1) * mask  # the hole at 0, as training and inpainting pass it
    s = center_patch_slice(128, 64)
    with torch.no_grad():
        fill = biharmonic_fill(image * mask, mask.expand(2, 1, 128, 128), 3)[:, :, s, s].clamp(1e-3, 1 - 1e-3)
        p = (plain(x) + 1) / 2
        expected = 2 * torch.sigmoid(0.5 * torch.logit(p) + 0.5 * torch.log(fill / (1 - fill))) - 1
        torch.testing.assert_close(model(x), expected, atol=1e-4, rtol=0)
    (model(x) - image[:, :, s, s] * 2 + 1).square().mean().backward()  # the gate learns from the start
    assert model.head.layers[-1].bias.grad[3] != 0
    assert model(x).abs().max() <= 1
    with pytest.raises(ValueError, match="head_width must be >= 0"):
        ContextEncoder(bottleneck=16, width=8, head_fill_iterations=3)


@pytest.mark.parametrize("shape", [(2, 1, 64, 64), (1, 1, 40, 97), (1, 1, 7, 33)])
def test_known_share_is_the_mean_of_the_mask_over_the_window_inside_the_image(shape):
    from inpaintlib.models.head import known_share

    g = torch.Generator().manual_seed(sum(shape))
    mask = (torch.rand(*shape, generator=g) > 0.4).float()
    padded = torch.nn.functional.pad(mask, (15, 15, 15, 15))
    inside = torch.nn.functional.pad(torch.ones_like(mask), (15, 15, 15, 15))
    windows = lambda x: x.unfold(2, 31, 1).unfold(3, 31, 1).sum(dim=(-1, -2))  # noqa: E731  (a direct count)
    expected = windows(padded) / windows(inside)
    assert torch.allclose(known_share(mask, 31), expected, atol=1e-6)
    assert torch.allclose(known_share(mask.bfloat16(), 31), expected, atol=1e-6)  # float32 inside, whatever comes in
