"""Specification of inpaintlib.masks (polarity: 1 = valid, 0 = hole)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlib import masks
from inpaintlib.masks import (
    BUCKET_LABELS,
    BUCKETS,
    bucket_label,
    center_mask,
    center_patch_slice,
    check_mask_not_degenerate,
    evaluation_masks,
    hole_ratio,
    irregular_mask,
    load_mask_png,
    overlap_band_weights,
    save_mask_png,
    validate_mask,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Context Encoder geometry
# --------------------------------------------------------------------------------------------------


def test_center_mask_is_the_reports_56_pixel_square_hole():
    mask = center_mask()
    assert mask.shape == (1, 128, 128) and mask.dtype == torch.float32
    rows, cols = np.nonzero(mask[0].numpy() == 0)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (36, 91, 36, 91)
    assert rows.size == 56 * 56
    assert set(np.unique(mask.numpy())) == {0.0, 1.0}


def test_center_patch_holds_the_hole_with_a_4_pixel_band_of_context():
    s = center_patch_slice()
    assert (s.start, s.stop) == (32, 96)
    patch = center_mask()[:, s, s]  # (1, 64, 64)
    i, j = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    border_distance = np.minimum.reduce([i, j, 63 - i, 63 - j])
    expected = (border_distance < 4).astype(np.float32)  # context band known, interior hole
    np.testing.assert_array_equal(patch[0].numpy(), expected)
    # the hole lies entirely inside the patch
    assert center_mask()[:, s, s].eq(0).sum() == center_mask().eq(0).sum()


def test_overlap_band_weights_are_10_in_the_band_and_1_inside():
    weights = overlap_band_weights()
    assert weights.shape == (1, 64, 64)
    i, j = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    band = np.minimum.reduce([i, j, 63 - i, 63 - j]) < 4
    np.testing.assert_array_equal(weights[0].numpy(), np.where(band, 10.0, 1.0))
    # the band is exactly where the centre mask is valid inside the patch
    s = center_patch_slice()
    assert torch.equal(weights[0] == 10.0, center_mask()[0, s, s] == 1)
    assert torch.equal(overlap_band_weights(8, 0, 3.0), torch.ones(1, 8, 8))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: center_mask(128, 128), "smaller"),
        (lambda: center_mask(128, 57), "even"),
        (lambda: center_mask(0, 56), "positive"),
        (lambda: center_mask(128.0, 56), "positive"),
        (lambda: center_patch_slice(128, 200), "smaller"),
        (lambda: center_patch_slice(128, 63), "even"),
        (lambda: overlap_band_weights(64, 32), "interior"),
        (lambda: overlap_band_weights(64, -1), "non-negative"),
        (lambda: overlap_band_weights(64, 4, 0.0), "band_weight"),
        (lambda: overlap_band_weights(64, 4, float("nan")), "band_weight"),
    ],
)
def test_center_geometry_rejects_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------------------
# Irregular masks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, seeds", [(64, 25), (128, 15), (256, 15), (512, 4)])
def test_irregular_mask_ratio_lands_in_every_bucket(size, seeds):
    for lo, hi in BUCKETS:
        for seed in range(seeds):
            mask = irregular_mask(size, size, (lo, hi), generator=gen(seed))
            assert mask.shape == (1, size, size) and mask.dtype == torch.float32
            values = mask.numpy()  # numpy: small torch ops are slow on a busy shared CPU
            assert set(np.unique(values).tolist()) <= {0.0, 1.0}
            ratio = np.count_nonzero(values == 0) / values.size  # independent count of holes
            assert lo <= ratio <= hi, (size, lo, hi, seed, ratio)


def test_irregular_mask_ratios_spread_over_the_bucket():
    ratios = [hole_ratio(irregular_mask(128, 128, (0.1, 0.2), generator=gen(s))) for s in range(40)]
    assert min(ratios) < 0.13 and max(ratios) > 0.17


def test_irregular_mask_non_square_and_extreme_ranges():
    for h, w, (lo, hi) in [(64, 512, (0.3, 0.4)), (300, 70, (0.5, 0.6)), (5, 7, (0.0, 1.0)), (1, 1, (0.9, 1.0))]:
        mask = irregular_mask(h, w, (lo, hi), generator=gen(3))
        assert mask.shape == (1, h, w)
        assert lo <= hole_ratio(mask) <= hi


def test_irregular_mask_hits_a_one_pixel_wide_range_exactly():
    # Forces the undo-and-shrink path and, if needed, the dilation fallback: must still terminate.
    for seed in range(5):
        mask = irregular_mask(64, 64, (0.3, 0.3 + 1 / 4096), generator=gen(seed))
        assert int((mask == 0).sum()) in (1229, 1230)  # ceil(0.3 * 4096) = 1229


def test_irregular_mask_is_reproducible_with_a_seeded_generator():
    a = irregular_mask(256, 256, (0.2, 0.3), generator=gen(7))
    b = irregular_mask(256, 256, (0.2, 0.3), generator=gen(7))
    c = irregular_mask(256, 256, (0.2, 0.3), generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(11)
    d = irregular_mask(128, 128)
    torch.manual_seed(11)
    assert torch.equal(d, irregular_mask(128, 128))  # generator=None follows torch's global seed


def test_irregular_mask_is_made_of_thick_shapes_not_scattered_pixels():
    kernel = np.ones((3, 3), np.uint8)
    for seed in range(10):
        hole = (irregular_mask(256, 256, (0.2, 0.4), generator=gen(seed))[0].numpy() == 0).astype(np.uint8)
        opened = cv2.morphologyEx(hole, cv2.MORPH_OPEN, kernel)
        assert opened.sum() >= 0.9 * hole.sum()  # survives an opening: strokes are several pixels wide
        n_components = cv2.connectedComponents(hole)[0] - 1
        assert 1 <= n_components <= 60


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(height=0, width=10), "height"),
        (dict(height=10, width=-3), "width"),
        (dict(height=10, width=10, hole_ratio=(0.5, 0.4)), "0 <= lo < hi <= 1"),
        (dict(height=10, width=10, hole_ratio=(0.2, 0.2)), "0 <= lo < hi <= 1"),
        (dict(height=10, width=10, hole_ratio=(-0.1, 0.4)), "0 <= lo < hi <= 1"),
        (dict(height=10, width=10, hole_ratio=(0.1, 1.5)), "0 <= lo < hi <= 1"),
        (dict(height=10, width=10, hole_ratio=0.3), "pair"),
        (dict(height=10, width=10, hole_ratio=(0.501, 0.509)), "no whole number of pixels"),
    ],
)
def test_irregular_mask_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        irregular_mask(**kwargs)


# --------------------------------------------------------------------------------------------------
# Hole ratio, buckets, evaluation set
# --------------------------------------------------------------------------------------------------


def test_hole_ratio_counts_zeros_for_single_masks_and_batches():
    rng = np.random.default_rng(0)
    batch_np = (rng.random((4, 1, 16, 20)) > rng.random((4, 1, 1, 1))).astype(np.float32)
    batch = torch.from_numpy(batch_np)
    expected = (batch_np == 0).reshape(4, -1).mean(axis=1)
    ratios = hole_ratio(batch)
    assert ratios.shape == (4,) and ratios.dtype == torch.float64
    np.testing.assert_allclose(ratios.numpy(), expected, rtol=0, atol=1e-12)
    assert isinstance(hole_ratio(batch[0]), float)
    assert hole_ratio(batch[0]) == pytest.approx(expected[0], abs=1e-12)
    assert hole_ratio(batch[0, 0]) == pytest.approx(expected[0], abs=1e-12)  # (H, W)
    assert hole_ratio(batch[0] == 1) == pytest.approx(expected[0], abs=1e-12)  # bool: True = valid
    assert hole_ratio(center_mask()) == 56 * 56 / 128**2
    assert hole_ratio(center_mask().to(torch.bfloat16)) == 56 * 56 / 128**2
    assert hole_ratio(center_mask().requires_grad_()) == 56 * 56 / 128**2
    for bad in (torch.ones(3, 8, 8), torch.ones(2, 3, 8, 8), torch.ones(8), np.ones((1, 8, 8))):
        with pytest.raises(ValueError, match="mask"):
            hole_ratio(bad)


@pytest.mark.parametrize(
    "ratio, label",
    [
        (0.005, None),
        (0.01, "0.01-0.1"),
        (0.05, "0.01-0.1"),
        (0.0999, "0.01-0.1"),
        (0.1, "0.1-0.2"),
        (0.25, "0.2-0.3"),
        (0.3, "0.3-0.4"),
        (0.45, "0.4-0.5"),
        (0.5, "0.5-0.6"),
        (0.6, "0.5-0.6"),
        (0.6001, None),
        (0.0, None),
        (1.0, None),
    ],
)
def test_bucket_label_uses_half_open_buckets(ratio, label):
    assert bucket_label(ratio) == label


def test_bucket_constants_follow_the_pconv_protocol():
    assert BUCKETS == [(0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)]
    assert BUCKET_LABELS == ["0.01-0.1", "0.1-0.2", "0.2-0.3", "0.3-0.4", "0.4-0.5", "0.5-0.6"]


def test_evaluation_masks_are_fixed_and_each_lies_in_its_bucket():
    first = evaluation_masks(64, per_bucket=5, seed=0)
    assert [label for label, _ in first] == [label for label in BUCKET_LABELS for _ in range(5)]
    for label, mask in first:
        assert mask.shape == (1, 64, 64)
        assert bucket_label(hole_ratio(mask)) == label
    second = evaluation_masks(64, per_bucket=5, seed=0)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(first, second))
    # a larger set extends a smaller one, bucket by bucket
    longer = evaluation_masks(64, per_bucket=7, seed=0)
    for b in range(len(BUCKETS)):
        for i in range(5):
            assert torch.equal(longer[b * 7 + i][1], first[b * 5 + i][1])
    other = evaluation_masks(64, per_bucket=5, seed=1)
    assert not all(torch.equal(a, b) for (_, a), (_, b) in zip(first, other))


def test_evaluation_masks_never_sit_on_an_upper_bucket_edge():
    # 10x10 masks: ratios are multiples of 0.01, so an edge such as 0.2 is reachable.
    for label, mask in evaluation_masks(10, per_bucket=20, seed=3):
        assert bucket_label(hole_ratio(mask)) == label


def test_evaluation_masks_are_identical_in_another_process():
    def digest(items):
        h = hashlib.sha256()
        for label, mask in items:
            h.update(label.encode())
            h.update(mask.numpy().tobytes())
        return h.hexdigest()

    code = (
        "import hashlib;from inpaintlib.masks import evaluation_masks;h=hashlib.sha256()\n"
        "for l,m in evaluation_masks((48,64),per_bucket=3,seed=5):\n"
        " h.update(l.encode());h.update(m.numpy().tobytes())\n"
        "print(h.hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == digest(evaluation_masks((48, 64), per_bucket=3, seed=5))


def test_evaluation_masks_reject_bad_arguments():
    with pytest.raises(ValueError, match="per_bucket"):
        evaluation_masks(64, per_bucket=0)
    with pytest.raises(ValueError, match="seed"):
        evaluation_masks(64, seed=-1)
    with pytest.raises(ValueError, match="size"):
        evaluation_masks((64, 64, 3))


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def test_validate_mask_accepts_binary_masks_of_either_layout():
    validate_mask(center_mask())
    validate_mask(center_mask()[None].repeat(3, 1, 1, 1), like=torch.rand(3, 3, 128, 128))
    validate_mask(center_mask()[None], like=torch.rand(5, 3, 128, 128))  # batch of 1 broadcasts
    validate_mask(center_mask() == 1, like=torch.rand(3, 128, 128))
    validate_mask(center_mask().to(torch.uint8))


@pytest.mark.parametrize(
    "mask, like, message",
    [
        ([[1.0]], None, "torch.Tensor"),
        (torch.ones(8, 8), None, r"mask\[None\]"),
        (torch.ones(3, 8, 8), None, r"\(1, H, W\) or \(N, 1, H, W\)"),
        (torch.ones(2, 3, 8, 8), None, "one channel"),
        (torch.ones(1, 1, 1, 8, 8), None, "shape"),
        (torch.ones(1, 0, 8), None, "empty"),
        (torch.ones(1, 8, 8), torch.rand(3, 8, 9), "8x8.*8x9"),
        (torch.ones(2, 1, 8, 8), torch.rand(3, 3, 8, 8), "2 masks.*3 images"),
        (torch.ones(2, 1, 8, 8), torch.rand(3, 8, 8), "single"),
        (torch.ones(1, 8, 8), torch.rand(8, 8), "image"),
    ],
)
def test_validate_mask_rejects_bad_shapes(mask, like, message):
    with pytest.raises(ValueError, match=message):
        validate_mask(mask, like=like)


def test_validate_mask_counts_non_binary_values_and_uses_the_name():
    mask = torch.ones(1, 4, 4)
    mask[0, 0, :3] = torch.tensor([0.5, -1.0, float("nan")])
    with pytest.raises(ValueError, match=r"hole_mask must be binary.*3 of 16 values"):
        validate_mask(mask, name="hole_mask")


def test_check_mask_not_degenerate():
    check_mask_not_degenerate(center_mask())
    with pytest.raises(ValueError, match="entirely hole"):
        check_mask_not_degenerate(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="no hole"):
        check_mask_not_degenerate(torch.ones(1, 8, 8))
    batch = center_mask(16, 8)[None].repeat(4, 1, 1, 1)
    batch[2] = 0
    with pytest.raises(ValueError, match=r"indices \[2\]"):
        check_mask_not_degenerate(batch)
    with pytest.raises(ValueError, match="binary"):
        check_mask_not_degenerate(torch.full((1, 8, 8), 0.5))


# --------------------------------------------------------------------------------------------------
# PNG I/O
# --------------------------------------------------------------------------------------------------


def test_png_round_trip_and_polarity(tmp_path):
    mask = irregular_mask(40, 56, (0.2, 0.4), generator=gen(1))
    path = save_mask_png(mask, tmp_path / "sub" / "m.png")
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (56, 40)
        pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels, np.where(mask[0].numpy() == 1, 255, 0))  # white = valid
    loaded = load_mask_png(path, size=(40, 56))
    assert loaded.dtype == torch.float32 and torch.equal(loaded, mask)
    assert torch.equal(load_mask_png(path, invert=True), 1 - mask)


def test_save_mask_png_rejects_non_masks(tmp_path):
    with pytest.raises(ValueError, match="binary"):
        save_mask_png(torch.full((1, 4, 4), 0.5), tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"one mask"):
        save_mask_png(torch.ones(2, 1, 4, 4), tmp_path / "b.png")


def _reference_mask(h=24, w=32):
    rng = np.random.default_rng(5)
    return rng.random((h, w)) > 0.4  # True = valid


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "I;16"])
def test_load_mask_png_reads_any_binary_png(tmp_path, mode):
    valid = _reference_mask()
    gray = np.where(valid, 255, 0).astype(np.uint8)
    if mode == "1":
        image = Image.fromarray(gray).convert("1")
    elif mode == "L":
        image = Image.fromarray(gray)
    elif mode == "P":
        image = Image.fromarray(np.stack([gray] * 3, axis=2)).convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    elif mode == "RGB":
        image = Image.fromarray(np.stack([gray] * 3, axis=2))
    elif mode == "RGBA":
        image = Image.fromarray(np.stack([gray] * 3 + [np.full_like(gray, 255)], axis=2))
    else:
        image = Image.fromarray(np.where(valid, 65535, 0).astype(np.uint16))
    path = tmp_path / f"mask_{mode.replace(';', '')}.png"
    image.save(path)
    with Image.open(path) as check:
        assert check.mode == mode
    loaded = load_mask_png(path, size=(24, 32))
    np.testing.assert_array_equal(loaded[0].numpy(), valid.astype(np.float32))


def test_load_mask_png_tolerates_a_few_grey_pixels_and_thresholds_at_128(tmp_path):
    gray = np.full((20, 20), 255, np.uint8)
    gray[:5] = 0
    gray[10, 10] = 127  # 2 grey pixels of 400 = 0.5 %
    gray[10, 11] = 128
    Image.fromarray(gray).save(tmp_path / "m.png")
    loaded = load_mask_png(tmp_path / "m.png")
    assert loaded[0, 10, 10] == 0 and loaded[0, 10, 11] == 1
    assert loaded[0, :5].sum() == 0 and loaded.sum() == 400 - 100 - 1


def test_load_mask_png_rejects_grey_images_wrong_size_and_missing_files(tmp_path):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(photo)
    with pytest.raises(ValueError, match=r"photo\.png.*grey"):
        load_mask_png(photo)
    good = save_mask_png(center_mask(16, 8), tmp_path / "good.png")
    with pytest.raises(ValueError, match=r"good\.png.*16x16.*expected"):
        load_mask_png(good, size=32)
    with pytest.raises(ValueError, match=r"good\.png.*16x16.*16x20"):
        load_mask_png(good, size=(16, 20))
    assert load_mask_png(good, size=16).shape == (1, 16, 16)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_mask_png(tmp_path / "missing.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"garbage\.png"):
        load_mask_png(garbage)


def test_module_exports():
    assert set(masks.__all__) <= set(dir(masks))
