"""The VGG16 feature extractor of the PConv loss (report eq. (8)): HED weights offline, ImageNet online."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torch import nn

from inpaintlib import vgg as vgg_module
from inpaintlib.losses import PConvLoss, gram_matrix
from inpaintlib.vgg import HED_FEATURE_SCALE, VGG16Features

@pytest.fixture(scope="module")
def hed() -> VGG16Features:
    return VGG16Features("hed")


def test_hed_features_load_strictly_frozen_and_in_eval_mode(hed):
    assert hed.weights == "hed"
    assert all(not p.requires_grad for p in hed.parameters())
    convs = [m for m in hed.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256]
    hed.train()
    assert not hed.training and not any(m.training for m in hed.modules())
    x = torch.rand(2, 3, 32, 48, requires_grad=True)
    feats = hed(x)
    assert [tuple(f.shape) for f in feats] == [(2, 64, 16, 24), (2, 128, 8, 12), (2, 256, 4, 6)]
    feats[-1].sum().backward()  # gradients reach the input, not the weights
    assert x.grad is not None and all(p.grad is None for p in hed.parameters())
    # The cached state dict is copied, not shared, by each instance.
    cached = vgg_module.hed_state_dict(str(vgg_module.hed_weights_path()))
    assert convs[0].weight.data_ptr() != cached["0.weight"].data_ptr()
    torch.testing.assert_close(convs[0].weight, cached["0.weight"])


def test_hed_weights_are_cached_per_process():
    path = str(vgg_module.hed_weights_path())
    vgg_module.hed_state_dict(path)
    before = vgg_module.hed_state_dict.cache_info().hits
    VGG16Features("hed")
    assert vgg_module.hed_state_dict.cache_info().hits == before + 1


def test_hed_conv_order_gives_a_working_edge_detector():
    """The full HED network with our conv mapping finds the edges of a disc and nothing else.

    This checks the mapping of conv2d/conv2d_1/conv2d_2 to VGG16 layers in all five blocks
    (with the second and third convolution of blocks 3-5 swapped, the background lights up).
    """
    import h5py
    import torchvision

    path = vgg_module.hed_weights_path()
    state = vgg_module.hed_state_dict(str(path))
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None).features
    vgg.load_state_dict(state, strict=True, assign=True)
    size = 96
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - 48.0) ** 2 + (xx - 48.0) ** 2).sqrt()
    image = torch.where(radius < 25, 0.85, 0.2).expand(1, 3, size, size)
    x = image.flip(1) * 255 - torch.tensor(vgg_module.HED_MEAN_BGR).view(1, 3, 1, 1)
    sides = []
    ends = {3: 1, 8: 2, 15: 3, 22: 4, 29: 5}  # ReLU after the last conv of each block
    with h5py.File(path, "r") as f, torch.no_grad():
        for i, layer in enumerate(vgg[:30]):
            x = layer(x)
            if i in ends:
                b = ends[i]
                w = torch.from_numpy(f[f"dsn{b}/vars/0"][()]).permute(3, 2, 0, 1)
                side = F.conv2d(x, w, torch.from_numpy(f[f"dsn{b}/vars/1"][()]))
                sides.append(F.interpolate(side, size=(size, size), mode="bilinear", align_corners=False))
        fuse_w = torch.from_numpy(f["fuse/vars/0"][()]).permute(3, 2, 0, 1)
        edges = torch.sigmoid(F.conv2d(torch.cat(sides, 1), fuse_w, torch.from_numpy(f["fuse/vars/1"][()])))[0, 0]
    on_edge = edges[(radius - 25).abs() < 1.5].mean().item()
    far = edges[((radius - 25).abs() > 8) & (yy > 8) & (yy < 88) & (xx > 8) & (xx < 88)].mean().item()
    assert on_edge > 0.5, on_edge
    assert far < 0.05, far


def _photo(name: str, size: int = 128) -> torch.Tensor:
    import skimage.data
    import skimage.transform

    im = getattr(skimage.data, name)()
    side = min(im.shape[:2])
    im = skimage.transform.resize(im[:side, :side], (size, size), anti_aliasing=True)
    return torch.from_numpy(im).permute(2, 0, 1).float()[None]  # (1, 3, size, size)


def test_hed_perceptual_distance_ranks_blurred_before_unrelated(hed):
    photo = _photo("astronaut")
    blurred = F.avg_pool2d(F.pad(photo, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    unrelated = _photo("coffee")
    with torch.no_grad():
        f_ref, f_blur, f_other = hed(photo), hed(blurred), hed(unrelated)
    for layer, (a, b, c) in enumerate(zip(f_ref, f_blur, f_other)):
        assert (a - b).abs().mean() < 0.5 * (a - c).abs().mean(), layer
        assert (gram_matrix(a) - gram_matrix(b)).abs().mean() < (gram_matrix(a) - gram_matrix(c)).abs().mean()


def test_hed_feature_scale_keeps_liu_weights_balanced(hed):
    """With the 1/57.6 scale no weighted term of eq. (12) swamps the others on a grey guess."""
    assert HED_FEATURE_SCALE == pytest.approx(1 / (255 * 0.226), rel=1e-4)
    photos = torch.cat([_photo("astronaut", 64), _photo("chelsea", 64)])
    mask = torch.ones(2, 1, 64, 64)
    mask[..., 16:48, 16:48] = 0.0
    terms = PConvLoss(hed)(torch.full_like(photos, 0.5), photos, mask)
    weighted_hole = 6 * terms["hole"].item()
    weighted_perceptual = 0.05 * terms["perceptual"].item()
    weighted_style = 120 * (terms["style_out"] + terms["style_comp"]).item()
    for value in (weighted_perceptual, weighted_style):
        assert 0.01 < value / weighted_hole < 10, (weighted_hole, weighted_perceptual, weighted_style)
    # Unscaled HED features would make the style term ~57.6^2 times larger: far out of balance.
    assert weighted_style * 57.6**2 / weighted_hole > 100


def test_auto_falls_back_to_hed_with_a_warning(monkeypatch):
    def offline():
        raise OSError("no network")

    monkeypatch.setattr(vgg_module, "imagenet_state_dict", offline)
    with pytest.warns(UserWarning, match="HED"):
        vgg = VGG16Features("auto")
    assert vgg.weights == "hed" and vgg.feature_scale == HED_FEATURE_SCALE
    # Asking for ImageNet explicitly does not fall back silently.
    with pytest.raises(OSError, match="no network"):
        VGG16Features("imagenet")


def test_auto_uses_imagenet_weights_when_they_load(monkeypatch):
    """With a (fake) ImageNet state dict available, "auto" uses it with ImageNet normalisation."""
    fake = {k: torch.full_like(v, 0.01) for k, v in vgg_module.hed_state_dict(str(vgg_module.hed_weights_path())).items()}
    monkeypatch.setattr(vgg_module, "imagenet_state_dict", lambda: fake)
    vgg = VGG16Features("auto")
    assert vgg.weights == "imagenet" and vgg.feature_scale == 1.0
    first = next(m for m in vgg.modules() if isinstance(m, nn.Conv2d))
    assert torch.all(first.weight == 0.01)
    x = torch.rand(1, 3, 8, 8)
    mean = torch.tensor(vgg_module.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(vgg_module.IMAGENET_STD).view(1, 3, 1, 1)
    conv1_1, conv1_2 = vgg.slices[0][0], vgg.slices[0][2]
    h = F.relu(F.conv2d((x - mean) / std, conv1_1.weight, conv1_1.bias, padding=1))
    expected = F.max_pool2d(F.relu(F.conv2d(h, conv1_2.weight, conv1_2.bias, padding=1)), 2)  # pool1
    torch.testing.assert_close(vgg(x)[0], expected)


def test_vgg16_features_rejects_unknown_weights_and_bad_input(hed):
    with pytest.raises(ValueError, match="'auto', 'imagenet' or 'hed'"):
        VGG16Features("vgg19")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        hed(torch.rand(1, 1, 16, 16))
