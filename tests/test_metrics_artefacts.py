"""The artefact ratios of metrics.artefact_ratios: blur reads below 1, checkerboard above, the truth 1."""

import pytest
import torch

from inpaintlib.metrics import artefact_ratios


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, 64, 64, generator=g)
    target = torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)[0] * 0.5 + 0.25
    # a texture like a photo's: energy falls towards the highest frequencies
    mask = torch.ones(1, 64, 64)
    mask[:, 16:48, 16:48] = 0
    return target, mask


def test_the_ground_truth_scores_one():
    target, mask = _scene()
    ratios = artefact_ratios(target, target, mask)
    assert float(ratios["laplacian"]) == pytest.approx(1.0)
    assert float(ratios["checkerboard"]) == pytest.approx(1.0)


def test_a_blurred_fill_reads_below_one():
    target, mask = _scene()
    blurred = torch.nn.functional.avg_pool2d(target[None], 5, stride=1, padding=2, count_include_pad=False)[0]
    ratios = artefact_ratios(blurred, target, mask)
    assert float(ratios["laplacian"]) < 0.5
    assert float(ratios["checkerboard"]) < 0.5


def test_a_checkerboard_fill_reads_above_one_and_only_the_checkerboard_ratio_singles_it_out():
    target, mask = _scene()
    smooth = torch.nn.functional.avg_pool2d(target[None], 9, stride=1, padding=4, count_include_pad=False)[0]
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    pattern = ((yy + xx) % 2).float() * 0.1 - 0.05
    ratios = artefact_ratios(smooth + pattern, target, mask)
    assert float(ratios["checkerboard"]) > 2 * float(ratios["laplacian"]) > 1.0


def test_known_pixels_do_not_count_and_batches_match_single_images():
    target, mask = _scene()
    other, _ = _scene(seed=1)
    outside_changed = torch.where(mask.bool(), other, target)  # hole equal to the truth, known pixels not
    assert float(artefact_ratios(outside_changed, target, mask)["laplacian"]) == pytest.approx(1.0, abs=0.02)
    batch = artefact_ratios(torch.stack([target, other]), torch.stack([target, target]), torch.stack([mask, mask]))
    assert batch["laplacian"].shape == (2,)
    assert float(batch["laplacian"][1]) == pytest.approx(float(artefact_ratios(other, target, mask)["laplacian"]))


def test_bad_inputs_are_refused():
    target, mask = _scene()
    with pytest.raises(ValueError, match="needs a hole"):
        artefact_ratios(target, target, torch.ones(1, 64, 64))
    with pytest.raises(ValueError, match="one size"):
        artefact_ratios(target[:, :32], target, mask)
