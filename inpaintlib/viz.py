"""Figures of the book: every plot a chapter shows is drawn by a function here.

Each function takes tensors, arrays or a run directory and returns a ``matplotlib.figure.Figure``
(the chapter then calls ``plt.show()``), so the same code plots a stored run and a run a reader has
just trained. Functions that read a run directory only read the files of the run-directory contract
(``config.json``, ``history.csv``, ``samples/``, ``metrics.json``, ``RUN.md``; see ``inpaintlib.rundir``).

Figures of the course report reproduced here: Fig 3 (:func:`plot_mean_filter`), Fig 4
(:func:`plot_gan_losses`), Fig 5 (:func:`plot_discriminator_accuracy`), Fig 6
(:func:`plot_loss_terms`), Fig 7 (:func:`plot_sample_progress`), Fig 8 (:func:`plot_completions`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from inpaintlib.paths import repo_root, stored_runs_dir

__all__ = [
    "repo_root",
    "to_image",
    "show_images",
    "plot_curves",
    "plot_regression_fit",
    "plot_overfitting",
    "plot_feature_maps",
    "plot_reconstructions",
    "plot_gan_toy",
    "mean_filter_sequence",
    "mean_filter_subset",
    "mean_filter_frame",
    "plot_mean_filter",
    "LayerTable",
    "layer_table",
    "plot_overlap_weights",
    "read_history",
    "run_info",
    "run_caption",
    "plot_gan_losses",
    "plot_discriminator_accuracy",
    "plot_sample_progress",
    "plot_loss_terms",
    "plot_loss_maps",
    "plot_completions",
    "plot_mirror_padding",
    "plot_masks",
    "plot_hole_ratio_histogram",
    "plot_metric_by_bucket",
    "plot_method_comparison",
    "stored_run",
    "relative",
    "missing_run_note",
]

COLORS = {"train": "#1f77b4", "val": "#d62728", "G": "#1f77b4", "D": "#ff7f0e", "standard": "#7f7f7f"}


# --------------------------------------------------------------------------------------------- basics
def to_image(x: Tensor | np.ndarray) -> np.ndarray:
    """Turn (3, H, W) / (1, H, W) / (H, W) tensors or arrays into an (H, W[, 3]) float array in [0, 1]."""
    if isinstance(x, Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = np.moveaxis(x, 0, -1)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (3, H, W), (1, H, W) or (H, W), got {x.shape}")
    return np.clip(x, 0.0, 1.0)


def _grid(n: int, ncols: int | None, size: float, aspect: float = 1.0) -> tuple[Figure, np.ndarray]:
    ncols = min(n, ncols or n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows * aspect + 0.3), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def show_images(
    images: Sequence[Tensor | np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: float = 2.2,
    suptitle: str | None = None,
    cmap: str = "gray",
) -> Figure:
    """Show images side by side (grey-scale ones with ``cmap``), one optional title each."""
    if len(images) == 0:
        raise ValueError("show_images needs at least one image")
    fig, axes = _grid(len(images), ncols, size)
    for i, (ax, img) in enumerate(zip(axes.flat, images)):
        arr = to_image(img)
        ax.imshow(arr, cmap=cmap if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def plot_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    logy: bool = False,
    ax: plt.Axes | None = None,
) -> Figure:
    """Plot named (x, y) series on one axis."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.2), layout="constrained")
    else:
        fig = ax.figure
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, color=COLORS.get(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig


# ------------------------------------------------------------------------ chapter 1: ML background
def plot_regression_fit(
    x: Tensor, y: Tensor, x_grid: Tensor, fits: Mapping[str, Tensor], losses: Sequence[float]
) -> Figure:
    """Data points with the model's curve at a few training steps (left) and the loss per step (right)."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    ax0.scatter(x.numpy(), y.numpy(), s=10, color="black", alpha=0.6, label="data")
    cmap = plt.get_cmap("viridis")
    for k, (name, fit) in enumerate(fits.items()):
        ax0.plot(x_grid.numpy(), fit.numpy(), color=cmap(k / max(1, len(fits) - 1)), label=name)
    ax0.set_xlabel("x")
    ax0.set_ylabel("y")
    ax0.legend(frameon=False, fontsize=8)
    ax0.set_title("model during training", fontsize=10)
    ax1.plot(np.arange(1, len(losses) + 1), losses, color=COLORS["train"])
    ax1.set_yscale("log")
    ax1.set_xlabel("SGD step")
    ax1.set_ylabel("mini-batch loss")
    ax1.set_title("loss, eq. (1), after each update, eq. (2)", fontsize=10)
    ax1.grid(alpha=0.3)
    return fig


def plot_overfitting(
    x_train: Tensor,
    y_train: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    x_grid: Tensor,
    fits: Mapping[str, Tensor],
    train_losses: Sequence[float],
    val_losses: Sequence[float],
) -> Figure:
    """Train/validation points with fitted curves (left) and both losses over training (right)."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    ax0.scatter(x_train.numpy(), y_train.numpy(), s=18, color=COLORS["train"], label="training points", zorder=3)
    ax0.scatter(x_val.numpy(), y_val.numpy(), s=18, color=COLORS["val"], marker="x", label="validation points")
    styles = ["--", "-"]
    for k, (name, fit) in enumerate(fits.items()):
        ax0.plot(x_grid.numpy(), fit.numpy(), styles[k % 2], color="black", lw=1, label=name)
    lo, hi = float(torch.cat([y_train, y_val]).min()), float(torch.cat([y_train, y_val]).max())
    ax0.set_ylim(lo - 0.6 * (hi - lo), hi + 0.6 * (hi - lo))
    ax0.legend(frameon=False, fontsize=8)
    ax0.set_xlabel("x")
    ax0.set_title("fits", fontsize=10)
    steps = np.arange(1, len(train_losses) + 1)
    ax1.plot(steps, train_losses, color=COLORS["train"], label="training loss")
    ax1.plot(steps, val_losses, color=COLORS["val"], label="validation loss")
    best = int(np.argmin(val_losses))
    ax1.axvline(best + 1, color="gray", ls=":", lw=1)
    ax1.annotate("validation minimum", (best + 1, val_losses[best]), xytext=(5, 25), textcoords="offset points",
                 fontsize=8, arrowprops=dict(arrowstyle="->", lw=0.6))
    ax1.set_yscale("log")
    ax1.set_xscale("log")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("mean squared error")
    ax1.legend(frameon=False, fontsize=8)
    ax1.grid(alpha=0.3)
    ax1.set_title("training versus validation loss", fontsize=10)
    return fig


def plot_feature_maps(image: Tensor, maps: Tensor, names: Sequence[str]) -> Figure:
    """An input image and the feature maps of a convolution layer (one per output channel).

    Feature maps are shown with a symmetric diverging colour scale, so sign matters: red where the
    filter responds positively, blue where negatively.
    """
    if maps.ndim != 3 or maps.shape[0] != len(names):
        raise ValueError(f"maps must be (C, H, W) with one name per channel, got {tuple(maps.shape)} and {len(names)}")
    fig, axes = _grid(len(names) + 1, None, 2.3)
    axes.flat[0].imshow(to_image(image), cmap="gray", vmin=0, vmax=1)
    axes.flat[0].set_title("input", fontsize=9)
    for ax, fmap, name in zip(axes.flat[1:], maps, names):
        lim = float(fmap.abs().max()) or 1.0
        ax.imshow(fmap.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(name, fontsize=9)
    return fig


def plot_reconstructions(
    originals: Tensor, reconstructions: Tensor, losses: Sequence[float], n: int = 8, label: str = "reconstruction"
) -> Figure:
    """Autoencoder figure: training loss (left), originals above their reconstructions (right)."""
    n = min(n, len(originals))
    fig = plt.figure(figsize=(10, 2.8), layout="constrained")
    sub = fig.subfigures(1, 2, width_ratios=[1, 2.4])
    ax = sub[0].subplots()
    ax.plot(np.arange(1, len(losses) + 1), losses, color=COLORS["train"])
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean squared error")
    ax.grid(alpha=0.3)
    axes = sub[1].subplots(2, n, squeeze=False)
    for i in range(n):
        for row, src in enumerate((originals, reconstructions)):
            arr = to_image(src[i])
            axes[row, i].imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
            axes[row, i].set_axis_off()
    axes[0, 0].set_title("input", fontsize=9, loc="left")
    axes[1, 0].set_title(label, fontsize=9, loc="left")
    return fig


def plot_gan_toy(
    real: Tensor,
    snapshots: Sequence[tuple[int, Tensor]],
    d_losses: Sequence[float],
    g_losses: Sequence[float],
) -> Figure:
    """2-D GAN: real samples against generated ones at a few steps, and both losses."""
    fig, axes = plt.subplots(1, len(snapshots) + 1, figsize=(2.6 * (len(snapshots) + 1) + 1.2, 2.9),
                             layout="constrained")
    lim = float(real.abs().max()) * 1.3
    for ax, (step, fake) in zip(axes[:-1], snapshots):
        ax.scatter(real[:, 0], real[:, 1], s=3, color="black", alpha=0.25, label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=3, color=COLORS["D"], alpha=0.6, label="generated")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"step {step}", fontsize=9)
    axes[0].legend(frameon=False, fontsize=7, loc="lower left", markerscale=3)
    steps = np.arange(1, len(d_losses) + 1)
    axes[-1].plot(steps, _smooth(d_losses), color=COLORS["D"], label="D")
    axes[-1].plot(steps, _smooth(g_losses), color=COLORS["G"], label="G")
    axes[-1].axhline(math.log(4), color="gray", ls=":", lw=1)
    axes[-1].set_xlabel("step")
    axes[-1].set_title("losses (dotted: D at chance)", fontsize=9)
    axes[-1].legend(frameon=False, fontsize=8)
    return fig


def _smooth(values: Sequence[float], window: int | None = None) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if len(values) < 5:
        return values
    window = window or max(1, len(values) // 50)
    if window <= 1:
        return values
    kernel = np.ones(window) / window
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


# ------------------------------------------------------------------- chapter 2: mean filter, Fig 3
@torch.no_grad()
def mean_filter_sequence(
    image: Tensor, mask: Tensor, iterations: Sequence[int], kernel_size: int = 5
) -> dict[str, Any]:
    """Apply a ``kernel_size``² mean filter repeatedly, as a standard and as a partial convolution (Fig 3).

    ``image`` is (3, H, W) in [0, 1], ``mask`` (1, H, W) with 1 = valid. The hole is zeroed first (what a
    network sees). The standard filter is ``conv2d`` with zero padding; the partial one is
    ``inpaintlib.layers.PartialConv2d`` with every weight 1/k² within a channel (no bias), so eq. (6)
    makes it the mean of the valid pixels in the window, and eq. (7) shrinks the mask.
    Returns ``{"iterations", "standard", "partial", "mask"}`` with one (3, H, W) / (1, H, W) tensor per
    requested iteration count (0 = the input).
    """
    from inpaintlib.layers import PartialConv2d

    if image.ndim != 3 or image.shape[0] != 3 or mask.shape != (1, *image.shape[1:]):
        raise ValueError(f"expected image (3, H, W) and mask (1, H, W), got {tuple(image.shape)}, {tuple(mask.shape)}")
    iterations = sorted(set(int(i) for i in iterations))
    if not iterations or iterations[0] < 0:
        raise ValueError(f"iterations must be non-negative counts, got {iterations}")
    weight = torch.zeros(3, 3, kernel_size, kernel_size)
    for c in range(3):
        weight[c, c] = 1.0 / kernel_size**2  # each channel averaged on its own
    pconv = PartialConv2d(3, 3, kernel_size, padding=kernel_size // 2, bias=False)
    pconv.weight.copy_(weight)
    std = (image * mask).unsqueeze(0)
    part, m = std.clone(), mask.unsqueeze(0).float()
    out: dict[str, Any] = {"iterations": iterations, "standard": [], "partial": [], "mask": []}
    for i in range(iterations[-1] + 1):
        if i in iterations:
            out["standard"].append(std[0].clamp(0, 1))
            out["partial"].append(part[0].clamp(0, 1))
            out["mask"].append(m[0])
        std = F.conv2d(std, weight, padding=kernel_size // 2)
        part, m = pconv(part, m)
    return out


def mean_filter_subset(sequence: Mapping[str, Any], iterations: Sequence[int]) -> dict[str, Any]:
    """The part of a :func:`mean_filter_sequence` result at the given iteration counts."""
    its = list(sequence["iterations"])
    missing = [i for i in iterations if i not in its]
    if missing:
        raise ValueError(f"iterations {missing} were not computed; the sequence has {its}")
    keep = [its.index(i) for i in iterations]
    return {"iterations": list(iterations), **{k: [sequence[k][j] for j in keep] for k in ("standard", "partial", "mask")}}


def mean_filter_frame(sequence: Mapping[str, Any], index: int) -> np.ndarray:
    """One frame for the slider: standard | partial | mask side by side as a uint8 (H, 3W + gaps, 3) array."""
    std = to_image(sequence["standard"][index])
    part = to_image(sequence["partial"][index])
    mask = np.repeat(to_image(sequence["mask"][index])[..., None], 3, axis=-1)
    gap = np.ones((std.shape[0], 6, 3), dtype=np.float32)
    return (np.concatenate([std, gap, part, gap, mask], axis=1) * 255 + 0.5).astype(np.uint8)


def plot_mean_filter(sequence: Mapping[str, Any], show: Sequence[int] | None = None, size: float = 1.7) -> Figure:
    """Report Fig 3: rows standard convolution / partial convolution / partial-convolution mask.

    ``show`` picks iteration counts of the sequence to draw (default: all of them).
    """
    its = list(sequence["iterations"])
    keep = range(len(its)) if show is None else [its.index(i) for i in show]
    rows = [(name, [sequence[key][k] for k in keep]) for name, key in
            (("standard conv", "standard"), ("partial conv", "partial"), ("mask (partial)", "mask"))]
    its = [its[k] for k in keep]
    fig, axes = plt.subplots(3, len(its), figsize=(size * len(its), size * 3 + 0.4), squeeze=False,
                             layout="constrained")
    for r, (name, frames) in enumerate(rows):
        for c, frame in enumerate(frames):
            ax = axes[r, c]
            arr = to_image(frame)
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{its[c]} iteration{'s' if its[c] != 1 else ''}", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    return fig


# -------------------------------------------------------------------- architecture tables (ch 3, 4)
@dataclass
class LayerTable:
    """An architecture table (rows of ``inpaintlib.models.layer_table``) with text and HTML forms."""

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


def layer_table(model: nn.Module, image_size: int | None = None, title: str | None = None) -> LayerTable:
    """The model's own architecture table (``inpaintlib.models.layer_table``), ready to display."""
    from inpaintlib.models import layer_table as rows_of

    rows = rows_of(model, image_size) if image_size is not None else rows_of(model)
    return LayerTable(title or type(model).__name__, rows)


# ------------------------------------------------------------------ chapter 3: Context Encoder
def plot_overlap_weights(context: Tensor, patch_box: tuple[int, int, int, int], hole_box: tuple[int, int, int, int],
                         weights: Tensor) -> Figure:
    """The Context Encoder's input with the predicted patch and the hole outlined, and the per-pixel
    weight of the reconstruction loss (eq. 3 with the 10× overlap band)."""
    from matplotlib.patches import Rectangle

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(7.2, 3.4), layout="constrained")
    ax0.imshow(to_image(context))
    for (y0, x0, y1, x1), color, label in ((patch_box, "#ffd400", "predicted patch"), (hole_box, "#d62728", "hole")):
        ax0.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=color, lw=1.5,
                                label=label))
    ax0.legend(loc="lower center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False, fontsize=8)
    ax0.set_axis_off()
    ax0.set_title("generator input (context)", fontsize=10)
    w = weights.detach().float().cpu().numpy()
    im = ax1.imshow(w, cmap="magma", vmin=0)
    ax1.set_axis_off()
    ax1.set_title("loss weight per pixel of the patch", fontsize=10)
    fig.colorbar(im, ax=ax1, shrink=0.8)
    return fig


# ---------------------------------------------------------------------------- run directories
def read_history(run_dir: str | Path) -> dict[str, np.ndarray]:
    """``history.csv`` of a run as ``{column: array}`` (via ``inpaintlib.rundir.load_history``)."""
    from inpaintlib.rundir import load_history

    return load_history(run_dir)


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """What a caption needs about a run: name, kind, profile, hardware, trained shape, steps, minutes,
    the run it started from (``init_from``) and changed loss weights.

    Read from the run directory's ``config.json`` and ``history.csv`` (see ``inpaintlib.rundir``); the
    minutes are the wall time summed over every session of the run.
    """
    from inpaintlib.rundir import load_config

    run_dir = Path(run_dir)
    config = load_config(run_dir)
    hist = read_history(run_dir)
    logged = len(hist.get("step", ()))
    seconds = float(hist["seconds"][-1]) if logged and "seconds" in hist else None
    return {
        "name": run_dir.name,
        "kind": config.get("kind"),
        "profile": config.get("profile"),
        "hardware": config.get("environment", {}).get("device_name"),
        "image_size": config.get("image_size"),
        "width": config.get("width"),
        "bottleneck": config.get("bottleneck"),
        "steps": int(hist["step"][-1]) if logged else None,
        "minutes": None if seconds is None else seconds / 60.0,
        "init_from": Path(config["init_from"]).name if config.get("init_from") else None,
        "loss_weights": config.get("loss_weights") or None,
    }


def run_caption(run_dir: str | Path) -> str:
    """A caption fragment naming a run: ``run 'ce': <hardware>, profile gpu, 128 px, width 32, bottleneck 1000, 11,000 steps, 6 min``."""
    info = run_info(run_dir)
    parts = [f"run '{info['name']}'"]
    detail = []
    if info["hardware"]:
        detail.append(str(info["hardware"]))
    if info["profile"]:
        detail.append(f"profile {info['profile']}")
    if info["image_size"] and info["width"]:  # the shape actually trained, whatever the profile said
        shape = f"{info['image_size']} px, width {info['width']}"
        detail.append(shape + (f", bottleneck {info['bottleneck']}" if info["bottleneck"] else ""))
    if info["steps"] is not None:
        detail.append(f"{int(info['steps']):,} steps")
    if info["minutes"] is not None:
        m = info["minutes"]
        detail.append(f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h")
    if info["init_from"]:
        detail.append(f"started from the weights of run '{info['init_from']}'")
    if info["loss_weights"]:
        detail.append("loss weights changed: " + ", ".join(f"{k} {v:g}" for k, v in info["loss_weights"].items()))
    return parts[0] + (": " + ", ".join(detail) if detail else "")


def _column(hist: Mapping[str, np.ndarray], *candidates: str) -> str | None:
    for c in candidates:
        if c in hist:
            return c
    return None


def plot_gan_losses(run_dir: str | Path, smooth: int | None = None) -> Figure:
    """Report Fig 4: generator and discriminator losses of a Context Encoder run over training."""
    hist = read_history(run_dir)
    step = hist["step"]
    panels = [
        ("generator", [("total (eq. 5)", _column(hist, "total")),
                       ("reconstruction (eq. 3)", _column(hist, "rec")),
                       ("adversarial", _column(hist, "adv"))]),
        ("discriminator", [("D loss (eq. 4)", _column(hist, "d_loss"))]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), layout="constrained")
    for ax, (title, curves) in zip(axes, panels):
        for label, col in curves:
            if col is not None:
                ax.plot(step, _smooth(hist[col], smooth), label=label)
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_yscale("log")
    _mark_phases(axes, hist)
    fig.suptitle(run_caption(run_dir), fontsize=9)
    return fig


def plot_discriminator_accuracy(run_dir: str | Path, smooth: int | None = None) -> Figure:
    """Report Fig 5: the discriminator's classification accuracy on real and generated patches."""
    hist = read_history(run_dir)
    col = _column(hist, "d_acc")
    if col is None:
        raise ValueError(f"history.csv of {run_dir} has no discriminator accuracy column (expected 'd_acc')")
    fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    ax.plot(hist["step"], _smooth(hist[col], smooth), color=COLORS["D"], label="accuracy")
    for extra, label in (("d_acc_real", "on real patches"), ("d_acc_fake", "on generated patches")):
        if extra in hist:
            ax.plot(hist["step"], _smooth(hist[extra], smooth), lw=0.8, label=label)
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(run_caption(run_dir), fontsize=9)
    return fig


def _mark_phases(axes: Sequence[plt.Axes], hist: Mapping[str, np.ndarray]) -> None:
    if "phase" not in hist:
        return
    phase = np.asarray(hist["phase"]).astype(str)
    changes = np.nonzero(phase[1:] != phase[:-1])[0]
    for i in changes:
        for ax in axes:
            ax.axvline(hist["step"][i + 1], color="gray", ls="--", lw=0.8)
            ax.text(hist["step"][i + 1], 0.98, f" {phase[i + 1]}", transform=ax.get_xaxis_transform(),
                    va="top", fontsize=7, color="gray")


def _grid_tiles(grid: np.ndarray, columns: int = 3, pad: int = 2) -> list[list[np.ndarray]]:
    """Split a ``samples/step_*.png`` grid (rows: photos; columns: masked input | composite | ground
    truth, ``pad`` px apart, as ``inpaintlib.train`` writes them) into ``tiles[row][column]``."""
    height, width = grid.shape[:2]
    side = (width - (columns + 1) * pad) // columns
    rows = (height - pad) // (side + pad)
    if side <= 0 or rows <= 0 or rows * (side + pad) + pad != height:
        raise ValueError(f"sample grid of {width}x{height} px is not {columns} columns of square tiles with {pad} px gaps")
    return [[grid[pad + r * (side + pad): pad + r * (side + pad) + side, pad + c * (side + pad): pad + c * (side + pad) + side]
             for c in range(columns)] for r in range(rows)]


def plot_sample_progress(run_dir: str | Path, count: int = 5, rows: int = 4, size: float = 1.6) -> Figure:
    """Report Fig 7: the run's fixed validation samples at ``count`` evenly spaced logged steps.

    Columns: the masked input, the completion at each chosen step, the ground truth; one row per
    validation photo (at most ``rows``). Read from the run's ``samples/step_XXXXXX.png`` grids.
    """
    from PIL import Image

    from inpaintlib.rundir import sample_paths

    steps = sample_paths(run_dir)
    if not steps:
        raise FileNotFoundError(f"no samples/step_*.png in run directory {run_dir}")
    idx = np.unique(np.linspace(0, len(steps) - 1, min(count, len(steps))).round().astype(int))
    chosen = [steps[i] for i in idx]
    grids = [_grid_tiles(np.asarray(Image.open(p).convert("RGB"))) for _, p in chosen]
    n = min(rows, len(grids[0]))
    ncols = len(chosen) + 2
    fig, axes = plt.subplots(n, ncols, figsize=(size * ncols, size * n + 0.5), squeeze=False, layout="constrained")
    for r in range(n):
        tiles = [grids[0][r][0]] + [g[r][1] for g in grids] + [grids[-1][r][2]]
        for c, tile in enumerate(tiles):
            axes[r, c].imshow(tile)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
    titles = ["input"] + [f"step {step:,}" for step, _ in chosen] + ["ground truth"]
    for c, title in enumerate(titles):
        axes[0, c].set_title(title, fontsize=8)
    fig.suptitle(run_caption(run_dir), fontsize=9)
    return fig


# --------------------------------------------------------------------------- chapter 4: PConv U-Net
LOSS_TERMS = ("valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total")
LOSS_WEIGHTS = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style_out": 120.0, "style_comp": 120.0, "tv": 0.1}


def plot_loss_terms(run_dir: str | Path, smooth: int | None = None, val: bool = True) -> Figure:
    """Report Fig 6: every term of the PConv loss (eqs. 8-12) over training, one panel each.

    Validation columns named ``val_<term>`` are drawn too when present.
    """
    hist = read_history(run_dir)
    terms = [t for t in LOSS_TERMS if t in hist]
    if not terms:
        raise ValueError(f"history.csv of {run_dir} has none of the loss columns {LOSS_TERMS}")
    fig, axes = plt.subplots(2, math.ceil(len(terms) / 2), figsize=(11, 5.2), squeeze=False, layout="constrained")
    for ax in axes.flat[len(terms):]:
        ax.set_axis_off()
    for ax, term in zip(axes.flat, terms):
        ax.plot(hist["step"], _smooth(hist[term], smooth), color=COLORS["train"], lw=1, label="train")
        vcol = _column(hist, f"val_{term}")
        if val and vcol is not None:
            ok = ~np.isnan(hist[vcol].astype(float))
            ax.plot(hist["step"][ok], hist[vcol][ok], "o-", ms=3, color=COLORS["val"], label="validation")
        weight = LOSS_WEIGHTS.get(term)
        ax.set_title(term + (f"  (weight {weight:g})" if weight is not None else "  (eq. 12)"), fontsize=9)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.set_xlabel("step", fontsize=8)
    axes.flat[0].legend(frameon=False, fontsize=7)
    _mark_phases(list(axes.flat[: len(terms)]), hist)
    fig.suptitle(run_caption(run_dir), fontsize=9)
    return fig


def plot_loss_maps(maps: Mapping[str, Tensor], values: Mapping[str, float] | None = None, ncols: int = 4) -> Figure:
    """Show what each loss term looks at on one example: one heat map per named (H, W) tensor."""
    fig, axes = _grid(len(maps), ncols, 2.5)
    for ax, (name, m) in zip(axes.flat, maps.items()):
        arr = m.detach().float().cpu().numpy() if isinstance(m, Tensor) else np.asarray(m)
        if arr.ndim == 3 and arr.shape[0] == 3:
            ax.imshow(to_image(arr))
        else:
            ax.imshow(arr, cmap="magma")
        title = name if values is None or name not in values else f"{name}\n= {values[name]:.4g}"
        ax.set_title(title, fontsize=8)
    return fig


def plot_completions(
    inputs: Tensor, outputs: Tensor, targets: Tensor, titles: Sequence[str] = ("input", "completion", "ground truth"),
    caption: str | None = None, row_labels: Sequence[str] | None = None, size: float = 2.4,
) -> Figure:
    """Report Fig 8: rows of (masked input, completed image, ground truth), all (N, 3, H, W) in [0, 1]."""
    n = len(inputs)
    fig, axes = plt.subplots(n, 3, figsize=(3 * size, n * size + 0.4), squeeze=False, layout="constrained")
    for i in range(n):
        for j, src in enumerate((inputs, outputs, targets)):
            axes[i, j].imshow(to_image(src[i]))
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(titles[j], fontsize=9)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    if caption:
        fig.suptitle(caption, fontsize=9)
    return fig


# ---------------------------------------------------------------- chapter 5: data, masks, evaluation
def plot_mirror_padding(original: Tensor, padded: Tensor, crops: Sequence[Tensor], pad: tuple[int, int]) -> Figure:
    """A small photo, the same photo mirror-padded to the crop size (original outlined), random crops."""
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, 2 + len(crops), figsize=(2.4 * (2 + len(crops)), 2.8), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1] + [1] * len(crops)})
    axes[0].imshow(to_image(original))
    axes[0].set_title(f"photo {original.shape[-1]}×{original.shape[-2]}", fontsize=9)
    axes[1].imshow(to_image(padded))
    top, left = pad
    axes[1].add_patch(Rectangle((left - 0.5, top - 0.5), original.shape[-1], original.shape[-2], fill=False,
                                color="#ffd400", lw=1.2))
    axes[1].set_title(f"mirror-padded {padded.shape[-1]}×{padded.shape[-2]}", fontsize=9)
    for k, (ax, crop) in enumerate(zip(axes[2:], crops)):
        ax.imshow(to_image(crop))
        ax.set_title(f"training sample {k + 1}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_masks(masks: Sequence[Tensor], labels: Sequence[str], ncols: int = 6) -> Figure:
    """Masks (1 = valid shown white, hole black) with a label each (e.g. hole ratio and bucket)."""
    fig, axes = _grid(len(masks), ncols, 1.8)
    for ax, m, label in zip(axes.flat, masks, labels):
        ax.imshow(to_image(m), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=8)
    return fig


def plot_hole_ratio_histogram(ratios: Sequence[float], buckets: Sequence[tuple[float, float]]) -> Figure:
    """Histogram of hole ratios with the evaluation buckets shaded."""
    fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
    for k, (lo, hi) in enumerate(buckets):
        ax.axvspan(lo, hi, color="#cccccc" if k % 2 else "#e8e8e8", zorder=0)
        ax.text((lo + hi) / 2, 1.0, f"{lo:g}-{hi:g}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=7)
    ax.hist(np.asarray(ratios), bins=40, range=(0, max(0.7, float(np.max(ratios)) + 0.02)), color=COLORS["train"])
    ax.set_xlabel("hole ratio (fraction of pixels missing)")
    ax.set_ylabel("masks")
    return fig


def plot_metric_by_bucket(
    table: Mapping[str, Mapping[str, float]], metric: str = "PSNR (dB)", title: str | None = None
) -> Figure:
    """Line plot of a metric per hole-ratio bucket, one line per method: ``table[method][bucket]``."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    buckets = list(dict.fromkeys(b for row in table.values() for b in row))
    x = np.arange(len(buckets))
    for method, row in table.items():
        ax.plot(x, [row.get(b, np.nan) for b in buckets], "o-", ms=4, label=method)
    ax.set_xticks(x, buckets, fontsize=8)
    ax.set_xlabel("hole-ratio bucket")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_method_comparison(masked: Tensor, results: Mapping[str, Tensor], target: Tensor | None = None,
                           scores: Mapping[str, float] | None = None, size: float = 2.4) -> Figure:
    """Masked input, each method's completion (titled with its score) and, optionally, the ground truth."""
    images = [masked] + list(results.values()) + ([target] if target is not None else [])
    titles = ["input"] + [f"{k}\n{scores[k]:.1f} dB" if scores and k in scores else k for k in results]
    titles += ["ground truth"] if target is not None else []
    return show_images(images, titles, size=size)


# ------------------------------------------------------------------------------ runs in the chapters
def stored_run(name: str | Path) -> Path | None:
    """The run directory ``<repo>/data/runs/<name>``, or ``name`` itself when it is a path to a run
    directory; ``None`` when no such run exists or it is incomplete (it needs ``history.csv`` and
    ``weights.pt``)."""
    for path in (stored_runs_dir() / str(name), Path(name).expanduser()):
        if (path / "history.csv").is_file() and (path / "weights.pt").is_file():
            return path
    return None


def relative(path: str | Path) -> str:
    """``path`` relative to the repository when inside it (chapters never print machine paths)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(repo_root()).as_posix()
    except ValueError:
        return path.name


def missing_run_note(name: str, kind: str) -> Any:
    """A Markdown note shown instead of the figures of a stored run that does not exist yet."""
    from IPython.display import Markdown

    return Markdown(
        f"> **Stored run `data/runs/{name}` not found.** The figures of this section are drawn from a "
        f"training run and are skipped here. Train one with `python -m inpaintlib train {kind} --profile gpu "
        f"--out data/runs/{name}`, or run this chapter with `train=True` (papermill: `-p train True`)."
    )
