"""Export a run's trained model to ONNX, e.g. for the book's live demo (onnxruntime-web in the page).

The graph is the model's ``forward`` traced by ``torch.onnx.export(..., dynamo=True)`` (opset 20); every
partial convolution (report eqs. (6)-(7)) becomes standard ONNX ops (Conv, ReduceSum, Min/Max, Mul).

* :class:`~inpaintlib.models.PConvUNet` -- inputs ``image`` ``(1, 3, H, W)`` float32 in [0, 1] and ``mask``
  ``(1, 1, H, W)`` float32, **1 = valid, 0 = hole**; output ``prediction`` ``(1, 3, H, W)`` in [0, 1], the
  network's output everywhere (not the composite).  ``H`` and ``W`` are dynamic, multiples of
  ``2**layers`` (128 for the stored 256 px runs); the caller pads and crops, and composites the known
  pixels back, as :func:`inpaintlib.inference.inpaint` does.
* :class:`~inpaintlib.models.ContextEncoder` -- input ``context`` ``(1, 3, 128, 128)`` in [-1, 1] with the
  hole filled with 0; output ``patch`` ``(1, 3, 64, 64)`` in [-1, 1], the central patch (report §3.1).

``fp16=True`` stores the weights as float16 (half the file: 13 MB instead of 26 MB for the width-32 U-Net)
and casts them back to float32 inside the graph, so the arithmetic stays float32 on every runtime (the
WebAssembly backend of onnxruntime has no fast float16 kernels); inputs and outputs stay float32.

The data-dependent check that the mask holds only 0/1 is skipped while exporting (a graph cannot branch on
values; see ``PConvUNet._check_inputs``), so the caller must pass a binary mask.

Command line::

    python -m inpaintlib export data/runs/pconv-l1 --format onnx --fp16 --out pconv-l1.fp16.onnx
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inpaintlib.errors import exits_cleanly
from inpaintlib.rundir import atomic_write, load_model

__all__ = ["export_onnx", "weights_to_fp16", "MAX_SIDE", "cli"]

#: Largest image side the exported PConv U-Net accepts (the dynamic dimensions' upper bound).
MAX_SIDE = 4096

_OPSET = 20


def _onnx():
    """The ``onnx`` package, or a clear error naming the pinned install (heavy optional dependency)."""
    try:
        import onnx  # heavy optional dependency: only needed to export
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs the packages onnx and onnxscript ({error}); install the pinned versions with "
            "`pip install -r requirements.txt` or `pip install -e .[export]`"
        ) from None
    return onnx


def _export_args(model: nn.Module) -> tuple[tuple, dict, list[str], list[str]]:
    """Example inputs, dynamic shapes, input and output names for ``model``."""
    from inpaintlib.models import ContextEncoder, PConvUNet

    if isinstance(model, PConvUNet):
        m = model.multiple
        size = 2 * m  # not 1 * m: torch.export would specialise a dynamic dimension that is 1
        image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        mask = torch.ones(1, 1, size, size)
        mask[..., size // 4 : size // 2, size // 4 : size // 2] = 0
        hk = torch.export.Dim("hk", min=1, max=max(1, MAX_SIDE // m))
        wk = torch.export.Dim("wk", min=1, max=max(1, MAX_SIDE // m))
        spatial = {2: m * hk, 3: m * wk}
        return (image, mask), {"image": spatial, "mask": spatial}, ["image", "mask"], ["prediction"]
    if isinstance(model, ContextEncoder):
        from inpaintlib.models.context_encoder import INPUT_SIZE

        return (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), None, ["context"], ["patch"]
    raise ValueError(f"can export a PConvUNet or a ContextEncoder, got {type(model).__name__}")


def weights_to_fp16(proto):
    """``proto`` (an ``onnx.ModelProto``, changed in place and returned) with its float32 weights stored as float16.

    Each float32 initializer with more than one element is replaced by a float16 copy and a ``Cast`` back to
    float32 at the top of the graph, so every op still computes in float32; scalars stay float32.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims, dtype=np.int64)) <= 1:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name=f"{init.name}__fp16")
        kept.append(half)
        cast = helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=f"{init.name}__cast")
        casts.append(cast)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    return proto


def _metadata(proto, model: nn.Module, source: str, fp16: bool) -> None:
    from inpaintlib.models import PConvUNet

    props = {
        "inpaintlib.source": source,
        "inpaintlib.kind": "pconv" if isinstance(model, PConvUNet) else "ce",
        "inpaintlib.weights_dtype": "float16 (cast to float32 in the graph)" if fp16 else "float32",
        "inpaintlib.mask_polarity": "1 = valid (known) pixel, 0 = hole",
    }
    if isinstance(model, PConvUNet):
        props["inpaintlib.multiple"] = str(model.multiple)
        props["inpaintlib.layers"] = str(model.layers)
        props["inpaintlib.width"] = str(model.width)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def export_onnx(model: nn.Module | str | Path, out: str | Path, fp16: bool = False) -> Path:
    """Write ``model`` (a :class:`PConvUNet`, a :class:`ContextEncoder`, or a run directory / ``weights.pt``
    loaded with :func:`inpaintlib.rundir.load_model`) to the ONNX file ``out``; returns its path.

    See the module docstring for the inputs and outputs. ``fp16``: store the weights as float16.

    Raises:
        ValueError: not an inpainting model; FileNotFoundError: no such run, or ``out``'s folder is missing.
    """
    onnx = _onnx()
    source = str(model) if isinstance(model, (str, Path)) else type(model).__name__
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'model.onnx'}")
    if isinstance(model, (str, Path)):
        model = load_model(model)
    args, dynamic, inputs, outputs = _export_args(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The exporter warns that the image's and the mask's axis names coincide: they do, on purpose.
            warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
            program = torch.onnx.export(
                model, args, dynamo=True, opset_version=_OPSET, input_names=inputs, output_names=outputs,
                dynamic_shapes=dynamic, verbose=False,
            )
    finally:
        model.train(was_training)
    proto = program.model_proto
    if fp16:
        weights_to_fp16(proto)
    _metadata(proto, model, source, fp16)
    data = proto.SerializeToString()  # in memory first: a full disk never leaves half a model (weights < 2 GB)
    atomic_write(out, lambda f: f.write(data))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inpaintlib export",
        description="Export a run's trained model (PConv U-Net or Context Encoder) to a file another runtime "
        "can execute: ONNX (opset 20), e.g. for onnxruntime-web in the book's live demo.",
    )
    p.add_argument("run", help="a run directory (uses weights.pt) or a weights.pt file")
    p.add_argument("--format", required=True, choices=["onnx"], help="output format (only onnx)")
    p.add_argument("--fp16", action="store_true",
                   help="store the weights as float16 (half the size; computes in float32)")
    p.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    return p


@exits_cleanly
def cli(argv: list[str] | None = None) -> int:
    """``python -m inpaintlib export ...`` (see ``--help``); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        path = export_onnx(args.run, args.out, fp16=args.fp16)
    except ImportError as error:  # onnx not installed: the other user errors end in inpaintlib.errors
        raise ValueError(str(error)) from None
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
