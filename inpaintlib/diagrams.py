"""Architecture diagrams drawn from the models themselves (the book's versions of report Figs 1-2).

:func:`architecture_figure` reads nothing but ``inpaintlib.models.layer_table(model, image_size)``,
the table the chapters print, so a diagram cannot disagree with the code it describes.  Layout:
one box per row of the table (plus one for the input), at a height given by ``log2`` of its
spatial size; encoder blocks in a left column going down, the bottleneck at the bottom, decoder
blocks in a right column going up.  An encoder-decoder thus appears as a V (Context Encoder,
report Fig 1) or a U (PConv U-Net, report Fig 2), narrow enough to read at the width of a book
page.  Each box names the block, its output channels and its spatial size; the colour says its
role and the legend lists the layers of each role, read from the table.  For a U-Net, the skip
connections are drawn as horizontal arrows labelled with the channels they add; for partial
convolutions, the mask's path (1 = valid, updated by eq. (7) at every layer) is drawn dashed beside
the features.

Every drawn element carries a ``gid`` (``layer:<name>``, ``input``, ``data:<a>-><b>``,
``skip:<a>-><b>``, ``mask:<a>-><b>``), so tests and readers can find them in the figure.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from torch import nn

from inpaintlib.models import layer_table

__all__ = ["architecture_figure", "gan_training_figure", "ROLE_COLOURS"]

ROLE_COLOURS = {
    "input": "#e0e0e0",
    "encoder": "#c6dbef",
    "bottleneck": "#d4c8ea",
    "decoder": "#fdd9b5",
    "output": "#c7e9c0",
    "discriminator": "#f4c7c3",
}
_FEATURE_COLOUR = "#333333"
_SKIP_COLOUR = "#2a8c55"
_MASK_COLOUR = "#8c2d04"
_BOX_W, _BOX_H = 1.3, 0.5  # inches (the axes use inches as data units)
_ROW = 0.8  # inches per factor of 2 in spatial size
_COLUMN = {"input": 0.0, "encoder": 0.0, "bottleneck": 1.15, "decoder": 2.3, "output": 2.3}  # inches
_MIN_WIDTH = 3.9  # inches: room for the legend below the diagram
_LINE = 0.19  # inches per line of legend or title text


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
    if len(name) > 12:  # split long names so they fit the box
        name = f"{name[:(len(name) + 2) // 2]}-\n{name[(len(name) + 2) // 2:]}"
    line = fontsize * 1.2 / 72  # line height in inches
    top = y + len(lines) * line / 2  # the block of 1 + len(lines) lines is centred on the box
    ax.text(x, top, name, ha="center", va="center", fontsize=fontsize, fontweight="bold", zorder=3)
    ax.text(x, top - line / 2, "\n".join(lines), ha="center", va="top", fontsize=fontsize, zorder=3,
            linespacing=1.2)
    return box


def _arrow(ax: plt.Axes, a: FancyBboxPatch, b: FancyBboxPatch, gid: str, colour: str, style: str = "-",
           offset: tuple[float, float] = (0.0, 0.0), width: float = 1.0) -> FancyArrowPatch:
    """An arrow from box ``a`` to box ``b`` (clipped at their edges), shifted by ``offset`` inches."""
    (xa, ya), (xb, yb) = _centre(a), _centre(b)
    dx, dy = offset
    arrow = FancyArrowPatch((xa + dx, ya + dy), (xb + dx, yb + dy), patchA=a, patchB=b, arrowstyle="-|>",
                            mutation_scale=9, color=colour, linestyle=style, linewidth=width, zorder=1)
    arrow.set_gid(gid)
    ax.add_patch(arrow)
    return arrow


def _centre(box: FancyBboxPatch) -> tuple[float, float]:
    return box.get_x() + box.get_width() / 2, box.get_y() + box.get_height() / 2


def _legend_entries(rows: Sequence[dict], roles: Sequence[str], skips: bool, masks: bool) -> tuple[list, list[str]]:
    """Legend handles and their (wrapped) labels: one per role present, with the layers read from the table."""
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
                              label="mask (1 = valid), updated by every partial conv (Chapter 2)"))
    return handles, [textwrap.fill(h.get_label(), 44, subsequent_indent="    ") for h in handles]


def _connect(ax: plt.Axes, rows: Sequence[dict], boxes: dict[int, FancyBboxPatch], skips: dict[int, int],
             pconv: Sequence[int], fontsize: float) -> None:
    """Feature arrows along the rows, skip connections, and the mask's path beside both (partial convs)."""
    names = {-1: "input", **{i: r["name"] for i, r in enumerate(rows)}}
    for i in range(len(rows)):
        _arrow(ax, boxes[i - 1], boxes[i], f"data:{names[i - 1]}->{names[i]}", _FEATURE_COLOUR)
        if i in pconv and (i - 1 == -1 or i - 1 in pconv):
            _arrow(ax, boxes[i - 1], boxes[i], f"mask:{names[i - 1]}->{names[i]}", _MASK_COLOUR, "--",
                   offset=(0.42, 0.0))
    for i, j in skips.items():
        added = int(rows[i]["in_channels"]) - int(rows[i - 1]["out_channels"])
        _arrow(ax, boxes[j], boxes[i], f"skip:{names[j]}->{names[i]}", _SKIP_COLOUR, offset=(0.0, 0.06), width=2.0)
        (x0, y0), (x1, _) = _centre(boxes[j]), _centre(boxes[i])
        ax.text((x0 + x1) / 2, y0 + 0.1, f"+{added} ch", ha="center", va="bottom", fontsize=fontsize - 0.5,
                color=_SKIP_COLOUR, zorder=3)
        if pconv:
            _arrow(ax, boxes[j], boxes[i], f"mask:{names[j]}->{names[i]}", _MASK_COLOUR, "--", offset=(0.0, -0.1))


