"""Filling the holes of a picture with a trained model, from Python or the command line.

``inpaint(model, image, mask)`` returns the *composite* (report §3.2.2, ``x_comp``): the known pixels
of ``image`` unchanged, the model's prediction in the hole.  It works for both networks:

* :class:`~inpaintlib.models.PConvUNet` -- any image size; sides that are not multiples of
  ``2**layers`` are padded by edge replication for the network and cropped back afterwards;
* :class:`~inpaintlib.models.ContextEncoder` -- 128x128 images whose hole lies inside the central
  64x64 patch, the only region it paints (report §3.1); the [0, 1] <-> [-1, 1] conversion is done here.

Command line::

    python -m inpaintlib inpaint --checkpoint pconv-fill-scale --image photo.png --mask mask.png --out filled.png
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from inpaintlib.cliname import program
from inpaintlib.data import load_image
from inpaintlib.device import resolve_device
from inpaintlib.errors import exits_cleanly
from inpaintlib.hub import resolve_checkpoint, stored_run_names
from inpaintlib.images import pixel_limit
from inpaintlib.masks import center_patch_slice, composite, hole_ratio, load_mask_png, validate_mask
from inpaintlib.models import ContextEncoder, PConvUNet
from inpaintlib.rundir import atomic_write, load_model

__all__ = ["inpaint", "ENSEMBLE_SIZES", "check_ensemble", "cli"]


def _check_padded_size(h: int, w: int, m: int) -> tuple[int, int]:
    """The padding ``(pad_h, pad_w)`` up to the network's multiple ``m``; refused when the padded picture is
    over :func:`inpaintlib.images.pixel_limit` (a 3x100000 strip pads to 128x100096 for a 7-layer U-Net:
    43 times its pixels), so the limit bounds the network's memory, not only the file's."""
    pad_h, pad_w = (-h) % m, (-w) % m
    padded, limit = (h + pad_h) * (w + pad_w), pixel_limit()
    if padded > limit:
        raise ValueError(
            f"a {w}x{h} picture is padded to {w + pad_w}x{h + pad_h} = {padded / 1e6:.1f} megapixels for the network "
            f"(its sides must be multiples of {m}), over the limit of {limit / 1e6:g} megapixels; crop it to a "
            f"less elongated shape, or set INPAINTLIB_MAX_PIXELS"
        )
    return pad_h, pad_w


def _predict_pconv(model: nn.Module, image: Tensor, mask: Tensor) -> Tensor:
    h, w = image.shape[-2:]
    pad_h, pad_w = _check_padded_size(h, w, model.multiple)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")  # (N, 3, H', W')
        mask = F.pad(mask, (0, pad_w, 0, pad_h), mode="replicate")  # (N, 1, H', W')
    return model(image, mask)[..., :h, :w]


def _predict_context_encoder(model: nn.Module, image: Tensor, mask: Tensor) -> Tensor:
    size = image.shape[-1]
    if tuple(image.shape[-2:]) != (128, 128):
        raise ValueError(
            f"the Context Encoder takes 128x128 images (report §3.1); got {image.shape[-2]}x{image.shape[-1]}. "
            "Crop or resize the picture first, or use a PConv U-Net for other sizes"
        )
    s = center_patch_slice(size, 64)
    outside = (1 - mask).clone()
    outside[..., s, s] = 0
    if bool(outside.any()):
        raise ValueError(
            "the Context Encoder only paints the central 64x64 patch (rows and columns 32-95), but the mask "
            "has holes outside it; use a PConv U-Net for holes elsewhere"
        )
    patch = model((image * 2 - 1) * mask)  # (N, 3, 64, 64) in [-1, 1]
    prediction = image.clone()
    prediction[..., s, s] = (patch + 1) / 2
    return prediction


ENSEMBLE_SIZES = (1, 2, 4, 8)


def check_ensemble(ensemble: object) -> int:
    """``ensemble`` when it is one of :data:`ENSEMBLE_SIZES`, else a ValueError naming the choices."""
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble not in ENSEMBLE_SIZES:
        raise ValueError(f"ensemble must be one of {ENSEMBLE_SIZES} (mirrored copies averaged), got {ensemble!r}")
    return ensemble


def _symmetries(count: int) -> list[tuple[tuple[int, ...], bool]]:
    """The first ``count`` of the square's 8 symmetries, as (flipped dims, transposed): identity,
    horizontal flip, vertical flip, both (a half turn), then the same four after a transpose."""
    flips = [(), (-1,), (-2,), (-2, -1)]
    return [(f, t) for t in (False, True) for f in flips][:count]


def _apply(x: Tensor, flips: tuple[int, ...], transpose: bool) -> Tensor:
    x = x.transpose(-2, -1) if transpose else x
    return x.flip(flips) if flips else x


def _undo(x: Tensor, flips: tuple[int, ...], transpose: bool) -> Tensor:
    x = x.flip(flips) if flips else x
    return x.transpose(-2, -1) if transpose else x


def inpaint(model: nn.Module | str | Path, image: Tensor, mask: Tensor, ensemble: int = 1) -> Tensor:
    """Composite of ``image``'s known pixels and ``model``'s prediction in the hole.

    Args:
        model: a trained :class:`PConvUNet` or :class:`ContextEncoder` (or a run directory /
            ``weights.pt`` path, loaded with :func:`inpaintlib.rundir.load_model`).
        image: ``(3, H, W)`` or ``(N, 3, H, W)`` float in [0, 1].
        mask: ``(1, H, W)`` or ``(N, 1, H, W)``, **1 = valid (known), 0 = hole**.

    Returns:
        a tensor shaped like ``image`` on ``image``'s device, equal to ``image`` wherever ``mask`` is 1.
        The model runs in eval mode (BatchNorm with running statistics) without gradients.

    ``ensemble`` (1, 2, 4 or 8): average the model's predictions for that many mirrored versions of the
    input -- identity, horizontal flip, vertical flip, half turn, and for 8 the same four transposed --
    each mapped back before averaging (a test-time *self-ensemble*, as in Lim et al. 2017's EDSR+). It
    costs ``ensemble`` forward passes; averaging pulls the fill towards the mean, which raises PSNR and
    lowers L1 a little and smooths texture a little. Transposes need a square image for the Context
    Encoder (its 128x128 input always is).

    Raises:
        ValueError: wrong shapes, a mask that is not binary or does not match the image, values
            outside [0, 1], a hole the model cannot fill, or (PConv U-Net) a picture whose padding to the
            network's multiple is over :func:`inpaintlib.images.pixel_limit`.
    """
    if isinstance(model, (str, Path)):
        model = load_model(model)
    network = getattr(model, "_orig_mod", model)  # what torch.compile wrapped, if it was compiled
    if not isinstance(network, (PConvUNet, ContextEncoder)):
        raise ValueError(f"model must be a PConvUNet or a ContextEncoder, got {type(model).__name__}")
    if not isinstance(image, Tensor) or image.ndim not in (3, 4) or image.shape[-3] != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a (3, H, W) or (N, 3, H, W) tensor in [0, 1], got {got}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor with values in [0, 1], got dtype {image.dtype}")
    if not bool(torch.isfinite(image).all()):
        raise ValueError("image holds NaN or infinite values; expected finite values in [0, 1]")
    if float(image.min()) < 0 or float(image.max()) > 1:
        raise ValueError("image must be a float tensor with values in [0, 1]")
    check_ensemble(ensemble)
    validate_mask(mask, like=image)
    if bool((mask.flatten(-3).amax(-1) == 0).any()):
        raise ValueError("mask is entirely hole (all 0 = hole): there is no known pixel to inpaint from")
    if isinstance(network, PConvUNet):  # before any work: the padding is what costs memory
        _check_padded_size(*image.shape[-2:], network.multiple)
    single = image.ndim == 3
    images = image.unsqueeze(0) if single else image  # (N, 3, H, W)
    masks = mask.unsqueeze(0) if mask.ndim == 3 else mask  # (N or 1, 1, H, W)
    masks = masks.to(images.dtype).expand(images.shape[0], 1, -1, -1)

    param = next(model.parameters())
    x, m = images.to(param.device, param.dtype), masks.to(param.device, param.dtype)
    was_training = model.training
    model.eval()
    try:
        predict = _predict_pconv if isinstance(network, PConvUNet) else _predict_context_encoder
        with torch.no_grad():
            prediction = sum(
                _undo(predict(model, _apply(x, f, t), _apply(m, f, t)).float(), f, t) for f, t in _symmetries(ensemble)
            ) / ensemble
    finally:
        model.train(was_training)
    prediction = prediction.to(images.device, images.dtype).clamp(0, 1)
    out = composite(prediction, images, masks)
    return out[0] if single else out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{program()} inpaint",
        description="Fill the holes of one picture with a trained model and write the composite "
        "(known pixels unchanged, the model's prediction in the hole). Mask convention: white = keep "
        "(valid), black = hole; masks from OpenCV, LaMa or diffusers (white = hole) need --invert-mask.",
    )
    p.add_argument("--checkpoint", required=True, help="a run directory (uses weights.pt), a weights.pt file, or the "
                   f"name of a stored run ({', '.join(stored_run_names())}; downloaded and cached outside a checkout)")
    p.add_argument("--image", required=True, help="the picture to complete (any format Pillow reads)")
    p.add_argument("--mask", required=True, help="black-and-white PNG of the same size: white = keep, black = hole")
    p.add_argument("--out", required=True, help="where to write the completed picture (PNG recommended)")
    p.add_argument("--invert-mask", action="store_true", help="the mask file is white = hole, black = keep")
    p.add_argument("--allow-large-holes", action="store_true",
                   help=f"fill holes larger than the training range ({MAX_TRAINED_HOLE * 100:.0f} %% of the picture) anyway")
    p.add_argument("--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, cuda or mps")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first (pays off only for many or large images; see bench/RESULTS.md)")
    p.add_argument("--ensemble", type=int, default=1, choices=ENSEMBLE_SIZES,
                   help="average the predictions for 1 (default), 2, 4 or 8 mirrored copies of the input")
    return p


MAX_TRAINED_HOLE = 0.6  # the largest hole ratio of the training masks (report §4.2, Liu et al.'s buckets)


def check_cli_mask(mask: Tensor, name: str, allow_large: bool) -> float:
    """The command line's guard on a mask file: no hole, all hole, or a hole beyond the training range
    (often a mask of the opposite polarity) are refused with the convention spelled out. Returns the
    hole ratio."""
    ratio = float(hole_ratio(mask))
    convention = ("Here white = keep (1 = valid) and black = hole; OpenCV, LaMa and diffusers use white = hole: "
                  "pass --invert-mask for such files")
    if ratio == 0:
        raise ValueError(f"mask {name} has no hole (all white = valid): nothing to inpaint. {convention}")
    if ratio == 1:
        raise ValueError(f"mask {name} is entirely hole (all black): no known pixel to inpaint from. {convention}")
    if ratio > MAX_TRAINED_HOLE and not allow_large:
        inverted = " This looks like an inverted mask." if 1 - ratio <= MAX_TRAINED_HOLE else ""
        raise ValueError(
            f"mask {name} makes {ratio:.0%} of the picture a hole, more than the {MAX_TRAINED_HOLE:.0%} the model "
            f"was trained on.{inverted} {convention}; --allow-large-holes fills it anyway"
        )
    return ratio


def _check_out(out: Path, inputs: list[Path]) -> str:
    """The Pillow format ``--out`` is written in, checked before any work: its folder exists, it is not one of
    the inputs (an output never replaces an input), and its format can hold an RGB picture."""
    if out.parent and not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'filled.png'}")
    for given in inputs:
        if out.resolve() == given.resolve():
            raise ValueError(f"--out {out} is also an input ({given}); write the result to another file")
    image_format = Image.registered_extensions().get(out.suffix.lower())
    try:
        if image_format is None:
            raise KeyError(out.suffix)
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=image_format)
    except (KeyError, OSError, ValueError):
        raise ValueError(f"--out {out}: cannot write an RGB picture as {out.suffix or 'a file without suffix'!r}; "
                         "use .png (lossless), .jpg, .webp, .tif or .bmp") from None
    return image_format


@exits_cleanly
def cli(argv: list[str] | None = None) -> int:
    """``python -m inpaintlib inpaint ...`` (see ``--help``); returns the exit status."""
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    image_format = _check_out(out, [Path(args.image), Path(args.mask)])
    model = load_model(resolve_checkpoint(args.checkpoint), device=resolve_device(args.device))
    if args.compile:
        model = torch.compile(model)
    image = load_image(args.image)  # (3, H, W)
    mask = load_mask_png(args.mask, size=tuple(image.shape[-2:]), invert=args.invert_mask)
    ratio = check_cli_mask(mask, args.mask, args.allow_large_holes)
    result = inpaint(model, image, mask, ensemble=args.ensemble)
    array = (result.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format=image_format)
    atomic_write(out, lambda f: f.write(buf.getvalue()))
    print(f"{out}: {array.shape[1]}x{array.shape[0]}, {100 * ratio:.1f} % hole, {time.perf_counter() - start:.1f} s")
    return 0
