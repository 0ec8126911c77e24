"""Specification of inpaintlib.data: image loading in every common format, crops with mirror padding."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from inpaintlib import data
from inpaintlib.data import IMAGE_EXTENSIONS, PhotoFolder, load_image, photo_dir, places365

RNG = np.random.default_rng(1234)


def random_rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def as_hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float tensor -> (H, W, 3) float array."""
    assert image.ndim == 3 and image.shape[0] == 3 and image.dtype == torch.float32
    return image.numpy().transpose(1, 2, 0)


def reflect_index(i: np.ndarray, n: int) -> np.ndarray:
    """Index into a length-n axis mirrored without repeating the edge (…2 1 0 1 2…n-2 n-1 n-2…)."""
    period = 2 * (n - 1)
    m = np.mod(i, period)
    return np.where(m < n, m, period - m)


# --------------------------------------------------------------------------------------------------
# load_image
# --------------------------------------------------------------------------------------------------


def test_image_extensions():
    assert set(IMAGE_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@pytest.mark.parametrize("suffix, kwargs", [(".png", {}), (".bmp", {}), (".tif", {}), (".webp", {"lossless": True})])
def test_load_image_lossless_rgb_formats_are_exact(tmp_path, suffix, kwargs):
    rgb = random_rgb(12, 17)
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path, **kwargs)
    image = load_image(path)
    assert image.shape == (3, 12, 17)
    np.testing.assert_allclose(as_hwc(image), rgb / 255.0, atol=1e-6)


def test_load_image_jpeg_is_close_and_in_range(tmp_path):
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([x * 5, y * 7, (x + y) * 3], axis=2).astype(np.uint8)  # smooth: JPEG keeps it well
    Image.fromarray(rgb).save(tmp_path / "a.JPG", quality=95)
    image = load_image(tmp_path / "a.JPG")
    assert image.shape == (3, 32, 48)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert np.abs(as_hwc(image) - rgb / 255.0).mean() < 0.01


def test_load_image_grey_palette_and_one_bit_become_rgb(tmp_path):
    gray = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "l.png")
    expected = np.repeat(gray[:, :, None] / 255.0, 3, 2)
    np.testing.assert_allclose(as_hwc(load_image(tmp_path / "l.png")), expected, atol=1e-6)

    palette = RNG.integers(0, 256, (4, 3), dtype=np.uint8)
    index = RNG.integers(0, 4, (9, 11), dtype=np.uint8)
    p = Image.frombytes("P", (11, 9), index.tobytes())
    p.putpalette(palette.flatten().tolist())
    p.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as check:
        assert check.mode == "P"
    np.testing.assert_allclose(as_hwc(load_image(tmp_path / "p.png")), palette[index] / 255.0, atol=1e-6)

    bits = RNG.random((9, 11)) > 0.5
    Image.fromarray(bits).save(tmp_path / "one.bmp")
    with Image.open(tmp_path / "one.bmp") as check:
        assert check.mode == "1"
    expected = np.repeat(bits[:, :, None], 3, 2).astype(np.float32)
    np.testing.assert_array_equal(as_hwc(load_image(tmp_path / "one.bmp")), expected)


