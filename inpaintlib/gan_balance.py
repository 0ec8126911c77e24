"""How much the Context Encoder's adversarial term does (report §3.1, eqs. (3)-(5), Figs 4-5).

A GAN's two players should stay in balance: if the discriminator tells real from generated patches
almost always, its verdict on the generator's patches saturates and the generator learns from the
reconstruction term alone. These helpers read the balance off a run's ``history.csv`` and put two runs
that differ only in the adversarial weight ``w_adv`` side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from inpaintlib.plots import frame, grid_tiles, line_style
from inpaintlib.rundir import load_config, load_history, load_metrics, sample_paths

__all__ = ["discriminator_dominance", "adversarial_comparison", "plot_adversarial_comparison"]


def discriminator_dominance(run_dir: str | Path, threshold: float = 0.95) -> dict[str, Any]:
    """How completely the discriminator wins, from the training rows of a Context Encoder run.

    Returns ``rows`` (logged training rows), ``share_above`` (the share of rows with accuracy above
    ``threshold``), ``above_from`` (the first logged step from which the accuracy never falls to
    ``threshold`` again, or None), ``adv_late`` (the median adversarial loss ``-log D(F(x))`` over the
    second half of the run) and ``d_fake_late`` (``exp(-adv_late)``: the probability the discriminator
    gives a generated patch of being real, typically).
    """
    hist = load_history(run_dir)
    if "d_acc" not in hist:
        raise ValueError(f"{run_dir} is not a Context Encoder run: history.csv has no 'd_acc' column")
    train = np.asarray(hist["phase"]).astype(str) == "train"
    steps, acc, adv = hist["step"][train], hist["d_acc"][train], hist["adv"][train]
    if not len(steps):
        raise ValueError(f"history.csv of {run_dir} has no training rows")
    below = np.nonzero(acc <= threshold)[0]
    if not len(below):
        above_from = int(steps[0])
    elif below[-1] + 1 < len(steps):
        above_from = int(steps[below[-1] + 1])
    else:
        above_from = None
    late = adv[steps > steps[-1] / 2]
    adv_late = float(np.median(late)) if len(late) else float("nan")
    return {
        "rows": int(len(steps)),
        "share_above": float(np.mean(acc > threshold)),
        "above_from": above_from,
        "adv_late": adv_late,
        "d_fake_late": math.exp(-adv_late),
    }


def adversarial_comparison(runs: Mapping[str, str | Path]) -> dict[str, dict[str, Any]]:
    """For each labelled Context Encoder run: its ``w_adv``, steps, the discriminator's dominance and the
    validation scores of ``metrics.json`` (PSNR, SSIM, hole L1 x 100 on the central hole)."""
    table = {}
    for label, run in runs.items():
        config, metrics = load_config(run), load_metrics(run)
        table[label] = {
            "w_adv": config["w_adv"],
            "steps": metrics["step"],
            **discriminator_dominance(run),
            **{k: metrics["overall"][k] for k in ("psnr", "ssim", "l1_hole")},
        }
    return table


def plot_adversarial_comparison(runs: Mapping[str, str | Path]) -> Figure:
    """Top: the discriminator's accuracy and the validation PSNR over the steps of each run. Below: the same
    validation photos (one a column) from each run's last sample grid: the input, each run's completion (one
    row a run) and the ground truth, each tile about 2 inches wide so texture can be judged."""
    labels = list(runs)
    last = {label: sample_paths(runs[label])[-1] for label in labels}  # (step, path) of each run's last grid
    tiles = {label: grid_tiles(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255)
             for label, (_, path) in last.items()}  # tiles[label][photo][input | completion | truth]
    photos = min(4, *(len(t) for t in tiles.values()))  # at most four columns: tiles of 2 inches or more
    fig = plt.figure(figsize=(9, 3 + 9 / photos * (len(labels) + 2)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3, 9 / photos * (len(labels) + 2)])
    ax_acc, ax_psnr = top.subplots(1, 2)
    for i, label in enumerate(labels):
        hist = load_history(runs[label])
        train = np.asarray(hist["phase"]).astype(str) == "train"
        ax_acc.plot(hist["step"][train], hist["d_acc"][train], lw=1.2, label=label,
                    **line_style(i, int(train.sum())))
        if "val_psnr" in hist:
            ok = np.isfinite(hist["val_psnr"])
            ax_psnr.plot(hist["step"][ok], hist["val_psnr"][ok], lw=1.2, label=label, **line_style(i))
    ax_acc.axhline(0.5, color="gray", ls=":", lw=1)
    ax_acc.set(xlabel="step", ylabel="discriminator accuracy", ylim=(0, 1.02), title="discriminator accuracy (not smoothed)")
    counts = sorted({load_config(run).get("val_images") for run in runs.values()}, key=str)
    ax_psnr.set(xlabel="step", ylabel="PSNR (dB)",
                title=f"PSNR during training ({' / '.join(map(str, counts))} validation photos)")
    for ax in (ax_acc, ax_psnr):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=9)
    first = tiles[labels[0]]
    rows = [("input", [first[c][0] for c in range(photos)])]
    rows += [(f"{label}\nstep {last[label][0]:,}", [tiles[label][c][1] for c in range(photos)]) for label in labels]
    rows += [("ground truth", [first[c][2] for c in range(photos)])]
    axes = bottom.subplots(len(rows), photos, squeeze=False)
    for (name, row), ax_row in zip(rows, axes):
        for tile, ax in zip(row, ax_row):
            ax.imshow(tile)
            frame(ax)
        ax_row[0].set_ylabel(name, fontsize=9)
    return fig
