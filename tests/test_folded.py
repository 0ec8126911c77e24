"""The folded PConv U-Net (inpaintlib.models.folded) computes what the trained model computes.

Checked against the model itself, not against the rewrite's own algebra: random networks whose batch norms carry
random statistics (so folding them is not a no-op), with and without the full-resolution head and its fill,
batches with per-image masks, non-square sizes, holes at the border and an all-hole picture; and the transposed
convolution that replaces "upsample, then 3x3 convolution" against those two torch operations directly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inpaintlib.models import ContextEncoder, PConvUNet
from inpaintlib.models.folded import _SUBPIXEL_ROWS, FoldedPConvUNet

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_model(head_width: int = 0, fill_iterations: int = 0, seed: int = 0) -> PConvUNet:
    torch.manual_seed(seed)
    model = PConvUNet(64, width=4, head_width=head_width, head_fill_iterations=fill_iterations)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
        if model.head is not None:
            model.head.layers[-1].weight.normal_(0, 0.1)  # starts at zero: make the head do something
    return model.eval()


def _masks(n: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    masks = (torch.rand(n, 1, height, width, generator=generator) > 0.35).float()
    masks[0, :, :20, :20] = 0  # a hole at the corner: windows that see only padding and hole
    return masks


@pytest.mark.parametrize("head_width, fill_iterations", [(0, 0), (4, 0), (4, 3)])
@pytest.mark.parametrize("height, width", [(64, 64), (64, 128)])
def test_the_folded_model_matches_the_model(head_width, fill_iterations, height, width) -> None:
    model = _random_model(head_width, fill_iterations)
    folded = FoldedPConvUNet(model)
    image = torch.rand(3, 3, height, width, generator=torch.Generator().manual_seed(1))
    mask = _masks(3, height, width, seed=2)
    with torch.no_grad():
        expected, got = model(image, mask), folded(image, mask)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=2e-6, rtol=0), float((got - expected).abs().max())


def test_a_given_fill_is_used_like_the_models() -> None:
    model = _random_model(4, 3)
    image, mask = torch.rand(1, 3, 64, 64), _masks(1, 64, 64, seed=3)
    fill = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(FoldedPConvUNet(model)(image, mask, fill=fill), model(image, mask, fill=fill), atol=2e-6)


def test_an_all_hole_picture_gives_the_models_answer() -> None:
    model = _random_model()
    image, mask = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(FoldedPConvUNet(model)(image, mask), model(image, mask), atol=2e-6)


@pytest.mark.parametrize("size", [(4, 4), (6, 10)])
def test_the_transposed_convolution_is_upsampling_then_a_3x3_convolution(size) -> None:
    generator = torch.Generator().manual_seed(4)
    z = torch.rand(2, 5, *size, generator=generator)
    weight = torch.randn(7, 5, 3, 3, generator=generator)
    direct = F.conv2d(F.interpolate(z, scale_factor=2.0, mode="nearest"), weight, padding=1)
    kernel = torch.einsum("uk,oikl,vl->iouv", _SUBPIXEL_ROWS, weight, _SUBPIXEL_ROWS)
    assert torch.allclose(F.conv_transpose2d(z, kernel, stride=2, padding=1), direct, atol=1e-5)


def test_it_checks_its_inputs_like_the_model() -> None:
    folded = FoldedPConvUNet(_random_model())
    with pytest.raises(ValueError, match="multiples of"):
        folded(torch.rand(1, 3, 60, 64), torch.ones(1, 1, 60, 64))
    with pytest.raises(ValueError, match="needs a PConvUNet"):
        FoldedPConvUNet(ContextEncoder())
