"""Specification of the evaluation: inpaintlib.evaluate, .inpainters, .pairs, .results and .classical.

Metrics are checked against independent numpy / scikit-image computations; methods against the
composite rule (known pixels untouched) and a smooth image where any real inpainting beats the mean
colour; the evaluation loop against hand-made image/mask folders, including every bad-mask case.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from inpaintlib import classical, data, evaluate, inpainters, masks, metrics, results

# ------------------------------------------------------------------------------------------------ helpers


def photo(name: str = "astronaut", size: int = 64) -> torch.Tensor:
    """A real photo from scikit-image's bundled data, resized to (3, size, size) in [0, 1]."""
    rgb = Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).float() / 255.0


def ramp(size: int = 64) -> torch.Tensor:
    """A smooth colour ramp: a different linear gradient in each channel."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([0.1 + 0.8 * x, 0.2 + 0.6 * y, 0.5 + 0.3 * (x - y)]).clamp(0, 1)


def box_mask(size: int = 64, top: int = 20, left: int = 24, h: int = 16, w: int = 12) -> torch.Tensor:
    m = torch.ones(1, size, size)
    m[:, top : top + h, left : left + w] = 0
    return m


def save_rgb(t: torch.Tensor, path) -> None:
    Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


def save_gray(a: np.ndarray, path) -> None:
    Image.fromarray(a.astype(np.uint8), mode="L").save(path)


@pytest.fixture
def photo_dir(tmp_path):
    """Three small real photos of different sizes (one smaller than the evaluation size)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name, size in [("astronaut", 80), ("coffee", 64), ("chelsea", 48)]:
        save_rgb(photo(name, size), folder / f"{name}.png")
    return folder


# ------------------------------------------------------------------------------------------------ metrics


def test_psnr_matches_the_numpy_formula_per_image():
    g = torch.Generator().manual_seed(1)
    target = torch.rand(4, 3, 32, 32, generator=g)
    pred = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    mse = ((pred.numpy().astype(np.float64) - target.numpy()) ** 2).reshape(4, -1).mean(axis=1)
    expected = 10 * np.log10(1.0 / mse)
    got = metrics.psnr(pred, target)
    assert got.shape == (4,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert metrics.psnr(pred[2], target[2]) == pytest.approx(expected[2], rel=1e-5)


def test_identical_images_give_clamped_psnr_and_ssim_one():
    image = photo("coffee", 48)
    assert metrics.psnr(image, image) == metrics.PSNR_MAX_DB == 100.0
    assert math.isfinite(metrics.psnr(image, image))
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    # one 8-bit step of error on one pixel is far below the clamp
    other = image.clone()
    other[0, 0, 0] = (other[0, 0, 0] + 1 / 255) % 1
    assert 60 < metrics.psnr(other, image) < metrics.PSNR_MAX_DB


def test_ssim_agrees_with_scikit_image_gaussian_ssim():
    g = torch.Generator().manual_seed(2)
    target = photo("astronaut", 64)
    pred = (target + 0.08 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    reference = structural_similarity(
        pred.permute(1, 2, 0).double().numpy(), target.permute(1, 2, 0).double().numpy(),
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1,
    )
    got = metrics.ssim(pred, target)
    assert got == pytest.approx(reference, abs=1e-4)
    assert got < 0.9  # the noise is visible: not a trivially perfect score


def test_l1_hole_is_mean_absolute_error_over_hole_pixels_times_100():
    g = torch.Generator().manual_seed(3)
    target, pred = torch.rand(3, 40, 40, generator=g), torch.rand(3, 40, 40, generator=g)
    mask = (torch.rand(1, 40, 40, generator=g) > 0.3).float()
    hole = mask[0].numpy() == 0
    diff = np.abs(pred.numpy() - target.numpy())  # (3, H, W)
    expected = diff[:, hole].mean() * 100
    assert metrics.l1_hole(pred, target, mask) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="hole"):
        metrics.l1_hole(pred, target, torch.ones(1, 40, 40))


def test_completion_changing_only_the_hole_leaves_valid_error_zero():
    target = photo("chelsea", 64)
    mask = box_mask(64)
    wild = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(4))  # wrong everywhere
    comp = masks.composite(wild, target, mask)
    assert torch.equal(comp * mask, target * mask)  # valid pixels: error exactly 0
    scores = metrics.score(wild, target, mask)
    hole = (mask == 0).expand_as(target)
    hole_sq = ((wild - target)[hole].double() ** 2).sum().item()
    expected_psnr = 10 * math.log10(target.numel() / hole_sq)  # MSE over all pixels, error only in the hole
    assert scores["psnr"] == pytest.approx(expected_psnr, rel=1e-4)
    assert scores["l1_hole"] == pytest.approx((wild - target)[hole].abs().mean().item() * 100, rel=1e-5)