def architecture_figure(model: nn.Module, image_size: int | None = None, title: str | None = None,
                        fontsize: float = 9.0) -> Figure:
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
    two_columns = "decoder" in roles  # an encoder-decoder; a plain classifier stays in one column
    xs = [_COLUMN[r] if two_columns else 0.0 for r in roles]
    ys = [math.log2(_spatial(r)) * _ROW for r in rows]
    y_in = math.log2(size_in) * _ROW
    top, bottom, right = max(ys + [y_in]), min(ys), max(xs)
    pad = 0.15
    diagram_w, diagram_h = right + _BOX_W + 2 * pad, top - bottom + _BOX_H + 2 * pad
    handles, labels = _legend_entries(rows, roles, bool(skips), bool(pconv))
    legend_h = _LINE * sum(label.count("\n") + 1 for label in labels) + 0.2
    n_params = sum(int(r["params"]) for r in rows)
    default_title = f"{type(model).__name__}: input {c_in}×{size_in}×{size_in}, {n_params:,} parameters"
    heading = textwrap.fill(title or default_title, 44)
    title_h = 1.2 * _LINE * (heading.count("\n") + 1) + 0.15
    width, height = max(diagram_w, _MIN_WIDTH), diagram_h + title_h + legend_h
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, legend_h / height, diagram_w / width, diagram_h / height))
    ax.set_xlim(-_BOX_W / 2 - pad, right + _BOX_W / 2 + pad)
    ax.set_ylim(bottom - _BOX_H / 2 - pad, top + _BOX_H / 2 + pad)
    ax.set_axis_off()

    input_lines = [f"{c_in} ch + mask", f"{size_in}²"] if pconv else [f"{c_in} ch · {size_in}²"]
    boxes = {-1: _box(ax, 0.0, y_in, "input", input_lines, "input", "input", fontsize)}
    for i, row in enumerate(rows):
        lines = [f"{row['out_channels']} ch · {_spatial(row)}²"]
        boxes[i] = _box(ax, xs[i], ys[i], _short(row["name"]), lines, roles[i], f"layer:{row['name']}", fontsize)
    _connect(ax, rows, boxes, skips, pconv, fontsize)
    fig.suptitle(heading, fontsize=10.5, x=0.03, y=1 - 0.08 / height, ha="left", va="top")
    fig.legend(handles=handles, labels=labels, loc="lower left", bbox_to_anchor=(0.02, 0.0), fontsize=8.5,
               frameon=False, handlelength=2.2)
    return fig


