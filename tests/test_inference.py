"""inference.inpaint's test-time self-ensemble: the right symmetries, undone correctly, averaged."""

from __future__ import annotations

import pytest
import torch

from inpaintlib import evaluate
from inpaintlib.inference import inpaint
from inpaintlib.masks import center_mask, irregular_mask
from inpaintlib.models import ContextEncoder, PConvUNet


pytestmark = pytest.mark.usefixtures("one_thread")


def _pconv_case(h=64, w=64, seed=0):
    torch.manual_seed(seed)
    model = PConvUNet(image_size=64, width=8).eval()
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, h, w, generator=g)
    mask = irregular_mask(h, w, (0.2, 0.3), generator=g)
    return model, image, mask


def test_ensemble_of_one_is_the_plain_prediction():
    model, image, mask = _pconv_case()
    torch.testing.assert_close(inpaint(model, image, mask, ensemble=1), inpaint(model, image, mask))


def test_ensemble_of_two_averages_the_prediction_and_the_mirrored_one():
    model, image, mask = _pconv_case()
    with torch.no_grad():
        plain = model((image * mask)[None], mask[None])[0]
        mirrored = model((image * mask).flip(-1)[None], mask.flip(-1)[None])[0].flip(-1)
    expected = mask * image + (1 - mask) * ((plain + mirrored) / 2).clamp(0, 1)
    torch.testing.assert_close(inpaint(model, image, mask, ensemble=2), expected)


@pytest.mark.parametrize("ensemble", [4, 8])
def test_ensemble_output_is_symmetric_even_for_a_model_that_is_not(ensemble):
    model, image, mask = _pconv_case()
    out = inpaint(model, image, mask, ensemble=ensemble)
    assert not torch.allclose(inpaint(model, image.flip(-2), mask.flip(-2)).flip(-2), inpaint(model, image, mask))
    for transform in (lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.flip(-2, -1)):
        torch.testing.assert_close(inpaint(model, transform(image), transform(mask), ensemble=ensemble),
                                   transform(out), atol=1e-6, rtol=0)
    if ensemble == 8:
        t = lambda x: x.transpose(-2, -1)  # noqa: E731
        torch.testing.assert_close(inpaint(model, t(image), t(mask), ensemble=8), t(out), atol=1e-6, rtol=0)


def test_ensemble_works_on_non_square_pictures_and_keeps_known_pixels():
    model, image, mask = _pconv_case(h=48, w=80)
    out = inpaint(model, image, mask, ensemble=8)
    assert out.shape == image.shape
    torch.testing.assert_close(out * mask, image * mask)


def test_context_encoder_ensemble_keeps_the_report_setting():
    torch.manual_seed(0)
    model = ContextEncoder(width=8, bottleneck=16).eval()
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(1))
    mask = center_mask(128, 56)
    out = inpaint(model, image, mask, ensemble=8)
    torch.testing.assert_close(inpaint(model, image.flip(-1), mask, ensemble=8), out.flip(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out * mask, image * mask)


def test_bad_ensemble_sizes_are_refused_by_name():
    model, image, mask = _pconv_case()
    for bad in (0, 3, 16, 2.0):
        with pytest.raises(ValueError, match="ensemble must be one of"):
            inpaint(model, image, mask, ensemble=bad)


def test_evaluate_passes_the_ensemble_to_the_models_and_says_so(tmp_path):
    from PIL import Image

    for i in range(2):
        pixels = (torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(i)) * 255).byte().numpy()
        Image.fromarray(pixels).save(tmp_path / f"p{i}.png")
    model, _, _ = _pconv_case()
    kwargs = dict(size=64, masks_per_image=1, progress=False, lpips=False, checkpoint=model)
    plain = evaluate.evaluate(tmp_path, ["pconv"], **kwargs)
    mirrored = evaluate.evaluate(tmp_path, ["pconv"], ensemble=4, **kwargs)
    assert [r["psnr"] for r in plain.rows] != [r["psnr"] for r in mirrored.rows]
    assert any("averaged over 4 mirrored copies" in n for n in mirrored.notes)
    with pytest.raises(ValueError, match="ensemble must be"):
        evaluate.evaluate(tmp_path, ["pconv"], ensemble=3, **kwargs)
