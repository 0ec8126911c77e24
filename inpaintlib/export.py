"""Export a run's trained model to ONNX, e.g. for the book's live demo (onnxruntime-web in the page).

The graph is the model's ``forward`` traced by ``torch.onnx.export(..., dynamo=True)`` (opset 20); every
partial convolution (report eqs. (6)-(7)) becomes standard ONNX ops (Conv, Min/Max, Mul). A U-Net is traced in its
folded form (:class:`inpaintlib.models.folded.FoldedPConvUNet`: batch norms folded into the convolutions, each
decoder's "upsample, then 3x3 convolution" as one transposed convolution at the lower resolution): the same
outputs to float32 rounding with 4.1 instead of 5.4 GFLOP per 256 px picture.

* :class:`~inpaintlib.models.PConvUNet` -- inputs ``image`` ``(1, 3, H, W)`` float32 in [0, 1] and ``mask``
  ``(1, 1, H, W)`` float32, **1 = valid, 0 = hole**; output ``prediction`` ``(1, 3, H, W)`` in [0, 1], the
  network's output everywhere (not the composite).  ``H`` and ``W`` are dynamic, multiples of
  ``2**layers`` (128 for the stored 256 px runs); the caller pads and crops, and composites the known
  pixels back, as :func:`inpaintlib.inference.inpaint` does.
* :class:`~inpaintlib.models.ContextEncoder` -- input ``context`` ``(1, 3, 128, 128)`` in [-1, 1] with the
  hole filled with 0; output ``patch`` ``(1, 3, 64, 64)`` in [-1, 1], the central patch (report §3.1).

``fp16=True`` stores the weights as float16 (half the file: 16 MB instead of 33 MB for the width-32 U-Net)
and casts them back to float32 inside the graph, so the arithmetic stays float32 on every runtime (the
WebAssembly backend of onnxruntime has no fast float16 kernels); inputs and outputs stay float32. ``int8=True``
stores the large convolutions' weights as int8 with one scale per output channel (:func:`weights_to_int8`; 9 MB
for the width-32 U-Net with its head), again computed in float32: the live demo's download.

The data-dependent check that the mask holds only 0/1 is skipped while exporting (a graph cannot branch on
values; see ``PConvUNet._check_inputs``), so the caller must pass a binary mask.

**A head that blends in a biharmonic fill** (``head_fill_iterations > 0``, e.g. ``data/runs/pconv-fill-scale``)
gets the fill as a third input, ``fill`` -- for the U-Net ``(1, 3, H, W)`` = :func:`inpaintlib.smooth_fill.
biharmonic_fill` ``(image * mask, mask, iterations)`` of the padded input, for the Context Encoder the same of the
128x128 context in [0, 1] and its central hole -- instead of computing it in the graph. The fill's conjugate
gradients run a fixed number of steps on each of six pyramid levels; traced, they unrolled into a graph of some
ten thousand nodes whose export took 861 s on two cores (issue 27); as an input, the export takes seconds and a
runtime computes the fill in a tight loop of its own (the live demo: ``book/_static/live_demo.js``). The
metadata key ``inpaintlib.fill_iterations`` says how many steps per level.

Command line::

    python -m inpaintlib export data/runs/pconv --format onnx --fp16 --out pconv.fp16.onnx
    python -m inpaintlib export data/runs/pconv-fill-scale --format onnx --int8 --fp16 --out best.onnx
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from inpaintlib.errors import exits_cleanly
from inpaintlib.rundir import atomic_write, load_model

__all__ = ["export_onnx", "onnx_inputs", "weights_to_fp16", "weights_to_int8", "MAX_SIDE", "cli"]

#: Largest image side the exported PConv U-Net accepts (the dynamic dimensions' upper bound).
MAX_SIDE = 4096

_OPSET = 20
# Convolution weights smaller than this stay float32 in weights_to_int8: the first and last layers and the head
# (under 1 % of the weights; the first and the last decide every pixel directly).
_INT8_MIN_SIZE = 65536


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


def _fill_iterations(model: nn.Module) -> int:
    """CG steps per level of the biharmonic fill ``model``'s head reads (0: no head, or one without a fill)."""
    head = getattr(model, "head", None)
    return head.fill_iterations if head is not None else 0


class _FillFed(nn.Module):
    """``model`` with its head's biharmonic fill as the last positional input, passed on as ``fill=`` (both
    networks' ``forward`` take it), so the graph gets one input instead of the unrolled solver. Export only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Tensor) -> Tensor:
        *inputs, fill = args
        return self.model(*inputs, fill=fill)


def _export_args(model: nn.Module, with_fill: bool) -> tuple[tuple, dict, list[str], list[str]]:
    """Example inputs, dynamic shapes, input and output names for ``model`` (``with_fill``: plus ``fill``)."""
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
        if with_fill:
            return ((image, mask, image), {"args": (spatial, spatial, spatial)}, ["image", "mask", "fill"],
                    ["prediction"])  # fmt: skip
        return (image, mask), {"image": spatial, "mask": spatial}, ["image", "mask"], ["prediction"]
    if isinstance(model, ContextEncoder):
        from inpaintlib.models.context_encoder import INPUT_SIZE

        context = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        if with_fill:
            return (context, context.clone()), None, ["context", "fill"], ["patch"]
        return (context,), None, ["context"], ["patch"]
    raise ValueError(f"can export a PConvUNet or a ContextEncoder, got {type(model).__name__}")


def onnx_inputs(model: nn.Module, *inputs: Tensor) -> dict[str, np.ndarray]:
    """The feeds of ``model``'s exported graph for its PyTorch ``inputs`` (batch of one): ``image, mask`` for a
    :class:`PConvUNet`, ``context`` for a :class:`ContextEncoder`, plus the ``fill`` its head reads, if any,
    computed by :func:`inpaintlib.smooth_fill.biharmonic_fill` as the model's ``forward`` computes it."""
    from inpaintlib.models import PConvUNet
    from inpaintlib.smooth_fill import biharmonic_fill

    names = ["image", "mask"] if isinstance(model, PConvUNet) else ["context"]
    feeds = {name: x.detach().float().cpu().numpy() for name, x in zip(names, inputs, strict=True)}
    if _fill_iterations(model):
        if isinstance(model, PConvUNet):
            image, mask = inputs[0].float(), inputs[1].float()
        else:  # the Context Encoder's context in [-1, 1] and its fixed central hole
            image, mask = (inputs[0].float() + 1) / 2, model.hole_mask.float().to(inputs[0].device)
        fill = biharmonic_fill(image * mask, mask, _fill_iterations(model))
        feeds["fill"] = fill.cpu().numpy()
    return feeds


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