def test_load_image_composites_transparency_over_white(tmp_path):
    rgb = random_rgb(8, 10)
    alpha = RNG.integers(0, 256, (8, 10), dtype=np.uint8)
    alpha[0, 0], alpha[0, 1] = 0, 255
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    a = alpha[:, :, None] / 255.0
    expected = rgb / 255.0 * a + (1 - a)
    image = as_hwc(load_image(tmp_path / "rgba.png"))
    np.testing.assert_allclose(image, expected, atol=1.01 / 255)
    np.testing.assert_array_equal(image[0, 0], [1, 1, 1])  # fully transparent -> white

    gray = RNG.integers(0, 256, (8, 10), dtype=np.uint8)
    Image.fromarray(np.dstack([gray, alpha])).save(tmp_path / "la.png")
    with Image.open(tmp_path / "la.png") as check:
        assert check.mode == "LA"
    expected = np.repeat(gray[:, :, None] / 255.0 * a + (1 - a), 3, 2)
    np.testing.assert_allclose(as_hwc(load_image(tmp_path / "la.png")), expected, atol=1.01 / 255)

    p = Image.frombytes("P", (2, 1), bytes([0, 1]))
    p.putpalette([10, 20, 30, 200, 100, 50])
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    expected = [[1, 1, 1], [200 / 255, 100 / 255, 50 / 255]]  # index 0 is transparent -> white
    np.testing.assert_allclose(as_hwc(load_image(tmp_path / "pt.png"))[0], expected, atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_load_image_16_bit_grey_keeps_full_range(tmp_path, suffix):
    values = np.array([[0, 1000, 32768], [40000, 65000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / f"g16{suffix}")
    with Image.open(tmp_path / f"g16{suffix}") as check:
        assert check.mode.startswith("I")
    image = as_hwc(load_image(tmp_path / f"g16{suffix}"))
    np.testing.assert_allclose(image[:, :, 0], values / 65535.0, atol=1e-6)  # not clipped at 255
    np.testing.assert_array_equal(image[:, :, 0], image[:, :, 2])


def test_load_image_16_bit_colour_is_scaled_to_unit_range(tmp_path):
    rgb16 = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])  # OpenCV writes BGR
    image = as_hwc(load_image(tmp_path / "c16.png"))
    np.testing.assert_allclose(image, rgb16 / 65535.0, atol=1.01 / 255)


def test_load_image_cmyk(tmp_path):
    cmyk = Image.new("CMYK", (3, 1))
    for x, value in enumerate([(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 0, 0)]):
        cmyk.putpixel((x, 0), value)
    cmyk.save(tmp_path / "cmyk.tif")
    expected = np.array([[[0, 1, 1], [1, 0, 1], [1, 1, 1]]], dtype=np.float32)  # cyan, magenta, white
    np.testing.assert_allclose(as_hwc(load_image(tmp_path / "cmyk.tif")), expected, atol=1e-6)


def test_load_image_applies_exif_orientation(tmp_path):
    rgb = random_rgb(10, 20)  # landscape pixels, stored with "rotate 90 degrees clockwise to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "phone.png", exif=exif)
    image = as_hwc(load_image(tmp_path / "phone.png"))
    assert image.shape == (20, 10, 3)
    np.testing.assert_allclose(image, np.rot90(rgb, k=-1) / 255.0, atol=1e-6)


def test_load_image_errors_name_the_file(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        load_image(tmp_path / "nothere.png")
    (tmp_path / "fake.jpg").write_bytes(b"this is text")
    with pytest.raises(ValueError, match=r"fake\.jpg"):
        load_image(tmp_path / "fake.jpg")
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(64, 64)).save(buffer, "PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")
    # Pillow's decompression-bomb guard is kept: with a tiny limit a 40x40 image is refused.
    assert Image.MAX_IMAGE_PIXELS is not None
    Image.fromarray(random_rgb(40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match=r"big\.png"):
        load_image(tmp_path / "big.png")


# --------------------------------------------------------------------------------------------------
# PhotoFolder: discovery and validation
# --------------------------------------------------------------------------------------------------


def make_folder(root: Path, names: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    pixels = {}
    for name, (h, w) in names.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels[name] = random_rgb(h, w)
        Image.fromarray(pixels[name]).save(path)
    return pixels


def test_photo_folder_finds_images_recursively_in_sorted_order(tmp_path):
    make_folder(
        tmp_path,
        {"b.png": (8, 8), "a/z.PNG": (8, 8), "a/c.bmp": (8, 8), "B2.TIFF": (8, 8), ".hidden/x.png": (8, 8)},
    )
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    Image.fromarray(random_rgb(8, 8)).save(tmp_path / ".ipynb_checkpoints" / "y.png")
    dataset = PhotoFolder(tmp_path, 8)
    relative = [p.relative_to(tmp_path).as_posix() for p in dataset.files]
    assert relative == ["B2.TIFF", "a/c.bmp", "a/z.PNG", "b.png"]
    assert len(dataset) == 4
    only_png = PhotoFolder(tmp_path, 8, extensions=("png",))
    assert [p.name for p in only_png.files] == ["z.PNG", "b.png"]
    explicit = PhotoFolder(tmp_path, 8, files=["b.png", tmp_path / "a" / "c.bmp"])
    assert explicit.files == [tmp_path / "b.png", tmp_path / "a" / "c.bmp"]


def test_photo_folder_skips_corrupt_files_with_one_warning(tmp_path):
    make_folder(tmp_path, {"good.png": (16, 16), "good2.jpg": (16, 16)})
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 garbage")
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(64, 64)).save(buffer, "PNG")
    (tmp_path / "truncated.png").write_bytes(buffer.getvalue()[:200])
    (tmp_path / "empty.webp").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = PhotoFolder(tmp_path, 16)
    assert len(caught) == 1
    message = str(caught[0].message)
    for name in ("broken.jpg", "truncated.png", "empty.webp"):
        assert name in message
    assert "3 unreadable" in message
    assert [p.name for p in dataset.files] == ["good.png", "good2.jpg"]


def test_cached_photo_folder_gives_the_same_crops_and_skips_photos_that_fail_to_decode(tmp_path):
    make_folder(tmp_path, {"a.png": (40, 30), "b.jpg": (20, 70), "c.png": (64, 64)})
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(48, 48)).save(buffer, "JPEG")
    (tmp_path / "d_cut.jpg").write_bytes(buffer.getvalue()[:-300])  # header intact, scan data cut short
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = PhotoFolder(tmp_path, 32, train=True, scale=(0.7, 1.4))
    assert "d_cut.jpg" in [p.name for p in plain.files]  # the header check alone lets it through
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cached = PhotoFolder(tmp_path, 32, train=True, scale=(0.7, 1.4), cache=True)
    assert [p.name for p in cached.files] == ["a.png", "b.jpg", "c.png"]
    assert len(caught) == 1 and "d_cut.jpg" in str(caught[0].message)
    for i in range(3):
        torch.manual_seed(i)
        from_disk = plain[i]
        torch.manual_seed(i)
        assert torch.equal(cached[i], from_disk)
    assert PhotoFolder(tmp_path, 32, files=["a.png"], cache="auto")._pixels is not None  # tiny: cached
    with pytest.raises(ValueError, match="cache must be"):
        PhotoFolder(tmp_path, 32, cache="yes")


def test_photo_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        PhotoFolder(tmp_path / "nowhere", 32)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "readme.md").write_text("no photos")
    with pytest.raises(ValueError, match="empty_dir"):
        PhotoFolder(empty, 32)
    bad = tmp_path / "only_bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"nope")
    with pytest.warns(RuntimeWarning, match="x.png"), pytest.raises(ValueError, match=r"only_bad.*unreadable"):
        PhotoFolder(bad, 32)
    make_folder(tmp_path / "ok", {"a.png": (8, 8)})
    with pytest.raises(ValueError, match="is a file"):
        PhotoFolder(tmp_path / "ok" / "a.png", 32)
    for size in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="size"):
            PhotoFolder(tmp_path / "ok", size)
    for scale in ((0.0, 1.0), (2.0, 1.0), (1.0,), "big"):
        with pytest.raises(ValueError, match="scale"):
            PhotoFolder(tmp_path / "ok", 8, scale=scale)


