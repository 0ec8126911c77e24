"""Architecture diagrams drawn from the models themselves (the book's versions of report Figs 1-2).

:func:`architecture_figure` reads nothing but ``inpaintlib.models.layer_table(model, image_size)``,
the table the chapters print, so a diagram cannot disagree with the code it describes.  Layout:
one box per row of the table (plus one for the input), placed left to right in the order the
data flows and at a height of ``log2`` of the spatial size, so an encoder-decoder appears as a
V (Context Encoder, report Fig 1) or a U (PConv U-Net, report Fig 2).  Each box names the block,
its output channels and its spatial size; the colour says its role and the legend lists the
layers of each role, read from the table.  For a U-Net, the skip connections are drawn as
horizontal arrows labelled with the channels they add; for partial convolutions, the mask's
path (1 = valid, updated by eq. (7) at every layer) is drawn dashed beside the features.

Every drawn element carries a ``gid`` (``layer:<name>``, ``input``, ``data:<a>-><b>``,
``skip:<a>-><b>``, ``mask:<a>-><b>``), so tests and readers can find them in the figure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from torch import nn

from inpaintlib.models import layer_table

__all__ = ["architecture_figure", "ROLE_COLOURS"]

ROLE_COLOURS = {
    "input": "#e0e0e0",
    "encoder": "#c6dbef",
    "bottleneck": "#d4c8ea",
    "decoder": "#fdd9b5",
    "output": "#c7e9c0",
}
_FEATURE_COLOUR = "#333333"
_SKIP_COLOUR = "#2a8c55"
_MASK_COLOUR = "#8c2d04"
_BOX_W, _BOX_H = 0.84, 0.78  # in axis units: one column per block, one octave of size per unit height
_INCH_X, _INCH_Y = 0.74, 0.92  # inches per axis unit


def _spatial(row: dict) -> int:
    return int(row["output_shape"][-1])


def _short(name: str) -> str:
    """``encoder.enc1`` -> ``enc1``: the block's own name, without its group."""
    return name.rsplit(".", 1)[-1]


def _roles(rows: Sequence[dict]) -> list[str]:
    """Encoder up to the smallest map, the bottleneck there, decoder after it, output last."""
    sizes = [_spatial(r) for r in rows]
    low = sizes.index(min(sizes))
    roles = ["encoder" if i < low else "bottleneck" if i == low else "decoder" for i in range(len(rows))]
    roles[-1] = "output"
    return roles


def _input_size(rows: Sequence[dict]) -> int:
    """Spatial size of the input: the first block's output times its stride."""
    return _spatial(rows[0]) * int(rows[0]["stride"])


def _skip_sources(rows: Sequence[dict], roles: Sequence[str]) -> dict[int, int]:
    """For each decoder row that concatenates a skip connection: index of the row it comes from
    (the encoder row whose output has the decoder row's spatial size, or -1 for the input)."""
    sources: dict[int, int] = {}
    for i, row in enumerate(rows):
        if "concat" not in str(row["layer"]):
            continue
        same = [j for j in range(i) if roles[j] == "encoder" and _spatial(rows[j]) == _spatial(row)]
        sources[i] = same[-1] if same else -1
    return sources


def _box(ax: plt.Axes, x: float, y: float, name: str, lines: Sequence[str], role: str, gid: str,
         fontsize: float) -> FancyBboxPatch:
    """A rounded box with the block's name in bold on top and ``lines`` below it."""
    box = FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0,rounding_size=0.08",
                         facecolor=ROLE_COLOURS[role], edgecolor="#555555", linewidth=0.8, zorder=2)
    box.set_gid(gid)
    ax.add_patch(box)
    if len(name) > 7:  # split long names (bottleneck) so they fit the box
        name = f"{name[:(len(name) + 2) // 2]}-\n{name[(len(name) + 2) // 2:]}"
    lift = 0.075 * (len(lines) - 2)  # keep the block of text centred in the box
    ax.text(x, y + 0.05 + lift, name, ha="center", va="bottom", fontsize=fontsize, fontweight="bold", zorder=3,
            linespacing=1.0)
    ax.text(x, y + 0.02 + lift, "\n".join(lines), ha="center", va="top", fontsize=fontsize, zorder=3,
            linespacing=1.1)
    return box


def _arrow(ax: plt.Axes, a: FancyBboxPatch, b: FancyBboxPatch, gid: str, colour: str, style: str = "-",
           rad: float = 0.0, width: float = 1.0) -> FancyArrowPatch:
    ca, cb = _centre(a), _centre(b)
    arrow = FancyArrowPatch(ca, cb, patchA=a, patchB=b, arrowstyle="-|>", mutation_scale=9, color=colour,
                            linestyle=style, linewidth=width, connectionstyle=f"arc3,rad={rad}", zorder=1)
    arrow.set_gid(gid)
    ax.add_patch(arrow)
    return arrow


def _centre(box: FancyBboxPatch) -> tuple[float, float]:
    return box.get_x() + box.get_width() / 2, box.get_y() + box.get_height() / 2