def weights_to_int8(proto):
    """``proto`` (changed in place and returned) with each convolution's float32 weights stored as int8.

    Weight-only quantization: every ``Conv`` and ``ConvTranspose`` weight of at least ``_INT8_MIN_SIZE`` elements
    becomes int8 with one scale per output channel (symmetric, ``scale = max |w| / 127`` over the channel's inputs
    and kernel) and a ``DequantizeLinear`` back to float32 at the top of the graph, so the activations and the
    arithmetic stay
    float32 (the rescaling of a partial convolution, up to 49 times at a hole's edge, would magnify an int8
    activation's rounding). A quarter of the float32 file.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    # weight name -> axis of the output channels (Conv: (C_out, C_in, kh, kw); ConvTranspose: (C_in, C_out, ...))
    out_axis = {node.input[1]: int(node.op_type == "ConvTranspose") for node in graph.node
                if node.op_type in ("Conv", "ConvTranspose")}  # fmt: skip
    kept, nodes = [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init)
        if init.name not in out_axis or init.data_type != TensorProto.FLOAT or w.size < _INT8_MIN_SIZE:
            kept.append(init)  # biases, batch norms, the all-ones kernels that count valid pixels, small layers
            continue
        axis = out_axis[init.name]
        per_channel = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        scale = np.abs(per_channel).max(axis=1).astype(np.float32) / 127
        scale[scale == 0] = 1
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        names = [f"{init.name}__int8", f"{init.name}__scale", f"{init.name}__zero"]
        kept += [numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                 numpy_helper.from_array(np.zeros(w.shape[axis], np.int8), names[2])]  # fmt: skip
        nodes.append(helper.make_node("DequantizeLinear", names, [init.name], axis=axis, name=f"{init.name}__dq"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes += list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    return proto


def _metadata(proto, model: nn.Module, source: str, fp16: bool, int8: bool) -> None:
    from inpaintlib.models import PConvUNet

    props = {
        "inpaintlib.source": source,
        "inpaintlib.kind": "pconv" if isinstance(model, PConvUNet) else "ce",
        "inpaintlib.weights_dtype": ("int8 per output channel (large convolutions), " if int8 else "")
        + ("float16" if fp16 else "float32") + " (computed in float32)",
        "inpaintlib.mask_polarity": "1 = valid (known) pixel, 0 = hole",
    }
    if _fill_iterations(model):
        props["inpaintlib.fill_iterations"] = str(_fill_iterations(model))
    if isinstance(model, PConvUNet):
        props["inpaintlib.multiple"] = str(model.multiple)
        props["inpaintlib.layers"] = str(model.layers)
        props["inpaintlib.width"] = str(model.width)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def export_onnx(model: nn.Module | str | Path, out: str | Path, fp16: bool = False, int8: bool = False) -> Path:
    """Write ``model`` (a :class:`PConvUNet`, a :class:`ContextEncoder`, or a run directory / ``weights.pt``
    loaded with :func:`inpaintlib.rundir.load_model`) to the ONNX file ``out``; returns its path.

    See the module docstring for the inputs and outputs. ``fp16``: store the weights as float16; ``int8``: store
    the large convolutions' weights as int8 (:func:`weights_to_int8`; the rest as float16 if ``fp16``).

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
    from inpaintlib.models import PConvUNet
    from inpaintlib.models.folded import FoldedPConvUNet

    # The U-Net as the same function with fewer operations: batch norms folded, a sub-pixel decoder.
    network = FoldedPConvUNet(model) if isinstance(model, PConvUNet) else model
    with_fill = bool(_fill_iterations(model))
    network = _FillFed(network) if with_fill else network
    args, dynamic, inputs, outputs = _export_args(model, with_fill)
    was_training = model.training
    network.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The exporter warns that the image's and the mask's axis names coincide: they do, on purpose.
            warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
            program = torch.onnx.export(
                network, args, dynamo=True, opset_version=_OPSET, input_names=inputs, output_names=outputs,
                dynamic_shapes=dynamic, verbose=False,
            )
    finally:
        model.train(was_training)
    proto = program.model_proto
    if int8:
        weights_to_int8(proto)
    if fp16:
        weights_to_fp16(proto)
    _metadata(proto, model, source, fp16, int8)
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
    p.add_argument("--int8", action="store_true",
                   help="store the large convolutions' weights as int8, one scale per output channel (a quarter "
                   "of the size; computes in float32)")
    p.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    return p


@exits_cleanly
def cli(argv: list[str] | None = None) -> int:
    """``python -m inpaintlib export ...`` (see ``--help``); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        path = export_onnx(args.run, args.out, fp16=args.fp16, int8=args.int8)
    except ImportError as error:  # onnx not installed: the other user errors end in inpaintlib.errors
        raise ValueError(str(error)) from None
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
