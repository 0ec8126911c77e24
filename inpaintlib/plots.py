"""Figures of training runs and evaluations: every such plot a chapter shows is drawn by a function here.

Each function takes tensors, arrays, summary rows or a run directory and returns a
``matplotlib.figure.Figure`` (the chapter then calls ``plt.show()``), so the same code plots a stored run
and a run a reader has just trained. Functions that read a run directory only read the files of the
run-directory contract (``config.json``, ``history.csv``, ``samples/``; see :mod:`inpaintlib.rundir`). They
carry no run title: the book's figure captions name the run (``inpaintlib.runinfo.run_caption`` gives one).

Figures of the course report reproduced here: Fig 4 (:func:`plot_gan_losses`), Fig 5
(:func:`plot_discriminator_accuracy`), Fig 6 (:func:`plot_loss_terms`), Fig 7 (:func:`plot_sample_progress`),
Fig 8 (:func:`plot_completions`); the evaluation's figures are :func:`plot_metric_by_bucket` and
:func:`plot_method_comparison`. The teaching figures of chapters 1-2 live in :mod:`inpaintlib.teaching`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from inpaintlib.losses import DEFAULT_PCONV_WEIGHTS
from inpaintlib.masks import bucket_sort_key
from inpaintlib.inpainters import LABELS
from inpaintlib.rundir import load_config, load_history, sample_paths

__all__ = ["COLORS", "line_style", "to_image", "image_grid", "show_images", "smooth_curve", "plot_gan_losses",
    "plot_discriminator_accuracy", "grid_tiles", "plot_sample_progress", "LOSS_TERMS", "loss_term_weights", "plot_loss_terms",
    "image_rows", "plot_completions", "METRIC_LABELS", "plot_metric_by_bucket", "plot_method_comparison"]

COLORS = {"train": "#1f77b4", "val": "#d62728", "G": "#1f77b4", "D": "#ff7f0e", "standard": "#7f7f7f"}

#: Line style and marker of the i-th curve of a plot: curves that lie on top of each other (Telea under
#: Navier-Stokes) stay distinguishable by their dashes and markers, not by colour alone.
_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1, 1, 1)), "v"), ((0, (1, 3)), "P")]


def line_style(i: int, points: int = 0) -> dict:
    """Keyword arguments for ``ax.plot`` that give the ``i``-th curve of a plot its own dashes and marker (the
    colour follows matplotlib's cycle). ``points``: the curve's length; a long curve gets about ten markers."""
    dashes, marker = _STYLES[i % len(_STYLES)]
    return {"linestyle": dashes, "marker": marker, "markevery": max(1, points // 10) if points else None,
            "markersize": 5, "markerfacecolor": "none" if i % 2 else None}


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


def image_grid(n: int, ncols: int | None, size: float, aspect: float = 1.0) -> tuple[Figure, np.ndarray]:
    ncols = min(n, ncols or n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows * aspect + 0.3), squeeze=False, layout="constrained"
    )
    for k, ax in enumerate(axes.flat):
        frame(ax) if k < n else ax.set_axis_off()
    return fig, axes


def frame(ax: plt.Axes) -> None:
    """No ticks, and a thin grey frame, so that a white panel (a mask, a white hole) shows its edge on a white page."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.55")
        spine.set_linewidth(0.8)


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
    fig, axes = image_grid(len(images), ncols, size)
    for i, (ax, img) in enumerate(zip(axes.flat, images)):
        arr = to_image(img)
        ax.imshow(arr, cmap=cmap if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=11)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def smooth_curve(values: Sequence[float], window: int | None = None) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if len(values) < 5:
        return values
    window = window or max(1, len(values) // 50)
    if window <= 1:
        return values
    kernel = np.ones(window) / window
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


# ------------------------------------------------------------------------------- training runs
def _column(hist: Mapping[str, np.ndarray], *candidates: str) -> str | None:
    for c in candidates:
        if c in hist:
            return c
    return None


def plot_gan_losses(run_dir: str | Path, smooth: int | None = None) -> Figure:
    """Report Fig 4: generator and discriminator losses of a Context Encoder run over training."""
    hist = load_history(run_dir)
    step = hist["step"]
    panels = [
        ("generator", [("total, eq. (3.3)", _column(hist, "total")),
                       ("reconstruction, eq. (3.1)", _column(hist, "rec")),
                       ("adversarial", _column(hist, "adv"))]),
        ("discriminator", [("D loss, eq. (3.2)", _column(hist, "d_loss"))]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), layout="constrained")
    for ax, (title, curves) in zip(axes, panels):
        for i, (label, col) in enumerate(c for c in curves if c[1] is not None):
            ax.plot(step, smooth_curve(hist[col], smooth), label=label, **line_style(i, len(step)))
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=10)
    axes[0].set_yscale("log")
    _mark_phases(axes, hist)
    return fig


