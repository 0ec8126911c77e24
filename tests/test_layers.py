"""Specification of inpaintlib.layers.PartialConv2d: report §3.2.1, eqs. (6)-(7), Fig 3."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlib.layers import PartialConv2d

# (kernel_size, stride, padding, dilation); covers odd/even/anisotropic kernels, strides,
# paddings larger than the kernel radius and dilations.
GEOMETRIES = [
    (1, 1, 0, 1),
    (3, 1, 1, 1),
    (3, 2, 1, 1),
    (4, 2, 1, 1),
    (5, 1, 2, 1),
    (7, 2, 3, 1),
    (3, 1, 2, 2),
    (3, 2, 0, 3),
    ((3, 5), (1, 2), (0, 2), (2, 1)),
]


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def eq6_reference(
    x: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None, stride, padding, dilation
) -> tuple[Tensor, Tensor]:
    """Eqs. (6)-(7) evaluated window by window in float64, with F.unfold listing each window.

    The mask is expanded to one value per input element, so sum(m_i) and the window size N
    count the same C_in * kh * kw elements; zero padding counts as hole.
    """
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    x = x.double()
    m = mask.double().expand(n, c, h, w)

    def windows(t: Tensor) -> Tensor:  # (N, C*kh*kw, L): one column per output position
        return F.unfold(t, (kh, kw), dilation=dilation, padding=padding, stride=stride)

    x_cols, m_cols = windows(x), windows(m)
    valid = m_cols.sum(dim=1, keepdim=True)  # sum_i m_i, (N, 1, L)
    window = c * kh * kw  # N in eq. (6)
    masked_sum = torch.einsum("ok,nkl->nol", weight.double().reshape(c_out, -1), x_cols * m_cols)
    b = bias.double().view(1, -1, 1) if bias is not None else 0.0
    y = torch.where(valid > 0, masked_sum * window / valid + b, torch.zeros_like(masked_sum))
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return y.reshape(n, c_out, h_out, w_out), (valid > 0).double().reshape(n, 1, h_out, w_out)


def random_mask(
    n: int, c: int, h: int, w: int, generator: torch.Generator, p_valid: float = 0.6
) -> Tensor:
    """Random valid pixels plus one large rectangular hole, so that windows of every kind
    occur: fully valid, partly valid, and (for kernels up to 7x7) entirely in the hole."""
    mask = torch.rand(n, c, h, w, generator=generator) < p_valid
    mask[:, :, h // 5 : h - 2, w // 4 : w - 1] = False
    return mask


def make_layer(c_in: int, c_out: int, kernel, stride=1, padding=0, dilation=1, bias=True, seed=0):
    torch.manual_seed(seed)
    layer = PartialConv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.normal_()  # non-zero, so a bias leaking into holes would show
    return layer


@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize("mask_channels", ["shared", "per_channel"])
@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.float64])
def test_partial_conv_matches_eq6_on_random_masks(kernel, stride, padding, dilation, mask_channels, mask_dtype):
    g = torch.Generator().manual_seed(1)
    n, c_in, h, w = 2, 3, 17, 19
    layer = make_layer(c_in, 4, kernel, stride, padding, dilation).double()
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64)
    mask = random_mask(n, 1 if mask_channels == "shared" else c_in, h, w, g).to(mask_dtype)

    y, new_mask = layer(x, mask)
    y_ref, new_mask_ref = eq6_reference(x, mask, layer.weight, layer.bias, stride, padding, dilation)

    assert y.shape == y_ref.shape and new_mask.shape == new_mask_ref.shape
    torch.testing.assert_close(new_mask, new_mask_ref, rtol=0, atol=0)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    # The random case exercised both branches of eq. (6).
    assert (new_mask_ref == 0).any() and (new_mask_ref == 1).any()


def test_expanded_per_channel_mask_matches_materialised_and_shared_mask():
    g = torch.Generator().manual_seed(2)
    layer = make_layer(5, 3, 3, padding=1)
    x = torch.randn(2, 5, 12, 12, generator=g)
    shared = random_mask(2, 1, 12, 12, g).float()
    y_shared, m_shared = layer(x, shared)
    y_expanded, m_expanded = layer(x, shared.expand(-1, 5, -1, -1))
    y_full, m_full = layer(x, shared.repeat(1, 5, 1, 1))
    torch.testing.assert_close(y_expanded, y_shared, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(y_full, y_shared, rtol=1e-6, atol=1e-6)
    assert torch.equal(m_expanded, m_shared) and torch.equal(m_full, m_shared)


def test_premasked_input_with_channel_counts_matches_the_per_channel_mask():
    """A decoder's two single-channel masks (upsampled path, skip path) give the same output and new mask
    through ``forward_premasked`` as the materialised (N, C_in, H, W) mask through ``forward``."""
    g = torch.Generator().manual_seed(4)
    layer = make_layer(7, 4, 3, padding=1)
    x = torch.randn(2, 7, 10, 10, generator=g)
    up, skip = random_mask(2, 1, 10, 10, g).float(), random_mask(2, 1, 10, 10, g).float()
    full = torch.cat([up.expand(-1, 4, -1, -1), skip.expand(-1, 3, -1, -1)], dim=1)
    y_full, m_full = layer(x, full)
    y_pre, m_pre = layer.forward_premasked(x * full, 4 * up + 3 * skip)
    torch.testing.assert_close(y_pre, y_full, rtol=1e-6, atol=1e-6)
    assert torch.equal(m_pre, m_full)
    with pytest.raises(ValueError, match="valid_channels must have shape"):
        layer.forward_premasked(x, full)


UNPADDED = [g for g in GEOMETRIES if g[2] == 0] + [(3, 1, 0, 1), (5, 2, 0, 1)]


@pytest.mark.parametrize("kernel,stride,padding,dilation", UNPADDED)
@pytest.mark.parametrize("mask_channels", [1, 6])
def test_all_valid_mask_equals_plain_conv2d(kernel, stride, padding, dilation, mask_channels):
    # Without padding every window is fully valid, so the ratio N / sum(m_i) is exactly 1.
    g = torch.Generator().manual_seed(3)
    layer = make_layer(6, 5, kernel, stride, padding, dilation)
    plain = nn.Conv2d(6, 5, kernel, stride=stride, padding=padding, dilation=dilation)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 6, 15, 16, generator=g)
    y, new_mask = layer(x, torch.ones(2, mask_channels, 15, 16))
    torch.testing.assert_close(y, plain(x), rtol=1e-5, atol=1e-5)
    assert torch.all(new_mask == 1)


@pytest.mark.parametrize("mask_channels", [1, 4])
def test_window_without_valid_input_gives_zero_without_bias(mask_channels):
    layer = make_layer(4, 3, 3, padding=1)
    with torch.no_grad():
        layer.bias.fill_(7.0)
    x = torch.randn(1, 4, 10, 10)
    mask = torch.ones(1, mask_channels, 10, 10)
    mask[..., 2:9, 2:9] = 0  # windows centred on rows/cols 3..7 see only hole
    y, new_mask = layer(x, mask)
    assert torch.all(y[..., 3:8, 3:8] == 0)
    assert torch.all(new_mask[..., 3:8, 3:8] == 0)
    assert torch.all(new_mask[..., 2, 2:9] == 1)  # the rim of the hole sees valid pixels
    # An all-hole input: everything is dead, no bias anywhere.
    y, new_mask = layer(x, torch.zeros(1, mask_channels, 10, 10))
    assert torch.all(y == 0) and torch.all(new_mask == 0)


@pytest.mark.parametrize("mask_channels", [1, 3])
def test_output_does_not_depend_on_values_under_the_hole(mask_channels):
    g = torch.Generator().manual_seed(4)
    layer = make_layer(3, 4, 5, stride=2, padding=2)
    x = torch.randn(2, 3, 16, 16, generator=g)
    mask = random_mask(2, mask_channels, 16, 16, g).float()
    hole = (mask == 0).expand_as(x)
    x_other = x.clone()
    x_other[hole] = 1e4 * torch.randn(int(hole.sum()), generator=g)
    y, new_mask = layer(x, mask)
    y_other, new_mask_other = layer(x_other, mask)
    assert torch.equal(y, y_other) and torch.equal(new_mask, new_mask_other)


@pytest.mark.parametrize("mask_channels", [1, 2])
def test_gradients_match_finite_differences_in_float64(mask_channels):
    g = torch.Generator().manual_seed(5)
    layer = make_layer(2, 3, 3, stride=1, padding=1).double()
    x = torch.randn(1, 2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    mask = random_mask(1, mask_channels, 5, 6, g, p_valid=0.7).double()
    weight = layer.weight.detach().clone().requires_grad_(True)
    bias = layer.bias.detach().clone().requires_grad_(True)

    def f(x, weight, bias):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x, mask))[0]

    assert torch.autograd.gradcheck(f, (x, weight, bias))


@pytest.mark.parametrize("mask_channels", [1, 3])
def test_gradient_is_zero_under_the_hole(mask_channels):
    g = torch.Generator().manual_seed(6)
    layer = make_layer(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 12, 12, generator=g, requires_grad=True)
    mask = random_mask(2, mask_channels, 12, 12, g)
    y, _ = layer(x, mask)
    y.backward(torch.randn(y.shape, generator=g))
    hole = ~mask.expand_as(x)
    assert torch.all(x.grad[hole] == 0)
    assert torch.all(x.grad[~hole] != 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mask_channels", [1, 64])
def test_autocast_gives_finite_outputs_close_to_fp32(dtype, mask_channels):
    # 64 channels x 3x3 = 576 elements per window: more than bf16 counts exactly (256).
    g = torch.Generator().manual_seed(7)
    layer = make_layer(64, 8, 3, padding=1)
    x = torch.randn(2, 64, 12, 12, generator=g)
    mask = random_mask(2, mask_channels, 12, 12, g, p_valid=0.9).float()
    y32, m32 = layer(x, mask)
    with torch.autocast("cpu", dtype=dtype):
        y, new_mask = layer(x, mask)
        y2, new_mask2 = layer(y.new_ones(2, 64, 12, 12), mask.to(dtype))  # half-precision mask too
    assert y.dtype == dtype and new_mask.dtype == dtype
    assert torch.isfinite(y).all() and torch.isfinite(y2).all()
    assert torch.equal(new_mask.float(), m32) and torch.equal(new_mask2.float(), m32)
    assert torch.all(y[(new_mask == 0).expand_as(y)] == 0)
    torch.testing.assert_close(y.float(), y32, rtol=0, atol=0.02 * y32.abs().max().item())


def test_mask_is_counted_by_one_single_channel_fp32_convolution(monkeypatch):
    calls = []
    conv2d = F.conv2d

    def spy(inp, weight, *args, **kwargs):
        calls.append((tuple(inp.shape), tuple(weight.shape), inp.dtype, torch.is_autocast_enabled("cpu")))
        return conv2d(inp, weight, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", spy)
    layer = make_layer(16, 32, 3, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(torch.randn(2, 16, 8, 8), torch.ones(2, 16, 8, 8))
    count_calls = [c for c in calls if c[1] != tuple(layer.weight.shape)]
    assert len(calls) == 2 and count_calls == [((2, 1, 8, 8), (1, 1, 3, 3), torch.float32, False)]


def test_no_state_is_kept_between_calls():
    g = torch.Generator().manual_seed(8)
    layer = make_layer(3, 4, 3, padding=1)
    fresh = copy.deepcopy(layer)
    attributes, buffers = set(vars(layer)), dict(layer.named_buffers())
    x = torch.randn(2, 3, 10, 10, generator=g)
    mask_a = random_mask(2, 3, 10, 10, g)
    mask_b = torch.ones(2, 1, 10, 10)
    mask_b[..., :5, :] = 0
    layer(x, mask_a)
    y_b, new_mask_b = layer(x, mask_b)
    y_fresh, new_mask_fresh = fresh(x, mask_b)
    assert torch.equal(y_b, y_fresh) and torch.equal(new_mask_b, new_mask_fresh)
    assert set(vars(layer)) == attributes and dict(layer.named_buffers()) == buffers


@pytest.mark.parametrize(
    "x_shape,mask_shape,mask_value,match",
    [
        ((3, 8, 8), (1, 1, 8, 8), 1.0, r"x of shape \(N, C_in, H, W\)"),
        ((2, 5, 8, 8), (2, 1, 8, 8), 1.0, r"C_in=3 channels, got 5"),
        ((2, 3, 8, 8), (2, 8, 8), 1.0, r"4-D mask"),
        ((2, 3, 8, 8), (3, 1, 8, 8), 1.0, r"batch size 3 does not match x batch size 2"),
        ((2, 3, 8, 8), (2, 1, 8, 9), 1.0, r"spatial size \(8, 9\) does not match x spatial size \(8, 8\)"),
        ((2, 3, 8, 8), (2, 2, 8, 8), 1.0, r"1 channel \(shared\) or C_in=3 channels"),
        ((2, 3, 8, 8), (2, 1, 8, 8), 0.5, r"binary"),
        ((2, 3, 8, 8), (2, 3, 8, 8), 255.0, r"binary"),
        ((2, 3, 8, 8), (2, 1, 8, 8), torch.uint8, r"bool or floating point"),
    ],
)
def test_invalid_inputs_raise_value_error(x_shape, mask_shape, mask_value, match):
    layer = make_layer(3, 4, 3, padding=1)
    if isinstance(mask_value, torch.dtype):
        mask = torch.ones(mask_shape, dtype=mask_value)
    else:
        mask = torch.ones(mask_shape)
        mask.view(-1)[0] = mask_value
    with pytest.raises(ValueError, match=match):
        layer(torch.randn(x_shape), mask)


def test_value_check_can_be_switched_off_but_shape_checks_stay():
    layer = PartialConv2d(3, 4, 3, padding=1, check_mask_values=False)
    soft = torch.full((2, 1, 8, 8), 0.5)
    y, new_mask = layer(torch.randn(2, 3, 8, 8), soft)  # trusted caller: no value check
    assert y.shape == (2, 4, 8, 8) and torch.all(new_mask == 1)
    with pytest.raises(ValueError, match="spatial size"):
        layer(torch.randn(2, 3, 8, 8), torch.ones(2, 1, 8, 7))
    assert "check_mask_values=False" in repr(layer)


def test_repeated_mean_filter_shrinks_the_hole_while_plain_conv_darkens_the_border():
    """Report Fig 3: 5x5 mean filter applied again and again to a grey image with a hole."""
    size, grey = 32, 0.5
    partial = PartialConv2d(1, 1, 5, padding=2, bias=False)
    plain = nn.Conv2d(1, 1, 5, padding=2, bias=False)
    with torch.no_grad():
        partial.weight.fill_(1 / 25)
        plain.weight.fill_(1 / 25)
    mask = torch.ones(1, 1, size, size)
    mask[..., 10:22, 10:22] = 0  # a 12x12 hole
    x_partial = x_plain = grey * mask

    holes, border_plain = [int((mask == 0).sum())], []
    with torch.no_grad():
        for _ in range(4):
            new_mask_expected = F.max_pool2d(mask, 5, stride=1, padding=2)  # eq. (7) for a shared mask
            x_partial, mask = partial(x_partial, mask)
            assert torch.equal(mask, new_mask_expected)
            holes.append(int((mask == 0).sum()))
            x_plain = plain(x_plain)
            border_plain.append(x_plain[0, 0, 0].mean().item())

    # Each pass fills a 2-pixel rim of the hole: 12x12 -> 8x8 -> 4x4 -> gone.
    assert holes == [144, 64, 16, 0, 0]
    # Only valid grey values are averaged, so the whole image, borders included, stays grey.
    torch.testing.assert_close(x_partial, torch.full_like(x_partial, grey), rtol=0, atol=1e-6)
    # Zero padding pulls the plain convolution's border darker with every pass.
    assert all(a > b for a, b in zip(border_plain, border_plain[1:]))
    assert border_plain[-1] < 0.75 * grey