def gan_training_figure(bottleneck: int = 4000, patch: int = 64, image: int = 128, fontsize: float = 7.5) -> Figure:
    """The Context Encoder's training scheme (report Fig 1, after Pathak et al.): the generator F encodes the
    context M * x into a ``bottleneck``-number code and decodes a ``patch`` x ``patch`` patch; the
    reconstruction loss compares it with the true patch P(x), and the discriminator D, trained jointly,
    tells true patches from generated ones (the adversarial loss). Boxes carry gids ``block:<name>``,
    arrows ``flow:<a>-><b>``; the loss labels are texts ``loss:rec`` and ``loss:adv``."""
    step = 1.9  # inches between box centres
    fig = plt.figure(figsize=(2 * step + _BOX_W + 0.3, 3.3))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-_BOX_W / 2 - 0.15, 2 * step + _BOX_W / 2 + 0.15)
    ax.set_ylim(-0.55, 2.75)
    ax.set_aspect("equal")
    ax.axis("off")
    spec = {  # name: (x, y, lines, role), in inches
        "context": (0.0, 2.2, [f"M ⊙ x, {image}×{image}", "centre hole"], "input"),
        "encoder": (step, 2.2, ["F: conv, stride 2"], "encoder"),
        "code": (2 * step, 2.2, [f"{bottleneck} numbers"], "bottleneck"),
        "decoder": (2 * step, 1.1, ["F: transposed conv"], "decoder"),
        "patch": (step, 1.1, [f"F(M ⊙ x), {patch}×{patch}"], "output"),
        "true patch": (0.0, 1.1, [f"P(x), {patch}×{patch}"], "input"),
        "D": (step, 0.0, ["real or generated?"], "discriminator"),
    }
    boxes = {name: _box(ax, x, y, name, lines, role, f"block:{name}", fontsize)
             for name, (x, y, lines, role) in spec.items()}
    for a, b in [("context", "encoder"), ("encoder", "code"), ("code", "decoder"), ("decoder", "patch"),
                 ("patch", "D")]:
        _arrow(ax, boxes[a], boxes[b], f"flow:{a}->{b}", _FEATURE_COLOUR)
    real = FancyArrowPatch((0.0, 1.1 - _BOX_H / 2), (step - _BOX_W / 2, 0.0), arrowstyle="-|>", mutation_scale=9,
                           color=_FEATURE_COLOUR, connectionstyle="angle,angleA=-90,angleB=180", zorder=1)
    real.set_gid("flow:true patch->D")
    ax.add_patch(real)
    compare = FancyArrowPatch((step - _BOX_W / 2, 1.1), (_BOX_W / 2, 1.1), arrowstyle="<|-|>", mutation_scale=9,
                              color=_MASK_COLOUR, linestyle="--", zorder=1)
    compare.set_gid("flow:patch<->true patch")
    ax.add_patch(compare)
    ax.text(step / 2, 1.16, "L_rec", ha="center", va="bottom", fontsize=fontsize, color=_MASK_COLOUR, gid="loss:rec")
    ax.text(step + _BOX_W / 2 + 0.12, 0.0, "L_adv: D learns to tell,\nF learns to fool D", ha="left", va="center",
            fontsize=fontsize, color=_MASK_COLOUR, gid="loss:adv")
    return fig