# ------------------------------------------------------------------------------------------------ methods

CLASSICAL = ["telea", "ns", "biharmonic", "mean"]


@pytest.mark.parametrize("name", [*CLASSICAL, "cg-fill"])
def test_classical_methods_keep_known_pixels_and_never_read_the_hole(name):
    image = photo("astronaut", 64)
    mask = masks.evaluation_masks(64, per_bucket=1)[2][1]  # an irregular 0.2-0.3 mask
    method = inpainters.get_method(name)
    out = method(image * mask, mask)  # hole blanked to 0, as evaluate() passes it
    assert out.shape == image.shape and out.dtype == image.dtype
    valid = (mask == 1).expand_as(image)
    assert torch.equal(out[valid], image[valid])  # bit-exact: the composite rule
    assert out.min() >= 0 and out.max() <= 1
    assert (out[~valid] > 0.02).float().mean() > 0.5  # the hole is filled, not left black
    # whatever sits in the hole (here: the ground truth, or noise) must not change the fill
    noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(5))
    for hole_content in (image, noise):
        other = method(image * mask + hole_content * (1 - mask), mask)
        torch.testing.assert_close(other, out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["telea", "ns", "biharmonic", "cg-fill"])
def test_classical_methods_beat_the_mean_fill_on_a_smooth_ramp(name):
    image, mask = ramp(64), box_mask(64, 16, 16, 24, 20)
    ours = metrics.score(inpainters.get_method(name)(image * mask, mask), image, mask)
    floor = metrics.score(classical.mean_fill(image * mask, mask), image, mask)
    assert ours["l1_hole"] < 0.5 * floor["l1_hole"]
    assert ours["psnr"] > floor["psnr"] + 3


def test_mean_fill_uses_the_mean_of_known_pixels_only():
    image = torch.zeros(3, 8, 8)
    image[:, :, 4:] = 1.0  # right half white
    mask = torch.ones(1, 8, 8)
    mask[:, :, 6:] = 0  # hole inside the white half; known pixels are 4 black + 2 white columns
    out = classical.mean_fill(image, mask)
    assert torch.allclose(out[:, :, 6:], torch.full((3, 8, 2), 2 / 6))


def test_opencv_mask_polarity_is_255_for_holes():
    image, mask = photo("coffee", 48), box_mask(48, 10, 10, 12, 12)
    rgb, hole = classical.opencv_inputs(image, mask)
    assert hole.dtype == np.uint8 and rgb.dtype == np.uint8 and rgb.shape == (48, 48, 3)
    np.testing.assert_array_equal(hole == 255, mask[0].numpy() == 0)
    np.testing.assert_array_equal(hole == 0, mask[0].numpy() == 1)
    # OpenCV only rewrites the pixels its mask marks: with our converted mask the known pixels survive...
    raw = cv2.inpaint(rgb, hole, 3, cv2.INPAINT_TELEA)
    known = mask[0].numpy() == 1
    np.testing.assert_array_equal(raw[known], rgb[known])
    assert np.abs(raw[~known].astype(int) - rgb[~known]).sum() > 0
    # ...while handing it our own 1 = valid mask would repaint the whole known image (the trap)
    wrong = cv2.inpaint(rgb, (mask[0].numpy() * 255).astype(np.uint8), 3, cv2.INPAINT_TELEA)
    assert (wrong[known] != rgb[known]).any()