# --------------------------------------------------------------------------------------------------
# PhotoFolder: crops, mirror padding, flips, randomness
# --------------------------------------------------------------------------------------------------


def test_validation_crop_of_a_small_photo_is_centred_mirror_padding(tmp_path):
    pixels = make_folder(tmp_path, {"small.png": (20, 30)})["small.png"] / 255.0
    dataset = PhotoFolder(tmp_path, 64, train=False)
    crop = as_hwc(dataset[0])
    assert crop.shape == (64, 64, 3)
    # 44 extra rows and 34 extra columns, split evenly; the 20-row photo is reflected repeatedly.
    rows = reflect_index(np.arange(64) - 22, 20)
    cols = reflect_index(np.arange(64) - 17, 30)
    np.testing.assert_allclose(crop, pixels[rows][:, cols], atol=1e-6)
    np.testing.assert_allclose(crop, np.pad(pixels, ((22, 22), (17, 17), (0, 0)), mode="reflect"), atol=1e-6)
    assert torch.equal(dataset[0], dataset[0])


def test_validation_crop_of_a_large_photo_is_the_centre(tmp_path):
    pixels = make_folder(tmp_path, {"big.png": (50, 41)})["big.png"] / 255.0
    crop = as_hwc(PhotoFolder(tmp_path, 32, train=False)[0])
    np.testing.assert_allclose(crop, pixels[9:41, 4:36], atol=1e-6)