def _legend(fig: Figure, rows: Sequence[dict], roles: Sequence[str], skips: bool, masks: bool) -> None:
    handles = [Patch(facecolor=ROLE_COLOURS["input"], edgecolor="#555555", label="input")]
    for role in ("encoder", "bottleneck", "decoder", "output"):
        layers = list(dict.fromkeys(str(r["layer"]) for r, ro in zip(rows, roles) if ro == role))
        if layers:
            handles.append(Patch(facecolor=ROLE_COLOURS[role], edgecolor="#555555",
                                 label=f"{role}: {' | '.join(layers)}"))
    handles.append(Line2D([], [], color=_FEATURE_COLOUR, label="features"))
    if skips:
        handles.append(Line2D([], [], color=_SKIP_COLOUR, lw=2, label="skip connection (+channels concatenated)"))
    if masks:
        handles.append(Line2D([], [], color=_MASK_COLOUR, ls="--",
                              label="mask (1 = valid), updated by every partial conv, eq. (7)"))
    fig.legend(handles=handles, loc="lower center", ncol=2 if len(handles) > 4 else len(handles), fontsize=8.5,
               frameon=False, handlelength=2.2, columnspacing=1.5)


def architecture_figure(model: nn.Module, image_size: int | None = None, title: str | None = None,
                        fontsize: float = 8.5) -> Figure:
    """Draw ``model`` (ContextEncoder, ContextDiscriminator or PConvUNet) as a block diagram.

    ``image_size`` is the side of the square input for a PConvUNet (default: the model's own);
    the Context Encoder's networks have a fixed input size, and any other ``image_size`` is an
    error.  Returns the Figure (report Fig 1 for the Context Encoder, Fig 2 for the U-Net).
    """
    rows = layer_table(model, image_size) if image_size is not None else layer_table(model)
    if not rows:
        raise ValueError(f"{type(model).__name__} has no layers to draw")
    size_in, c_in = _input_size(rows), int(rows[0]["in_channels"])
    if image_size is not None and image_size != size_in:
        raise ValueError(f"{type(model).__name__} takes {size_in}×{size_in} inputs only; "
                         f"image_size={image_size} does not apply to it")
    roles = _roles(rows)
    skips = _skip_sources(rows, roles)
    pconv = [i for i, r in enumerate(rows) if re.search(r"\bpconv\b", str(r["layer"]))]
    ys = [math.log2(_spatial(r)) for r in rows]
    top, bottom = max(ys + [math.log2(size_in)]), min(ys)
    width_units, height_units = len(rows) + 1, top - bottom + 1
    fig, ax = plt.subplots(figsize=(_INCH_X * width_units + 0.4, _INCH_Y * height_units + 1.5))
    ax.set_xlim(-0.55, len(rows) + 0.55)
    ax.set_ylim(bottom - 0.55, top + 0.55)
    ax.set_axis_off()

    input_lines = [f"{c_in} ch", *(["+ mask"] if pconv else []), f"{size_in}²"]
    boxes = {-1: _box(ax, 0, math.log2(size_in), "input", input_lines, "input", "input", fontsize)}
    for i, row in enumerate(rows):
        lines = [f"{row['out_channels']} ch", f"{_spatial(row)}²"]
        boxes[i] = _box(ax, i + 1, ys[i], _short(row["name"]), lines, roles[i], f"layer:{row['name']}", fontsize)
    names = {-1: "input", **{i: r["name"] for i, r in enumerate(rows)}}
    for i in range(len(rows)):
        _arrow(ax, boxes[i - 1], boxes[i], f"data:{names[i - 1]}->{names[i]}", _FEATURE_COLOUR)
        if i in pconv and (i - 1 == -1 or i - 1 in pconv):
            _arrow(ax, boxes[i - 1], boxes[i], f"mask:{names[i - 1]}->{names[i]}", _MASK_COLOUR, "--", rad=0.35)
    for i, j in skips.items():
        added = int(rows[i]["in_channels"]) - int(rows[i - 1]["out_channels"])
        _arrow(ax, boxes[j], boxes[i], f"skip:{names[j]}->{names[i]}", _SKIP_COLOUR, width=2.0)
        (x0, y0), (x1, _) = _centre(boxes[j]), _centre(boxes[i])
        ax.text((x0 + x1) / 2, y0 - 0.06, f"+{added} ch", ha="center", va="top", fontsize=fontsize - 0.5,
                color=_SKIP_COLOUR, zorder=3)
        if pconv:
            _arrow(ax, boxes[j], boxes[i], f"mask:{names[j]}->{names[i]}", _MASK_COLOUR, "--", rad=-0.06)
    n_params = sum(int(r["params"]) for r in rows)
    fig.suptitle(title or f"{type(model).__name__}: input {c_in}×{size_in}×{size_in}, {n_params:,} parameters",
                 fontsize=10.5)
    _legend(fig, rows, roles, bool(skips), bool(pconv))
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / fig.get_figheight(), bottom=1.15 / fig.get_figheight())
    return fig