def test_methods_refuse_masks_without_hole_or_of_the_wrong_size():
    image = photo("coffee", 32)
    for bad, match in [(torch.ones(1, 32, 32), "no hole"), (torch.zeros(1, 32, 32), "all hole"),
                       (torch.ones(1, 16, 16), "same size"), (torch.full((1, 32, 32), 0.5), "binary")]:
        with pytest.raises(ValueError, match=match):
            inpainters.get_method("telea")(image, bad)
    with pytest.raises(ValueError, match="unknown method"):
        inpainters.get_method("deepfill")
    with pytest.raises(ValueError, match="checkpoint"):
        inpainters.get_method("pconv")


def test_context_encoder_check_accepts_only_the_128px_centre_hole():
    image = torch.rand(3, 128, 128)
    inpainters.check_context_encoder_pair(image, masks.center_mask(128, 56))  # the report's setting passes
    with pytest.raises(ValueError, match="centred square"):
        inpainters.check_context_encoder_pair(image, box_mask(128, 10, 10, 30, 30))
    with pytest.raises(ValueError, match="128x128"):
        inpainters.check_context_encoder_pair(torch.rand(3, 256, 256), masks.center_mask(256, 112))


# ------------------------------------------------------------------------------------------------ buckets


def test_bucket_assignment_follows_hole_ratio():
    assert masks.bucket_of(0.05) == "0.01-0.1"
    assert masks.bucket_of(0.1) == "0.1-0.2"
    assert masks.bucket_of(0.5999) == "0.5-0.6"
    assert masks.bucket_of(0.6) == "0.5-0.6"
    assert masks.bucket_of(0.005) == "<0.01"
    assert masks.bucket_of(0.75) == ">0.6"


def test_fixed_masks_are_cycled_deterministically_with_each_image_in_every_bucket(photo_dir):
    res = evaluate.evaluate(photo_dir, ["mean"], size=64, progress=False)
    assert len(res.rows) == 3 * len(masks.BUCKETS)
    for r in res.rows:
        assert r["bucket"] == masks.bucket_label(r["hole_ratio"])  # recomputed independently below
    mset = dict(enumerate(masks.evaluation_masks(64)))
    for file in {r["file"] for r in res.rows}:
        assert sorted(r["bucket"] for r in res.rows if r["file"] == file) == sorted(masks.BUCKET_LABELS)
    again = evaluate.evaluate(photo_dir, ["mean"], size=64, progress=False)
    assert [(r["file"], r["hole_ratio"], r["psnr"]) for r in res.rows] == \
           [(r["file"], r["hole_ratio"], r["psnr"]) for r in again.rows]
    assert len(mset) == 60
    one = evaluate.evaluate(photo_dir, ["mean"], size=64, progress=False, masks_per_image=1)
    assert [r["bucket"] for r in one.rows] == masks.BUCKET_LABELS[:3]


def test_summary_means_per_method_and_bucket(photo_dir):
    res = evaluate.evaluate(photo_dir, ["telea", "mean"], size=64, progress=False, masks_per_image=2)
    assert {r["method"] for r in res.rows} == {"telea", "mean"}
    for s in res.summary:
        sel = [r for r in res.rows if r["method"] == s["method"] and s["bucket"] in ("all", r["bucket"])]
        assert s["n"] == len(sel)
        assert s["psnr"] == pytest.approx(np.mean([r["psnr"] for r in sel]))
        assert s["seconds"] == pytest.approx(np.mean([r["seconds"] for r in sel]))
    # all methods saw exactly the same pairs
    pairs = {m: [(r["file"], r["mask"], r["hole_ratio"]) for r in res.rows if r["method"] == m] for m in ("telea", "mean")}
    assert pairs["telea"] == pairs["mean"]


