"""The inpainters an evaluation compares, each behind one interface: ``method(image, mask) -> completed``.

``image`` is (3, H, W) in [0, 1], ``mask`` (1, H, W) with 1 = valid, 0 = hole (report §3); the result is
the completed (3, H, W) image. The networks of report §3.1 (Context Encoder) and §3.2 (PConv U-Net) are
wrapped by :func:`model_method`; the classical methods of :mod:`inpaintlib.classical` by name.
:func:`get_method` looks any of them up by name, :data:`LABELS` gives the names shown in tables and figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from inpaintlib import classical, inference
from inpaintlib.masks import check_pair, composite
from inpaintlib.rundir import load_model

__all__ = [
    "CLASSICAL_METHODS",
    "MODEL_METHODS",
    "METHOD_NAMES",
    "LABELS",
    "CE_IMAGE_SIZE",
    "CE_HOLE_SIZE",
    "Method",
    "check_context_encoder_pair",
    "model_method",
    "load_checkpoint",
    "get_method",
    "resolve_methods",
]

CLASSICAL_METHODS = ("telea", "ns", "biharmonic", "mean")
MODEL_METHODS = ("pconv", "ce")
METHOD_NAMES = MODEL_METHODS + CLASSICAL_METHODS + ("cg-fill",)  # the last: only when asked for
LABELS = {
    "pconv": "PConv U-Net",
    "ce": "Context Encoder",
    "telea": "OpenCV Telea",
    "ns": "OpenCV Navier-Stokes",
    "biharmonic": "biharmonic",
    "cg-fill": "biharmonic fill (CG)",
    "mean": "mean fill",
}
CE_IMAGE_SIZE = 128  # report §4.1: 128x128 inputs, 56x56 centre hole
CE_HOLE_SIZE = 56
_CLASSICAL_FUNCTIONS = {
    "telea": classical.telea,
    "ns": classical.navier_stokes,
    "biharmonic": classical.biharmonic,
    "cg-fill": classical.biharmonic_cg,
    "mean": classical.mean_fill,
}


@dataclass(frozen=True)
class Method:
    """An inpainting method behind the common interface: ``method(image, mask) -> completed``.

    ``check(image, mask)`` raises ValueError for pairs the method cannot handle (e.g. the Context Encoder
    outside its 128 px centre-hole setting); calling the method runs the check first.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    check: Callable[[torch.Tensor, torch.Tensor], None] | None = None

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.check is not None:
            self.check(image, mask)
        return self.fn(image, mask)

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


def _center_square_side(mask: torch.Tensor) -> int | None:
    """Side of the mask's hole when the hole is exactly one centred square, else None."""
    hole = mask[0] == 0
    rows, cols = hole.any(dim=1).nonzero(), hole.any(dim=0).nonzero()
    if rows.numel() == 0:
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    side = bottom - top
    h, w = hole.shape
    if right - left != side or int(hole.sum()) != side * side:
        return None
    if (top, left) != ((h - side) // 2, (w - side) // 2):
        return None
    return side


def check_context_encoder_pair(image: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise ValueError unless the pair is valid (:func:`masks.check_pair`) and in the Context Encoder's
    setting: a 128x128 image with one centred square hole of at most 64 px (report §4.1)."""
    check_pair(image, mask)
    size = tuple(image.shape[-2:])
    side = _center_square_side(mask)
    if size != (CE_IMAGE_SIZE, CE_IMAGE_SIZE) or side is None or side > 64:
        raise ValueError(
            f"the Context Encoder only fills a centred square hole (at most 64 px, {CE_HOLE_SIZE} px in the report) "
            f"of {CE_IMAGE_SIZE}x{CE_IMAGE_SIZE} images (report §4.1); got a {size[1]}x{size[0]} image with "
            + ("a non-square or off-centre hole" if side is None else f"a {side} px centred hole")
            + f". Evaluate it with size={CE_IMAGE_SIZE} and centre masks (--size {CE_IMAGE_SIZE} --center-masks)"
        )


def model_method(
    model: torch.nn.Module, name: str | None = None, device: str | torch.device | None = None, ensemble: int = 1
) -> Method:
    """Wrap a loaded PConv U-Net or Context Encoder as a :class:`Method` via ``inference.inpaint``
    (``ensemble``: mirrored copies averaged, see there).

    Inference runs the model in eval mode (BatchNorm with running statistics) and restores its mode after.

    ``name`` defaults to "pconv" / "ce" from the model's class. The PConv U-Net accepts any size (inference
    pads to a multiple of 2**layers); the Context Encoder only its report setting,
    see :func:`check_context_encoder_pair`.
    """
    kind = type(model).__name__
    guessed = {"PConvUNet": "pconv", "ContextEncoder": "ce"}.get(kind)
    name = name or guessed
    if name not in MODEL_METHODS:
        raise ValueError(f"cannot tell which method a {kind} is; pass name='pconv' or name='ce'")
    if guessed is not None and guessed != name:
        raise ValueError(f"method {name!r} needs a {'PConvUNet' if name == 'pconv' else 'ContextEncoder'}, "
                         f"but the checkpoint holds a {kind}")
    if device is None:
        device = next(model.parameters()).device

    def run(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = inference.inpaint(model, image.to(device), mask.to(device), ensemble=ensemble)
        out = out.detach().float().cpu()
        out = out[0] if out.ndim == 4 else out
        return composite(out, image.cpu().float(), mask.cpu())

    if name == "ce":
        return Method("ce", run, check_context_encoder_pair)
    # inference.inpaint pads sides that are not multiples of 2**layers and crops back: any size works
    return Method("pconv", run, check_pair)


def load_checkpoint(checkpoint: str | Path, device: str | torch.device) -> torch.nn.Module:
    """The model of a run directory or weights file (``rundir.load_model``, ``weights_only=True``),
    with a clear error when the path does not exist."""
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist (expected a run directory or a weights file)")
    return load_model(path, device=device)


def get_method(
    name: str,
    checkpoint: str | Path | torch.nn.Module | None = None,
    device: str | torch.device = "cpu",
    ensemble: int = 1,
) -> Method:
    """The method called ``name``: one of pconv, ce (need ``checkpoint``), telea, ns, biharmonic, mean.

    ``checkpoint`` is a run directory, a weights file, or an already loaded model; ``ensemble`` applies
    to the models (``inference.inpaint``).
    """
    if name not in METHOD_NAMES:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHOD_NAMES)}")
    if name in _CLASSICAL_FUNCTIONS:
        return Method(name, _CLASSICAL_FUNCTIONS[name], check_pair)
    if checkpoint is None:
        raise ValueError(f"method {name!r} needs a checkpoint (a run directory or a weights file)")
    if isinstance(checkpoint, torch.nn.Module):
        model = checkpoint.to(device)
    else:
        model = load_checkpoint(checkpoint, device)
    return model_method(model, name, device, ensemble)


def resolve_methods(
    methods: Sequence[str | Method] | Mapping[str, Callable] | str,
    checkpoint: str | Path | torch.nn.Module | None = None,
    device: str | torch.device = "cpu",
    ensemble: int = 1,
) -> list[Method]:
    """:class:`Method` objects for names (a comma string works too), Method objects or a mapping
    name -> callable; names must be unique."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if isinstance(methods, Mapping):
        items = [m if isinstance(m, Method) else Method(str(k), m) for k, m in methods.items()]
    else:
        items = [m if isinstance(m, Method) else get_method(m, checkpoint, device, ensemble) for m in methods]
    if not items:
        raise ValueError("no methods to evaluate; expected e.g. ['telea', 'mean']")
    names = [m.name for m in items]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique, got {names}")
    return items
