"""Teaching figures: the pictures that explain an idea rather than report a run.

Chapter 1 (machine-learning background): a regression fit, over-fitting, feature maps, an autoencoder's
reconstructions, a 2-D GAN. Chapter 2 (partial convolution): the repeated mean filter of report Fig 3 as a
standard and as a partial convolution (:func:`mean_filter_sequence` computes it, :func:`plot_mean_filter`
draws it, :func:`mean_filter_frame` renders one frame for the slider of :mod:`inpaintlib.widgets`).
Chapters 3-5: the Context Encoder's loss weights, what each PConv loss term looks at, mirror padding,
masks and their hole ratios. Figures of runs and evaluations are in :mod:`inpaintlib.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from inpaintlib.layers import PartialConv2d
from inpaintlib.masks import validate_mask
from inpaintlib.plots import COLORS, frame, image_grid, image_rows, smooth_curve, to_image

__all__ = [
    "plot_regression_fit",
    "plot_overfitting",
    "plot_feature_maps",
    "plot_reconstructions",
    "plot_gan_toy",
    "mean_filter_sequence",
    "mean_filter_subset",
    "mean_filter_frame",
    "plot_mean_filter",
    "plot_overlap_weights",
    "plot_loss_maps",
    "plot_mirror_padding",
    "plot_masks",
    "plot_hole_ratio_histogram",
]


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
    ax1.set_title("mini-batch loss after each update, eq. (1.2)", fontsize=10)
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
    fig, axes = image_grid(len(names) + 1, None, 1.7)
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
    fig = plt.figure(figsize=(8.4, 2.6), layout="constrained")
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
    rows = 2 if len(snapshots) > 2 else 1  # snapshots in a block of two rows, the losses beside it
    cols = math.ceil(len(snapshots) / rows)
    fig = plt.figure(figsize=(2.2 * cols + 3.8, 2.2 * rows + 0.5), layout="constrained")
    grid = fig.add_gridspec(rows, cols + 2)
    axes = [fig.add_subplot(grid[k // cols, k % cols]) for k in range(len(snapshots))]
    axes.append(fig.add_subplot(grid[:, cols:]))
    lim = float(real.abs().max()) * 1.3
    for ax, (step, fake) in zip(axes[:-1], snapshots):
        ax.scatter(real[:, 0], real[:, 1], s=3, color="black", alpha=0.25, label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=3, color=COLORS["D"], alpha=0.6, label="generated")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"step {step}", fontsize=12)
    axes[0].legend(frameon=False, fontsize=10, loc="lower left", markerscale=3)
    steps = np.arange(1, len(d_losses) + 1)
    axes[-1].plot(steps, smooth_curve(d_losses), color=COLORS["D"], label="D")
    axes[-1].plot(steps, smooth_curve(g_losses), color=COLORS["G"], label="G")
    axes[-1].axhline(math.log(4), color="gray", ls=":", lw=1)
    axes[-1].set_xlabel("step")
    axes[-1].set_title("losses (dotted: D at chance)", fontsize=12)
    axes[-1].legend(frameon=False, fontsize=10)
    return fig



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
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image of shape (3, H, W), got {tuple(image.shape)}")
    validate_mask(mask, like=image)
    if mask.ndim != 3:
        raise ValueError(f"expected one mask of shape (1, H, W), got {tuple(mask.shape)}")
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


def plot_mean_filter(sequence: Mapping[str, Any], show: Sequence[int] | None = None, size: float = 1.6,
                     max_columns: int = 4) -> Figure:
    """Report Fig 3: rows standard convolution / partial convolution / partial-convolution mask, a column per
    iteration count. With more than ``max_columns`` iteration counts the grid is turned (a row per count), so
    that each picture stays large.

    ``show`` picks iteration counts of the sequence to draw (default: all of them).
    """
    its = list(sequence["iterations"])
    keep = range(len(its)) if show is None else [its.index(i) for i in show]
    names = ["standard conv", "partial conv", "mask (partial)"]
    rows = [[sequence[key][k] for k in keep] for key in ("standard", "partial", "mask")]
    counts = [f"{its[k]} iteration{'s' if its[k] != 1 else ''}" for k in keep]
    if len(counts) <= max_columns:
        return image_rows(rows, counts, names, size)[0]
    return image_rows([list(column) for column in zip(*rows)], names, counts, size)[0]


# ------------------------------------------------------------- chapters 3-4: what the losses weigh
def plot_overlap_weights(context: Tensor, patch_box: tuple[int, int, int, int], hole_box: tuple[int, int, int, int],
                         weights: Tensor) -> Figure:
    """The Context Encoder's input with the predicted patch and the hole outlined, and the per-pixel
    weight of the reconstruction loss (eq. 3 with the 10× overlap band)."""
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


def plot_loss_maps(maps: Mapping[str, Tensor], values: Mapping[str, float] | None = None, ncols: int = 4) -> Figure:
    """Show what each loss term looks at on one example: one heat map per named (H, W) tensor."""
    fig, axes = image_grid(len(maps), ncols, 2.8)
    for ax, (name, m) in zip(axes.flat, maps.items()):
        arr = m.detach().float().cpu().numpy() if isinstance(m, Tensor) else np.asarray(m)
        if arr.ndim == 3 and arr.shape[0] == 3:
            ax.imshow(to_image(arr))
        else:
            ax.imshow(arr, cmap="magma")
        title = name if values is None or name not in values else f"{name}\n= {values[name]:.4g}"
        ax.set_title(title, fontsize=10)
    return fig



# ---------------------------------------------------------------- chapter 5: data and masks
def plot_mirror_padding(original: Tensor, padded: Tensor, crops: Sequence[Tensor], pad: tuple[int, int]) -> Figure:
    """A small photo, the same photo mirror-padded to the crop size (original outlined), random crops."""
    fig, axes = plt.subplots(1, 2 + len(crops), figsize=(1.7 * (2 + len(crops)), 2.2), layout="constrained",
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
    fig, axes = image_grid(len(masks), ncols, 1.4)
    for ax, m, label in zip(axes.flat, masks, labels):
        ax.imshow(to_image(m), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=10)
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

