"""bench/artefact_peaks.py: its crops are 1:1 pixels of the truth and the composite, around the worst square."""

import importlib.util
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

_SPEC = importlib.util.spec_from_file_location("artefact_peaks", Path(__file__).parents[1] / "bench" / "artefact_peaks.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_crops_are_unscaled_pixels_of_truth_and_composite_centred_on_the_checkerboard():
    g = torch.Generator().manual_seed(0)
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 128, 128, generator=g), 5, 1, 2)[0]
    mask = torch.ones(1, 128, 128)
    mask[:, 32:128, 32:128] = 0
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    board = (((yy + xx) % 2).float() - 0.5) * 0.4 * ((yy >= 96) & (xx >= 96)).float()  # only the last square
    out = (image + board).clamp(0, 1)
    png = np.asarray(Image.open(io.BytesIO(bench.crops_png([({}, image, out, mask)], crop=48, gap=4))))
    assert png.shape == (48, 2 * 48 + 4, 3)
    # the worst square is rows/columns 96..127, so the 48 px crop ends at the image's corner: 80..127
    truth = (image[:, 80:128, 80:128].permute(1, 2, 0).numpy() * 255).round()
    comp = (out[:, 80:128, 80:128].permute(1, 2, 0).numpy() * 255).round()
    inner = (slice(4, 48), slice(4, 48))  # away from the red outline of the hole's border
    assert np.abs(png[:, :48][inner] - truth[inner]).max() <= 1
    assert np.abs(png[:, 52:][inner] - comp[inner]).max() <= 1
