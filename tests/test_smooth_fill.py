"""The coarse-to-fine biharmonic fill (inpaintlib.smooth_fill) against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.restoration import inpaint_biharmonic

from inpaintlib.smooth_fill import biharmonic_fill, laplacian


def _photo_like(n: int, size: int, seed: int = 0, blocks: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, blocks, blocks, generator=g), size=size, mode="bicubic").clamp(0, 1)


def _strokes(n: int, size: int) -> torch.Tensor:
    mask = torch.ones(n, 1, size, size)
    for i in range(n):
        mask[i, :, 10 + 3 * i : 14 + 3 * i, 5:-5] = 0  # a 4 px horizontal stroke
        mask[i, :, 20:-20, 30 + 2 * i : 33 + 2 * i] = 0  # a 3 px vertical one
    return mask


def test_laplacian_is_the_symmetric_graph_laplacian_of_the_pixel_grid():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 1, 1, 9, 7, generator=g)
    assert torch.allclose((laplacian(a) * b).sum(), (a * laplacian(b)).sum(), atol=1e-5)  # <La, b> = <a, Lb>
    assert laplacian(torch.full((1, 1, 5, 5), 0.3)).abs().max() == 0  # constants are harmonic, borders too


def test_a_plane_is_filled_exactly():
    """Linear ramps solve Δ²u = 0, so a hole away from the border must come back as the ramp."""
    ys, xs = torch.meshgrid(torch.linspace(0.1, 0.9, 64), torch.linspace(0.2, 0.7, 64), indexing="ij")
    image = torch.stack([0.5 * ys + 0.4 * xs, ys, 1 - xs])[None]  # (1, 3, 64, 64)
    mask = torch.ones(1, 1, 64, 64)
    mask[..., 20:44, 16:40] = 0
    torch.testing.assert_close(biharmonic_fill(image * mask, mask, iterations=40), image, atol=2e-4, rtol=0)


def test_it_agrees_with_scikit_image_on_thin_holes():
    image, mask = _photo_like(2, 64, blocks=16), _strokes(2, 64)
    ours = biharmonic_fill(image * mask, mask)
    for i in range(2):
        hole = mask[i, 0].numpy() == 0
        ref = inpaint_biharmonic(image[i].permute(1, 2, 0).double().numpy(), hole, channel_axis=-1)
        diff = np.abs(ours[i].permute(1, 2, 0).numpy() - ref)[hole]
        truth = np.abs(image[i].permute(1, 2, 0).numpy() - ref)[hole]
        assert diff.mean() < 0.1 * truth.mean()  # far closer to scikit-image than either is to the photo


def test_known_pixels_range_batches_dtypes_and_no_hole():
    image, mask = _photo_like(3, 32), _strokes(3, 32)
    out = biharmonic_fill(image, mask)  # the hole's content is ignored
    assert torch.equal(out * mask, image * mask)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(biharmonic_fill(image[1:2], mask[1:2]), out[1:2], atol=1e-6, rtol=0)
    assert torch.equal(biharmonic_fill(image, mask), biharmonic_fill(image * mask + torch.rand_like(image) * (1 - mask), mask))
    assert biharmonic_fill(image.double(), mask).dtype == torch.float64
    full = torch.ones(1, 1, 32, 32)
    assert torch.equal(biharmonic_fill(image[:1], full), image[:1])  # nothing to fill, no division by zero
    shared = biharmonic_fill(image, mask[:1])  # one (1, 1, H, W) mask for the batch
    assert torch.isfinite(shared).all()


def test_odd_sizes_and_bad_input():
    image, mask = _photo_like(1, 40)[..., :37, :29], torch.ones(1, 1, 37, 29)
    mask[..., 10:20, 5:9] = 0
    assert biharmonic_fill(image, mask).shape == (1, 3, 37, 29)
    with pytest.raises(ValueError, match=r"image \(N, C, H, W\) and mask \(N, 1, H, W\)"):
        biharmonic_fill(image[0], mask[0])
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        biharmonic_fill(image, mask, iterations=0)