def test_one_pixel_wide_photo_is_padded_by_repetition(tmp_path):
    pixels = make_folder(tmp_path, {"line.png": (1, 5)})["line.png"] / 255.0
    crop = as_hwc(PhotoFolder(tmp_path, 8, train=False)[0])
    assert crop.shape == (8, 8, 3)
    np.testing.assert_allclose(crop, pixels[np.zeros(8, int)][:, reflect_index(np.arange(8) - 1, 5)], atol=1e-6)


def find_window(crop: np.ndarray, canvas: np.ndarray) -> tuple[int, int, bool] | None:
    """Offset (y, x, flipped) of ``crop`` inside ``canvas``, or None."""
    size = crop.shape[0]
    for flipped, candidate in ((False, crop), (True, crop[:, ::-1])):
        for y in range(canvas.shape[0] - size + 1):
            for x in range(canvas.shape[1] - size + 1):
                if np.abs(canvas[y : y + size, x : x + size] - candidate).max() < 1e-5:
                    return y, x, flipped
    return None


def test_training_crops_are_random_windows_of_the_mirror_extended_photo(tmp_path):
    pixels = make_folder(tmp_path, {"small.png": (20, 30)})["small.png"] / 255.0
    dataset = PhotoFolder(tmp_path, 32, train=True)
    # every window of the 20x30 photo extended by 12 rows and 2 columns on each side is possible
    canvas = np.pad(pixels, ((12, 12), (2, 2), (0, 0)), mode="reflect")
    torch.manual_seed(0)
    found = [find_window(as_hwc(dataset[0]), canvas) for _ in range(24)]
    assert all(f is not None for f in found)
    assert {f[2] for f in found} == {False, True}  # both flipped and unflipped crops occur
    assert len({f[:2] for f in found}) > 5  # offsets vary


def test_training_crops_of_a_large_photo_stay_inside_it(tmp_path):
    pixels = make_folder(tmp_path, {"big.png": (40, 50)})["big.png"] / 255.0
    dataset = PhotoFolder(tmp_path, 32, train=True)
    torch.manual_seed(1)
    found = [find_window(as_hwc(dataset[0]), pixels) for _ in range(16)]
    assert all(f is not None for f in found)
    assert len({f[:2] for f in found}) > 4


def test_rescaled_crops_average_the_source_pixels(tmp_path):
    pixels = make_folder(tmp_path, {"big.png": (60, 60)})["big.png"] / 255.0
    dataset = PhotoFolder(tmp_path, 12, train=True, scale=(0.5, 0.5))  # 24x24 windows shrunk to 12x12
    torch.manual_seed(2)
    pooled = pixels.reshape(30, 2, 30, 2, 3).mean(axis=(1, 3))  # independent 2x2 area average
    for _ in range(6):
        crop = as_hwc(dataset[0])
        assert crop.shape == (12, 12, 3)
        candidates = [
            pixels[y : y + 24, x : x + 24].reshape(12, 2, 12, 2, 3).mean(axis=(1, 3))
            for y in range(37)
            for x in range(37)
        ]
        assert any(np.abs(c - crop).max() < 1e-5 or np.abs(c[:, ::-1] - crop).max() < 1e-5 for c in candidates)
    assert pooled.shape == (30, 30, 3)
    enlarged = PhotoFolder(tmp_path, 40, train=True, scale=(1.5, 3.0))
    for _ in range(4):
        crop = enlarged[0]
        assert crop.shape == (3, 40, 40) and 0.0 <= crop.min() and crop.max() <= 1.0


