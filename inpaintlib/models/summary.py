"""Architecture tables of the two networks: one row per block, with its output shape and parameter count.

The rows are measured, not typed: a zero input runs through the model with a forward hook on each block
(the book's versions of report Fig 1, the Context Encoder and its discriminator, and Fig 2, the PConv
U-Net). :func:`layer_table` gives the rows as dicts; :func:`architecture_table` wraps them in a
:class:`LayerTable` that a chapter displays (plain text and HTML).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from inpaintlib.layers import PartialConv2d
from inpaintlib.models.context_encoder import INPUT_SIZE, PATCH_SIZE, ContextDiscriminator, ContextEncoder
from inpaintlib.models.pconv_unet import PConvUNet

__all__ = ["layer_table", "count_parameters", "LayerTable", "architecture_table"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN scales and shifts included; running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _layer_names(block: nn.Module) -> list[str]:
    """What a block does, module by module: conv / pconv / tconv, BN and the activation."""
    parts = []
    for m in block.modules():
        if isinstance(m, nn.ConvTranspose2d):
            parts.append("tconv")
        elif isinstance(m, PartialConv2d):
            parts.append("pconv")
        elif isinstance(m, nn.Conv2d):
            parts.append("conv")
        elif isinstance(m, nn.BatchNorm2d):
            parts.append("BN")
        elif isinstance(m, nn.LeakyReLU):
            parts.append(f"LReLU({m.negative_slope:g})")
        elif isinstance(m, nn.ReLU):
            parts.append("ReLU")
        elif isinstance(m, nn.Tanh):
            parts.append("tanh")
    return parts


def _blocks(model: nn.Module, image_size: int | None) -> tuple[list[tuple[str, nn.Module, list[str]]], tuple[Tensor, ...]]:
    """The model's blocks as (name, module, layer names) and a zero input of the size the table shows."""
    if isinstance(model, PConvUNet):
        size = model.image_size if image_size is None else int(image_size)
        blocks = [(f"enc{i + 1}", enc, _layer_names(enc)) for i, enc in enumerate(model.encoders)]
        for i in reversed(range(model.layers)):
            dec = model.decoders[i]
            # the last level has no activation module: the model applies a sigmoid to its output
            names = ["up x2 + concat", *_layer_names(dec)] + (["sigmoid"] if dec.act is None else [])
            blocks.append((f"dec{i + 1}", dec, names))
        if model.head is not None:
            ends = (["composite + mask + fill + known share", "gated blend with the fill"] if model.head.fill_iterations
                    else ["composite + mask", "added to dec1"])
            blocks.append(("head", model.head, [ends[0], *_layer_names(model.head), ends[1]]))
        return blocks, (torch.zeros(1, 3, size, size), torch.ones(1, 1, size, size))
    if isinstance(model, (ContextEncoder, ContextDiscriminator)):
        size = INPUT_SIZE if isinstance(model, ContextEncoder) else PATCH_SIZE
        if image_size is not None and int(image_size) != size:
            raise ValueError(f"a {type(model).__name__} only takes {size} px inputs (report §3.1), got image_size={image_size}")
        blocks = [(f"{group}.{name}", block, _layer_names(block))
                  for group, seq in model.named_children() for name, block in seq.named_children()]
        return blocks, (torch.zeros(1, 3, size, size),)
    expected = "a ContextEncoder, ContextDiscriminator or PConvUNet"
    raise ValueError(f"layer_table expects {expected}, got {type(model).__name__}")


def _output_shapes(model: nn.Module, blocks: Sequence[tuple[str, nn.Module, list[str]]], inputs: tuple[Tensor, ...]) -> dict[str, tuple[int, ...]]:
    """Run ``inputs`` through the model in eval mode with a hook on each block; its output shape (C, H, W)
    per block name (for a block returning (features, mask), the features')."""
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def record(module: nn.Module, args: Any, out: Any) -> None:
            shapes[name] = tuple((out[0] if isinstance(out, tuple) else out).shape[1:])
        return record

    handles = [block.register_forward_hook(hook(name)) for name, block, _ in blocks]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()  # a batch of one would trip BN's train-mode check on 1x1 maps
        with torch.no_grad():
            model(*(x.to(device=param.device, dtype=param.dtype) for x in inputs))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


def layer_table(model: nn.Module, image_size: int | None = None) -> list[dict]:
    """Architecture table of a model, one dict per block (for the book's figures and tables).

    Each row has ``name``, ``layer`` (what the block does), ``kernel``, ``stride``, ``in_channels``,
    ``out_channels`` (of the block's convolution), ``output_shape`` (C, H, W) and ``params``. The Context
    Encoder and its discriminator have fixed input sizes (128 and 64 px); for the PConv U-Net,
    ``image_size`` overrides the model's own (the channels do not depend on it).
    """
    blocks, inputs = _blocks(model, image_size)
    shapes = _output_shapes(model, blocks, inputs)
    rows = []
    for name, block, layers in blocks:
        conv = next(m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
        rows.append({
            "name": name, "layer": " + ".join(layers), "kernel": conv.kernel_size[0], "stride": conv.stride[0],
            "in_channels": conv.in_channels, "out_channels": conv.out_channels, "output_shape": shapes[name],
            "params": sum(p.numel() for p in block.parameters()),
        })  # fmt: skip
    return rows


@dataclass
class LayerTable:
    """An architecture table (rows of :func:`layer_table`) with text and HTML forms, for the chapters."""

    title: str
    rows: list[dict[str, Any]]

    HEAD = ("block", "layers", "kernel / stride", "channels", "output (C×H×W)", "parameters")

    @property
    def total_params(self) -> int:
        return sum(int(r["params"]) for r in self.rows)

    def _cells(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            shape = "×".join(str(v) for v in r["output_shape"])
            out.append([r["name"], r["layer"], f"{r['kernel']}×{r['kernel']} / {r['stride']}",
                        f"{r['in_channels']} → {r['out_channels']}", shape, f"{int(r['params']):,}"])
        return out

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(self.HEAD)]

        def fmt(row: Sequence[str]) -> str:
            return "  ".join(v.rjust(w) if i >= 2 else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))

        lines = [self.title, fmt(self.HEAD), "-" * (sum(widths) + 2 * (len(widths) - 1))]
        lines += [fmt(c) for c in cells]
        lines.append(f"total parameters: {self.total_params:,}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self.HEAD)
        body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in c) + "</tr>" for c in self._cells())
        return (f"<p><b>{self.title}</b></p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                f"<p>total parameters: {self.total_params:,}</p>")


def architecture_table(model: nn.Module, image_size: int | None = None, title: str | None = None) -> LayerTable:
    """The model's :func:`layer_table`, ready to display; titled with the model's class unless ``title``."""
    return LayerTable(title or type(model).__name__, layer_table(model, image_size))
