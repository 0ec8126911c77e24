"""The artefact ratios of metrics.artefact_ratios: blur reads below 1, checkerboard above, the truth 1."""

import pytest
import torch

from inpaintlib.metrics import artefact_peaks, artefact_ratios, artefact_tiles


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


def _naive_peak(comp: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, tile: int, floor: float) -> float:
    """The checkerboard peak by loops: every 2x2 window's response, grouped by the square of its top-left pixel."""
    hole = mask[0] == 0
    comp = torch.where(hole, comp, target)
    h, w = target.shape[1:]
    best = float("-inf")
    for ty in range(0, h - h % tile, tile):
        for tx in range(0, w - w % tile, tile):
            e_c = e_t = n = 0.0
            for y in range(ty, min(ty + tile, h - 1)):
                for x in range(tx, min(tx + tile, w - 1)):
                    if not hole[y, x]:
                        continue
                    n += 1
                    for img, acc in ((comp, "c"), (target, "t")):
                        v = ((img[:, y, x] - img[:, y, x + 1] - img[:, y + 1, x] + img[:, y + 1, x + 1]) / 2).pow(2).sum()
                        if acc == "c":
                            e_c += float(v)
                        else:
                            e_t += float(v)
            if n >= 0.5 * tile * tile:
                best = max(best, (e_c / n) / max(e_t / n, floor))
    return best


def test_the_peak_matches_a_loop_and_reads_one_for_the_truth_and_below_one_for_a_blur():
    target, mask = _scene()
    g = torch.Generator().manual_seed(3)
    noisy = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    peaks = artefact_peaks(noisy, target, mask, tile=16, floor=1e-4)
    assert float(peaks["checkerboard"]) == pytest.approx(_naive_peak(noisy, target, mask, 16, 1e-4), rel=1e-4)
    assert float(artefact_peaks(target, target, mask, tile=16)["checkerboard"]) == pytest.approx(1.0)
    assert float(artefact_peaks(target, target, mask, tile=16)["laplacian"]) == pytest.approx(1.0)
    blurred = torch.nn.functional.avg_pool2d(target[None], 5, stride=1, padding=2, count_include_pad=False)[0]
    assert float(artefact_peaks(blurred, target, mask, tile=16)["laplacian"]) < 1.0


def test_a_local_checkerboard_patch_is_singled_out_by_the_peak_but_not_the_whole_hole_ratio():
    target, mask = _scene()  # 32 x 32 hole at 16..48
    smooth = torch.nn.functional.avg_pool2d(target[None], 9, stride=1, padding=4, count_include_pad=False)[0]
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    patch = (((yy + xx) % 2).float() * 0.1 - 0.05) * ((yy >= 16) & (yy < 24) & (xx >= 16) & (xx < 24)).float()
    fill = smooth + patch  # blur everywhere in the hole, checkerboard in one 8 x 8 corner of it
    whole = artefact_ratios(fill, target, mask)
    peaks = artefact_peaks(fill, target, mask, tile=8)
    assert float(peaks["checkerboard"]) > 2.0
    assert float(peaks["checkerboard"]) > 3 * float(whole["checkerboard"])
    tiles = artefact_tiles(fill, target, mask, tile=8)["checkerboard"][0, 0]
    assert tiles[2, 2] == tiles[~tiles.isnan()].max()  # the patch's square holds the peak
    assert tiles[0, 0].isnan()  # outside the hole: no ratio


def test_a_hole_smaller_than_half_a_square_has_no_peak():
    target, _ = _scene()
    mask = torch.ones(1, 64, 64)
    mask[:, 30:34, 30:34] = 0
    assert torch.isnan(artefact_peaks(target, target, mask, tile=32)["checkerboard"])


def test_the_peak_table_reads_the_csv_and_gives_median_and_count_above_two(tmp_path):
    from inpaintlib.results import artefact_peak_table, read_artefacts

    path = tmp_path / "artefacts.csv"
    path.write_text("file,mask,bucket,method,checkerboard_peak,laplacian_peak\n"
                    "a.jpg,0.1-0.2#0,0.1-0.2,pconv,1.0,0.5\nb.jpg,0.1-0.2#0,0.1-0.2,pconv,5.0,0.5\n"
                    "c.jpg,0.1-0.2#0,0.1-0.2,pconv,2.5,0.5\nd.jpg,0.01-0.1#0,0.01-0.1,pconv,nan,nan\n")
    rows = read_artefacts(path)
    table = artefact_peak_table(rows)
    assert table.splitlines()[0] == "| method | 0.01-0.1 | 0.1-0.2 |"
    assert table.splitlines()[2].endswith("| – | 2.50 (2/3) |")