def test_paired_margin_compares_the_same_pairs_and_points_the_sign_to_better(photo_dir, tmp_path):
    res = evaluate.evaluate(photo_dir, ["telea", "mean"], size=64, progress=False, masks_per_image=6)
    results.write_metrics_csv(res.rows, tmp_path / "metrics.csv")
    rows = results.read_metrics(tmp_path / "metrics.csv")
    assert len(rows) == len(res.rows) and isinstance(rows[0]["l1_hole"], float)
    counts = Counter(r["bucket"] for r in rows if r["method"] == "telea")
    bucket = max(counts, key=counts.get)
    telea = {(r["file"], r["mask"]): r for r in rows if r["bucket"] == bucket and r["method"] == "telea"}
    mean = {(r["file"], r["mask"]): r for r in rows if r["bucket"] == bucket and r["method"] == "mean"}
    for metric, sign in (("psnr", 1), ("l1_hole", -1)):
        d = sign * np.array([telea[k][metric] - mean[k][metric] for k in telea])
        got = results.paired_margin(rows, bucket, metric, "telea", "mean")
        assert got["n"] == len(d) >= 2 and got["better"] == int((d > 0).sum())
        assert got["mean"] == pytest.approx(d.mean()) and got["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)))
        assert got["mean"] > 0  # Telea beats a flat mean fill: positive means better for both metrics
        swapped = results.paired_margin(rows, bucket, metric, "mean", "telea")
        assert swapped["mean"] == pytest.approx(-got["mean"]) and swapped["better"] == got["n"] - got["better"]
    with pytest.raises(ValueError, match="need 2"):
        results.paired_margin(rows, bucket, "psnr", "telea", "pconv")  # never scored
    with pytest.raises(FileNotFoundError, match="no per-pair metrics"):
        results.read_metrics(tmp_path / "missing.csv")
    # format_leads prints the same margins against each bucket's best rival
    table = results.against_classical(res.summary, method="mean", others=("telea",))
    text = results.format_leads(rows, table, method="mean").splitlines()
    assert len(text) == 2 + sum(t["bucket"] != "all" for t in table)
    assert max(map(len, text)) <= 76  # fits the book's output box
    lead = results.paired_margin(rows, bucket, "psnr", "mean", "telea")
    line = next(x for x in text if x.strip().startswith(f"{bucket} |"))
    assert f"| {lead['mean']:+.2f} ± {lead['se']:.2f}  telea" in line


def test_against_classical_reads_a_written_summary_and_needs_a_strict_win(tmp_path):
    def row(method, bucket, psnr, l1):
        return {"method": method, "bucket": bucket, "n": 3, "hole_ratio": 0.1, "psnr": psnr, "ssim": 0.9,
                "l1_hole": l1, "seconds": 0.01}

    summary = [
        row("pconv", "0.1-0.2", 30.0, 5.0), row("pconv", "0.2-0.3", 25.0, 7.0), row("pconv", "all", 27.5, 6.0),
        row("telea", "0.1-0.2", 29.0, 5.5), row("telea", "0.2-0.3", 25.5, 6.5), row("telea", "all", 27.0, 6.2),
        row("ns", "0.1-0.2", 29.5, 5.0), row("ns", "0.2-0.3", 24.0, 7.5), row("ns", "all", 26.0, 6.1),
        row("biharmonic", "0.1-0.2", 28.0, 6.0), row("biharmonic", "0.2-0.3", 24.0, 8.0),
    ]  # fmt: skip
    results.write_summary(summary, tmp_path / "summary.csv", tmp_path / "summary.md")
    back = results.read_summary(tmp_path / "summary.csv")
    assert back == summary
    table = results.against_classical(back)
    assert [t["bucket"] for t in table] == ["0.1-0.2", "0.2-0.3"]  # "all" lacks biharmonic: left out
    first, second = table
    assert first["best_psnr"] == (29.5, "ns") and first["beats_psnr"]
    assert first["best_l1"] == (5.0, "ns") and not first["beats_l1"]  # a tie is not a win
    assert second["best_psnr"] == (25.5, "telea") and not second["beats_psnr"] and not second["beats_l1"]
    assert results.against_classical(back, others=("ns",))[-1]["bucket"] == "all"
    text = results.format_against_classical(table, "PConv").splitlines()
    assert len(text) == 4 and text[0].startswith("PConv:") and max(map(len, text[1:])) <= 76
    assert [c.strip() for c in text[2].split("|")] == ["0.1-0.2", "30.00", "ns  29.50", "yes", "5.00", "ns  5.00", "no"]
    assert text[3].split("|")[-1].strip() == "no"
    with pytest.raises(FileNotFoundError, match="no evaluation summary"):
        results.read_summary(tmp_path / "missing.csv")


# ------------------------------------------------------------------------------------------------ mask folders


def test_mask_folder_bad_masks_are_reported_by_name_and_skipped(tmp_path):
    images, mdir = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    mdir.mkdir()
    good = np.full((64, 64), 255, np.uint8)
    good[20:40, 16:44] = 0
    cases = {
        "good": good,
        "allhole": np.zeros((64, 64), np.uint8),
        "allvalid": np.full((64, 64), 255, np.uint8),
        "small": good[:32, :32],
        "grey": np.tile(np.linspace(0, 255, 64), (64, 1)),
    }
    for i, (stem, m) in enumerate(cases.items()):
        save_rgb(photo(["astronaut", "coffee", "chelsea", "rocket", "astronaut"][i], 64), images / f"{stem}.png")
        save_gray(m, mdir / f"{stem}.png")
    save_rgb(photo("coffee", 64), images / "nomask.png")
    res = evaluate.evaluate(images, ["mean"], masks_dir=mdir, size=64, progress=False)
    assert [r["file"] for r in res.rows] == ["good.png"]
    assert res.rows[0]["hole_ratio"] == pytest.approx(20 * 28 / 64**2)
    reasons = dict(res.skipped)
    assert set(reasons) == {"allhole.png", "allvalid.png", "small.png", "grey.png", "nomask.png"}
    assert "hole" in reasons["allhole.png"] and "polarity" in reasons["allhole.png"]
    assert "no hole" in reasons["allvalid.png"]
    assert "32x32" in reasons["small.png"] and "never resized" in reasons["small.png"]
    assert "grey" in reasons["grey.png"]
    assert "no mask" in reasons["nomask.png"]
    md = results.summary_markdown(res.summary, skipped=res.skipped)
    assert "small.png" in md and "nomask.png" in md


def test_inverted_masks_flag_gives_the_same_pairs_as_the_right_polarity(tmp_path):
    images, right, inverted = tmp_path / "images", tmp_path / "right", tmp_path / "inverted"
    for d in (images, right, inverted):
        d.mkdir()
    m = np.full((64, 64), 255, np.uint8)
    m[8:30, 10:50] = 0
    save_rgb(photo("rocket", 64), images / "a.png")
    save_gray(m, right / "a.png")
    save_gray(255 - m, inverted / "a.png")
    ref = evaluate.evaluate(images, ["telea"], masks_dir=right, size=64, progress=False)
    flipped = evaluate.evaluate(images, ["telea"], masks_dir=inverted, size=64, progress=False, invert_masks=True)
    assert ref.rows[0]["hole_ratio"] == pytest.approx(22 * 40 / 64**2)
    assert [(r["hole_ratio"], r["psnr"]) for r in flipped.rows] == [(r["hole_ratio"], r["psnr"]) for r in ref.rows]
    # without the flag the other polarity is a 0.79 hole: a different, out-of-bucket pair, not the same one
    wrong = evaluate.evaluate(images, ["telea"], masks_dir=inverted, size=64, progress=False)
    assert wrong.rows[0]["bucket"] == ">0.6"
    # an all-white file under --invert-masks is all hole: reported and skipped
    save_gray(np.full((64, 64), 255, np.uint8), inverted / "a.png")
    with pytest.raises(ValueError, match="no valid image/mask pairs"):
        evaluate.evaluate(images, ["telea"], masks_dir=inverted, size=64, progress=False, invert_masks=True)


def test_masks_at_the_photo_size_are_cropped_with_the_photo(tmp_path):
    images, mdir = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    mdir.mkdir()
    save_rgb(photo("chelsea", 96), images / "cat.png")
    m = np.full((96, 96), 255, np.uint8)
    m[40:56, 40:56] = 0  # centred: stays inside the 64 px centre crop (rows 16..79)
    save_gray(m, mdir / "cat.png")
    res = evaluate.evaluate(images, ["mean"], masks_dir=mdir, size=64, progress=False)
    assert res.rows[0]["hole_ratio"] == pytest.approx(16 * 16 / 64**2)
    # a hole entirely outside the centre crop leaves nothing to evaluate: reported, not scored
    save_rgb(photo("coffee", 96), images / "corner.png")
    m = np.full((96, 96), 255, np.uint8)
    m[:10, :10] = 0
    save_gray(m, mdir / "corner.png")
    res = evaluate.evaluate(images, ["mean"], masks_dir=mdir, size=64, progress=False)
    assert [r["file"] for r in res.rows] == ["cat.png"]
    assert "crop" in dict(res.skipped)["corner.png"]


def test_center_crop_pad_crops_and_mirrors_without_resampling():
    x = torch.arange(5 * 7, dtype=torch.float32).view(1, 5, 7)
    out = data.center_crop_pad(x, 4)
    assert torch.equal(out, x[:, 0:4, 1:5])
    small = torch.arange(4, dtype=torch.float32).view(1, 2, 2)
    padded = data.center_crop_pad(small, 6)
    assert padded.shape == (1, 6, 6)
    assert set(padded.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_lpips_is_skipped_with_a_note_when_its_weights_are_not_cached(photo_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    ok, note = metrics.lpips_available()
    assert not ok and "LPIPS skipped" in note
    res = evaluate.evaluate(photo_dir, ["mean"], size=64, progress=False, limit=1, masks_per_image=1)
    assert "lpips" not in res.rows[0]
    assert any("LPIPS skipped" in n for n in res.notes) and any("FID" in n for n in res.notes)


def test_example_grid_keeps_one_pair_per_bucket_from_different_photos_first(photo_dir):
    res = evaluate.evaluate(photo_dir, ["mean", "telea"], size=64, progress=False, lpips=False)
    buckets = [e.bucket for e in res.examples]
    order = [masks.bucket_of((lo + hi) / 2) for lo, hi in masks.BUCKETS]
    assert buckets == order  # one per bucket, small holes first
    assert len({e.file for e in res.examples[:3]}) == 3  # three photos: the first three buckets show all of them
    for e in res.examples:
        assert sorted(e.outputs) == ["mean", "telea"]
        row = next(r for r in res.rows if (r["file"], r["mask"], r["method"]) == (e.file, e.mask_name, "telea"))
        assert row["psnr"] == pytest.approx(metrics.psnr(e.outputs["telea"], e.image), abs=1e-4)
        valid = (e.mask == 1).expand_as(e.image)
        assert torch.equal(e.outputs["mean"][valid], e.image[valid])  # composites, as scored
    two = evaluate.evaluate(photo_dir, ["mean"], size=64, progress=False, lpips=False, examples_per_bucket=2)
    assert Counter(e.bucket for e in two.examples) == {b: 2 for b in order}
    none = evaluate.evaluate(photo_dir, ["mean"], size=64, progress=False, lpips=False, examples_per_bucket=0)
    assert none.examples == []


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_end_to_end_writes_every_output(photo_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = evaluate.cli(["--images", str(photo_dir), "--methods", "telea,mean", "--size", "64",
                         "--masks-per-image", "2", "--out", str(out), "--quiet"])
    assert code == 0
    for name in ["metrics.csv", "summary.csv", "summary.md", "metrics_by_hole_ratio.png", "examples.png"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 2
    assert list(rows[0])[:9] == ["file", "mask", "hole_ratio", "bucket", "method", "psnr", "ssim", "l1_hole", "seconds"]
    with (out / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert {(s["method"], s["bucket"]) for s in summary} >= {("telea", "all"), ("mean", "all")}
    md = (out / "summary.md").read_text()
    assert "| OpenCV Telea |" in md and "PSNR" in md and "s |" in md
    assert Image.open(out / "examples.png").size[0] > 200
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "wrote" in printed


def test_cli_fails_clearly_on_empty_folder_or_no_valid_pairs(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert evaluate.cli(["--images", str(empty), "--methods", "mean", "--out", str(tmp_path / "o"), "--quiet"]) != 0
    assert "no readable image" in capsys.readouterr().err
    images, mdir = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    mdir.mkdir()
    save_rgb(photo("coffee", 32), images / "a.png")
    save_gray(np.zeros((32, 32)), mdir / "a.png")
    code = evaluate.cli(["--images", str(images), "--masks", str(mdir), "--methods", "mean", "--size", "32",
                         "--out", str(tmp_path / "o"), "--quiet"])
    assert code != 0
    err = capsys.readouterr().err
    assert "no valid image/mask pairs" in err and "a.png" in err
    assert evaluate.cli(["--images", str(images), "--methods", "pconv", "--out", str(tmp_path / "o"), "--quiet"]) != 0
    assert "checkpoint" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ model methods


def _write_run(model: torch.nn.Module, kind: str, model_args: dict, run_dir) -> None:
    """A minimal run directory holding weights.pt in the format inpaintlib.rundir.load_model reads."""
    from inpaintlib.rundir import WEIGHTS_FORMAT

    run_dir.mkdir()
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "kind": kind, "model_args": model_args, "state_dict": state},
               run_dir / "weights.pt")


def test_pconv_method_is_inference_inpaint_on_any_size_and_loads_from_a_run(tmp_path, photo_dir):
    from inpaintlib import inference
    from inpaintlib.models import PConvUNet

    torch.manual_seed(0)
    args = {"image_size": 64, "width": 8}
    model = PConvUNet(**args).eval()
    _write_run(model, "pconv", args, tmp_path / "run")
    method = inpainters.get_method("pconv", checkpoint=tmp_path / "run")
    assert method.name == "pconv"
    image, mask = photo("astronaut", 72), box_mask(72, 20, 20, 24, 16)  # 72 is not a multiple of 2**layers
    out = method(image, mask)
    valid = (mask == 1).expand_as(image)
    assert torch.equal(out[valid], image[valid])
    loaded = inpainters.load_checkpoint(tmp_path / "run", "cpu")
    torch.testing.assert_close(out, inference.inpaint(loaded, image, mask))
    with pytest.raises(ValueError, match="ContextEncoder"):
        inpainters.get_method("ce", checkpoint=model)
    # the CLI picks the model method from the checkpoint when --methods is not given
    out_dir = tmp_path / "eval"
    code = evaluate.cli(["--checkpoint", str(tmp_path / "run"), "--images", str(photo_dir), "--size", "64",
                         "--masks-per-image", "1", "--limit", "2", "--out", str(out_dir), "--quiet"])
    assert code == 0
    with (out_dir / "metrics.csv").open() as f:
        methods = {r["method"] for r in csv.DictReader(f)}
    assert methods == {"pconv", "telea", "ns", "biharmonic", "mean"}
    # --ensemble reaches the model method (both the default list and an explicit --methods), and says so
    for extra in ([], ["--methods", "pconv,mean"]):
        code = evaluate.cli(["--checkpoint", str(tmp_path / "run"), "--images", str(photo_dir), "--size", "64",
                             "--masks-per-image", "1", "--limit", "1", "--out", str(out_dir / "e"), "--quiet",
                             "--ensemble", "2", "--overwrite", *extra])  # the second run rewrites e/
        assert code == 0 and "2 mirrored copies" in (out_dir / "e" / "summary.md").read_text()
        settings = json.loads((out_dir / "e" / "settings.json").read_text())
        assert (settings["ensemble"], settings["size"], settings["limit"]) == (2, 64, 1)
        assert settings["methods"][0] == "pconv"


def test_context_encoder_method_runs_on_centre_masks_and_refuses_others(tmp_path, photo_dir):
    from inpaintlib.models import ContextEncoder

    torch.manual_seed(0)
    model = ContextEncoder(bottleneck=16, width=8).eval()
    method = inpainters.get_method("ce", checkpoint=model)
    image, mask = photo("coffee", 128), masks.center_mask(128, 56)
    out = method(image, mask)
    valid = (mask == 1).expand_as(image)
    assert torch.equal(out[valid], image[valid]) and not torch.equal(out, image)
    with pytest.raises(ValueError, match="center-masks"):
        method(image, masks.evaluation_masks(128, per_bucket=1)[1][1])
    with pytest.raises(ValueError, match="center-masks"):  # refused before any work, with the fix in the message
        evaluate.evaluate(photo_dir, [method, "telea"], size=128, progress=False)
    res = evaluate.evaluate(photo_dir, [method, "telea"], size=128, center_masks=True, progress=False)
    assert {r["mask"] for r in res.rows} == {"center56"}
    assert {r["bucket"] for r in res.rows} == {"0.1-0.2"}  # 56^2 / 128^2 = 0.19
    assert len(res.rows) == 3 * 2


def test_methods_get_the_hole_blanked_so_echoing_the_input_cannot_score(photo_dir):
    res = evaluate.evaluate(photo_dir, {"echo": lambda image, mask: image}, size=64, progress=False,
                            masks_per_image=1, limit=1)
    row = res.rows[0]
    image = data.center_crop_pad(data.load_image(photo_dir / "astronaut.png"), 64)
    mask = masks.evaluation_masks(64)[0][1]
    assert row["hole_ratio"] == masks.hole_ratio(mask)
    expected = image[(mask == 0).expand_as(image)].mean().item() * 100  # |0 - target| over the hole
    assert row["l1_hole"] == pytest.approx(expected, rel=1e-5)
    assert row["psnr"] < 40


def test_center_crop_pad_matches_the_validation_crops_of_photofolder(photo_dir):
    from inpaintlib.data import PhotoFolder

    folder = PhotoFolder(photo_dir, 64, train=False)
    for i, path in enumerate(folder.files):
        ours = data.center_crop_pad(data.load_image(path), 64)
        assert torch.equal(ours, folder[i]), path.name


def test_fixed_mask_names_identify_the_mask_used(photo_dir):
    res = evaluate.evaluate(photo_dir, ["mean"], size=64, progress=False)
    fixed = masks.evaluation_masks(64)
    per_bucket = len(fixed) // len(masks.BUCKETS)
    names = {r["mask"] for r in res.rows}
    assert len(names) == len(res.rows)  # three images x six buckets, all different masks
    for r in res.rows:
        bucket, k = r["mask"].split("#")
        mask = fixed[masks.BUCKET_LABELS.index(bucket) * per_bucket + int(k)][1]
        assert r["hole_ratio"] == masks.hole_ratio(mask)


def test_example_row_labels_wrap_long_photo_names_instead_of_cutting_them():
    from inpaintlib.evaluate import _wrapped

    label = _wrapped("gcompris-monument-taj-mahal")
    assert label.replace("\n", "") == "gcompris-monument-taj-mahal" and all(len(s) <= 14 for s in label.split("\n"))
    assert _wrapped("a-" * 40).endswith("…") and _wrapped("a-" * 40).count("\n") == 2