def plot_discriminator_accuracy(run_dir: str | Path, smooth: int | None = None) -> Figure:
    """Report Fig 5: the discriminator's classification accuracy on real and generated patches."""
    hist = load_history(run_dir)
    col = _column(hist, "d_acc")
    if col is None:
        raise ValueError(f"history.csv of {run_dir} has no discriminator accuracy column (expected 'd_acc')")
    fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    ax.plot(hist["step"], smooth_curve(hist[col], smooth), color=COLORS["D"], label="accuracy")
    extras = [(c, label) for c, label in (("d_acc_real", "on real patches"), ("d_acc_fake", "on generated patches"))
              if c in hist]
    for i, (extra, label) in enumerate(extras, start=1):
        ax.plot(hist["step"], smooth_curve(hist[extra], smooth), lw=0.8, label=label,
                **line_style(i, len(hist["step"])))
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=10)
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
                    va="top", fontsize=9, color="gray")


def grid_tiles(grid: np.ndarray, columns: int = 3, pad: int = 2) -> list[list[np.ndarray]]:
    """Split a ``samples/step_*.png`` grid (rows: photos; columns: masked input | composite | ground
    truth, ``pad`` px apart, as ``inpaintlib.train`` writes them) into ``tiles[row][column]``."""
    height, width = grid.shape[:2]
    side = (width - (columns + 1) * pad) // columns
    rows = (height - pad) // (side + pad)
    if side <= 0 or rows <= 0 or rows * (side + pad) + pad != height:
        raise ValueError(f"sample grid of {width}x{height} px is not {columns} columns of square tiles with {pad} px gaps")
    return [[grid[pad + r * (side + pad): pad + r * (side + pad) + side, pad + c * (side + pad): pad + c * (side + pad) + side]
             for c in range(columns)] for r in range(rows)]


def plot_sample_progress(run_dir: str | Path, count: int = 5, rows: int = 4, size: float = 1.6,
                         max_columns: int | None = 4) -> Figure:
    """Report Fig 7: the run's fixed validation samples at ``count`` evenly spaced logged steps.

    Columns: the masked input, the completion at each chosen step, the ground truth; one row per
    validation photo (at most ``rows``). Read from the run's ``samples/step_XXXXXX.png`` grids. When that
    is more than ``max_columns`` columns the grid is turned (one column per photo, one row per stage), so
    that each image stays large enough to judge texture.
    """
    steps = sample_paths(run_dir)
    if not steps:
        raise FileNotFoundError(f"no samples/step_*.png in run directory {run_dir}")
    idx = np.unique(np.linspace(0, len(steps) - 1, min(count, len(steps))).round().astype(int))
    chosen = [steps[i] for i in idx]
    grids = [grid_tiles(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255) for _, p in chosen]
    n = min(rows, len(grids[0]))
    table = [[grids[0][r][0], *[g[r][1] for g in grids], grids[-1][r][2]] for r in range(n)]  # photo r, stage c
    titles = ["input"] + [f"step {step:,}" for step, _ in chosen] + ["ground truth"]
    if len(titles) <= (max_columns or len(titles)):
        return image_rows(table, titles, size=size)[0]
    return image_rows([list(stage) for stage in zip(*table)], [""] * n, row_labels=titles, size=size)[0]


# ----------------------------------------------------------------------- PConv loss terms (Fig 6)
LOSS_TERMS = ("valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total")