def test_training_crops_are_reproducible_with_torch_manual_seed(tmp_path):
    make_folder(tmp_path, {"a.png": (40, 30), "b.png": (20, 70), "c.png": (64, 64)})
    dataset = PhotoFolder(tmp_path, 32, train=True, scale=(0.7, 1.4))
    torch.manual_seed(5)
    first = [dataset[i] for i in range(3)]
    torch.manual_seed(5)
    second = [dataset[i] for i in range(3)]
    torch.manual_seed(6)
    third = [dataset[i] for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, c) for a, c in zip(first, third))
    assert all(x.shape == (3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous() for x in first)


def test_dataloader_workers_give_reproducible_batches(tmp_path):
    make_folder(tmp_path, {f"{i}.png": (24, 40) for i in range(4)})
    dataset = PhotoFolder(tmp_path, 32, train=True)

    def epoch(seed):
        loader = DataLoader(dataset, batch_size=2, num_workers=2, generator=torch.Generator().manual_seed(seed))
        return torch.cat(list(loader))

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert a.shape == (4, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------------------------------
# photo_dir and places365
# --------------------------------------------------------------------------------------------------


def test_photo_dir_points_into_the_repository(tmp_path, monkeypatch):
    repo = Path(data.__file__).resolve().parents[1]
    for split in ("train", "val"):
        try:
            assert photo_dir(split) == repo / "data" / "photos" / split
        except FileNotFoundError:
            pass  # the photos may not be there in every checkout; the path logic is tested below
    fake_repo = tmp_path / "repo"
    monkeypatch.setattr(data, "photos_dir", lambda: fake_repo / "data" / "photos")
    with pytest.raises(FileNotFoundError, match="clone"):
        photo_dir("train")
    (fake_repo / "data" / "photos" / "val").mkdir(parents=True)
    assert photo_dir("val") == fake_repo / "data" / "photos" / "val"
    with pytest.raises(ValueError, match="train.*val"):
        photo_dir("test")


@pytest.fixture
def no_network(monkeypatch):
    import torchvision.datasets.places365 as tv_places
    import torchvision.datasets.utils as tv_utils

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(tv_utils, "download_url", refuse)
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", refuse)
    monkeypatch.setattr(tv_places, "download_and_extract_archive", refuse)


def test_places365_without_download_on_an_empty_folder_says_what_is_missing(tmp_path, no_network):
    (tmp_path / "empty_places").mkdir()
    with pytest.raises(FileNotFoundError, match=r"(?s)empty_places.*categories_places365\.txt.*download=True"):
        places365(tmp_path / "empty_places", size=64, download=False)
    with pytest.raises(FileNotFoundError, match="missing_places"):
        places365(tmp_path / "missing_places", size=64, download=False)


def test_places365_wraps_torchvisions_file_list_in_a_photo_folder(tmp_path, monkeypatch, no_network):
    import torchvision.datasets

    images = tmp_path / "val_256"
    pixels = make_folder(images, {"Places365_val_00000002.jpg": (40, 40), "Places365_val_00000001.jpg": (50, 50)})
    calls = []

    class FakePlaces365:
        def __init__(self, root, split, small, download):
            calls.append((root, split, small, download))
            self.images_dir = str(images)
            names = ["Places365_val_00000002.jpg", "Places365_val_00000001.jpg"]  # official list order
            self.imgs = [(str(images / n), 0) for n in names]

    monkeypatch.setattr(torchvision.datasets, "Places365", FakePlaces365)
    dataset = places365(tmp_path, size=32, download=False, train=False)
    assert calls == [(str(tmp_path), "val", True, False)]
    assert isinstance(dataset, PhotoFolder) and not dataset.train
    assert [p.name for p in dataset.files] == ["Places365_val_00000002.jpg", "Places365_val_00000001.jpg"]
    decoded = load_image(images / "Places365_val_00000001.jpg")  # JPEG is lossy: compare with the decoded file
    assert torch.equal(dataset[1], decoded[:, 9:41, 9:41])
    assert pixels["Places365_val_00000001.jpg"].shape == (50, 50, 3)

    def without_images(self, *args, **kwargs):
        self.images_dir = str(tmp_path / "elsewhere")

    monkeypatch.setattr(FakePlaces365, "__init__", without_images)
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        places365(tmp_path, size=32, download=False)