def loss_term_weights(run_dir: str | Path | None = None) -> dict[str, float]:
    """The weight of each logged PConv loss term in eq. (12): ``losses.DEFAULT_PCONV_WEIGHTS``, with the
    run's changed ``loss_weights`` (its ``config.json``) applied when ``run_dir`` is given.

    The loss has one style weight for both style terms (eqs. 9-10), so ``style_out`` and ``style_comp``
    both get the weight called ``style``.
    """
    weights = dict(DEFAULT_PCONV_WEIGHTS)
    if run_dir is not None:
        weights.update(load_config(run_dir).get("loss_weights") or {})
    out = {term: float(weights[term]) for term in LOSS_TERMS if term in weights}
    if "style" in weights:
        out.update(style_out=float(weights["style"]), style_comp=float(weights["style"]))
    return out


def plot_loss_terms(run_dir: str | Path, smooth: int | None = None, val: bool = True) -> Figure:
    """Report Fig 6: every term of the PConv loss (eqs. 8-12) over training, one panel each, titled with
    the weight the run gave it (:func:`loss_term_weights`).

    Validation columns named ``val_<term>`` are drawn too when present.
    """
    hist = load_history(run_dir)
    terms = [t for t in LOSS_TERMS if t in hist]
    if not terms:
        raise ValueError(f"history.csv of {run_dir} has none of the loss columns {LOSS_TERMS}")
    weights = loss_term_weights(run_dir)
    ncols = min(3, len(terms))  # three panels a row keep the figure narrow enough for a book column
    fig, axes = plt.subplots(math.ceil(len(terms) / ncols), ncols, figsize=(8.4, 2.6 * math.ceil(len(terms) / ncols)),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(terms):]:
        ax.set_axis_off()
    for ax, term in zip(axes.flat, terms):
        ax.plot(hist["step"], smooth_curve(hist[term], smooth), color=COLORS["train"], lw=1, label="train")
        vcol = _column(hist, f"val_{term}")
        if val and vcol is not None:
            ok = ~np.isnan(hist[vcol].astype(float))
            ax.plot(hist["step"][ok], hist[vcol][ok], "o-", ms=3, color=COLORS["val"], label="validation")
        weight = weights.get(term)
        ax.set_title(term + (f"  (weight {weight:g})" if weight is not None else "  (weighted sum)"), fontsize=11)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
        ax.set_xlabel("step", fontsize=10)
    axes.flat[0].legend(frameon=False, fontsize=10)
    _mark_phases(list(axes.flat[: len(terms)]), hist)
    return fig


def image_rows(
    rows: Sequence[Sequence[Tensor | np.ndarray]], titles: Sequence[str], row_labels: Sequence[str] | None = None,
    size: float = 2.4, max_columns: int | None = None,
) -> tuple[Figure, np.ndarray]:
    """A grid of images, ``rows[i][j]`` in row i and column j, columns titled on the first row, rows
    labelled on the left; returns the figure and its (rows, columns) axes.

    With ``max_columns``, a row longer than that goes on over several lines and every panel gets its title,
    so that a grid of many methods keeps panels large enough to judge texture (at least 128 px per image in
    a 1280 px window, issue 25)."""
    n, ncols = len(rows), len(titles)
    lines = math.ceil(ncols / min(ncols, max_columns or ncols))
    per_line = math.ceil(ncols / lines)  # 6 panels in two lines of 3, not 4 + 2
    height = n * lines * (size + 0.25 * (lines > 1)) + 0.4  # room for a title over each wrapped panel
    fig, grid = plt.subplots(n * lines, per_line, figsize=(per_line * size, height), squeeze=False, layout="constrained")
    axes = np.empty((n, ncols), dtype=object)  # (row, column) -> the axes it is drawn in
    for i, panels in enumerate(rows):
        for j, panel in enumerate(panels):
            ax = axes[i, j] = grid[i * lines + j // per_line, j % per_line]
            picture = to_image(panel)
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)  # a mask: grey
            frame(ax)
            if i == 0 or lines > 1:
                ax.set_title(textwrap.fill(titles[j], 14), fontsize=11 if lines == 1 else 9)  # long: two lines
        for ax in grid[i * lines + (len(panels) - 1) // per_line, (len(panels) - 1) % per_line + 1:]:
            ax.axis("off")  # the empty end of a row's last line
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=11)
    return fig, axes


def plot_completions(
    inputs: Tensor, outputs: Tensor, targets: Tensor, titles: Sequence[str] = ("input", "completion", "ground truth"),
    caption: str | None = None, row_labels: Sequence[str] | None = None, size: float = 2.4,
) -> Figure:
    """Report Fig 8: rows of (masked input, completed image, ground truth), all (N, 3, H, W) in [0, 1]."""
    fig, _ = image_rows(list(zip(inputs, outputs, targets)), titles, row_labels, size)
    if caption:
        fig.suptitle(caption, fontsize=9)
    return fig


# --------------------------------------------------------------------------------- evaluation
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "l1_hole": "L1 over the hole ×100", "lpips": "LPIPS (AlexNet)",
                 "seconds": "seconds per image"}


def plot_metric_by_bucket(
    summary: Sequence[Mapping], metrics: Sequence[str] = ("psnr",), title: str | None = None
) -> Figure:
    """Mean of each metric per hole-ratio bucket, one line per method and one panel per metric.

    ``summary``: rows of :func:`inpaintlib.results.summarize` or ``read_summary`` (method, bucket and the
    metric columns: psnr, ssim, l1_hole, ...); the "all" rows are left out. Buckets run from small to
    large holes; methods are named with :data:`inpaintlib.inpainters.LABELS` (other names as given).
    """
    rows = [r for r in summary if r["bucket"] != "all"]
    if not rows:
        raise ValueError("no per-bucket rows to plot; expected the rows of results.summarize or read_summary")
    missing = [m for m in metrics if m not in rows[0]]
    if missing or not metrics:
        raise ValueError(f"the summary has no column {missing or metrics}; it has {sorted(rows[0])}")
    buckets = sorted({r["bucket"] for r in rows}, key=bucket_sort_key)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["bucket"]): r for r in rows}
    width = 6.4 if len(metrics) == 1 else 5.0 * len(metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width, 3.4), squeeze=False, layout="constrained")
    x = np.arange(len(buckets))
    for ax, metric in zip(axes[0], metrics):
        for i, method in enumerate(methods):
            values = [float(cell[(method, b)][metric]) if (method, b) in cell else np.nan for b in buckets]
            dodge = (i - (len(methods) - 1) / 2) * 0.05  # methods with equal scores side by side, not hidden
            ax.plot(x + dodge, values, label=LABELS.get(method, method), **line_style(i))
        ax.set_xticks(x, buckets, fontsize=8)
        ax.set_xlabel("hole-ratio bucket")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _batched(x: Tensor, channels: int, what: str) -> Tensor:
    x = x.detach().float().cpu()
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{what} must be ({channels}, H, W) or (N, {channels}, H, W), got {tuple(x.shape)}")
    return x


def plot_method_comparison(
    image: Tensor, mask: Tensor, outputs: Mapping[str, Tensor],
    scores: Mapping[str, float | Sequence[float]] | None = None, row_labels: Sequence[str] | None = None,
    size: float = 1.4, score_format: str = "{:.1f} dB", max_columns: int | None = 4,
) -> Figure:
    """Rows of: the masked input (hole in white), each method's completion, the ground truth.

    ``image`` is one ground truth (3, H, W) or a batch (N, 3, H, W); ``mask`` (1, H, W) or (N, 1, H, W),
    1 = valid, 0 = hole; ``outputs[method]`` the completions, shaped like ``image``. Columns are titled
    with :data:`inpaintlib.inpainters.LABELS` (other names as given). ``scores[method]`` -- one number, or one
    per row -- is written under each completion with ``score_format``; ``row_labels`` name the rows. A row
    goes on over lines of at most ``max_columns`` panels (see :func:`image_rows`).
    """
    images, masks_ = _batched(image, 3, "image"), _batched(mask, 1, "mask")
    outs = {name: _batched(out, 3, f"outputs[{name!r}]") for name, out in outputs.items()}
    n = len(images)
    if any(len(o) != n for o in [masks_, *outs.values()]):
        raise ValueError(f"image, mask and every output need the same number of rows ({n})")
    cols = ["masked input", *[LABELS.get(m, m) for m in outs], "ground truth"]
    masked = images * masks_ + (1 - masks_)  # hole shown in white
    fig, axes = image_rows([[masked[i], *[o[i] for o in outs.values()], images[i]] for i in range(n)], cols,
                           row_labels, size, max_columns)
    for i in range(n):
        for j, name in enumerate(outs, start=1):
            value = (scores or {}).get(name)
            if value is not None:
                value = value if isinstance(value, (int, float)) else value[i]
                axes[i, j].set_xlabel(score_format.format(float(value)), fontsize=10)
    return fig
