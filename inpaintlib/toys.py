"""Toy data, toy networks and their figures for Chapter 1's background (report §2, §2.1-2.2).

Everything here trains in seconds on a laptop CPU: two interleaved spirals (a two-class problem no
straight line can solve), small fully connected networks with or without batch normalization
{Ioffe & Szegedy 2015}, and the figures the chapter shows: a network drawn as a graph of neurons,
the common activation functions, a learned representation, and training curves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

__all__ = ["spirals", "mlp", "plot_network_graph", "plot_activations", "plot_representation",
           "plot_training_curves"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}


def spirals(n: int, generator: torch.Generator, noise: float = 0.02) -> tuple[Tensor, Tensor]:
    """``n`` points of two interleaved spirals in the unit disc: inputs ``(n, 2)``, labels ``(n,)`` in {0, 1}."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    t = torch.rand(n, generator=generator) * 3 * math.pi + 0.5  # angle travelled along the spiral
    label = torch.randint(0, 2, (n,), generator=generator)
    radius, angle = t / (3 * math.pi + 0.5), t + label * math.pi  # class 1 is class 0 turned by 180°
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1)
    return points + noise * torch.randn(n, 2, generator=generator), label.float()


def mlp(sizes: Sequence[int], activation: str = "relu", batch_norm: bool = False) -> nn.Sequential:
    """Fully connected network with layer widths ``sizes`` (input first, output last).

    Each hidden layer is Linear (+ BatchNorm1d when ``batch_norm``) + activation; the last layer is a
    plain Linear, so a classifier returns logits.
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least an input and an output width, all positive; got {list(sizes)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for c_in, c_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Linear(c_in, c_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(c_out))
        layers.append(_ACTIVATIONS[activation]())
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def plot_network_graph(sizes: Sequence[int], names: Sequence[str] | None = None) -> Figure:
    """A fully connected network as a directed acyclic graph: one circle per neuron, one edge per weight."""
    fig, ax = plt.subplots(figsize=(1.6 * len(sizes) + 1.0, 3.2), layout="constrained")
    tallest = max(sizes)
    positions = [[(i, (tallest - 1) / 2 - j) for j in range(n)] for i, n in enumerate(sizes)]
    for left, right in zip(positions, positions[1:]):
        for x0, y0 in left:
            for x1, y1 in right:
                ax.plot([x0, x1], [y0, y1], color="#9e9e9e", lw=0.7, zorder=1)
    colours = ["#e0e0e0"] + ["#c6dbef"] * (len(sizes) - 2) + ["#c7e9c0"]
    for layer, colour in zip(positions, colours):
        for x, y in layer:
            ax.add_patch(plt.Circle((x, y), 0.17, facecolor=colour, edgecolor="#444444", zorder=2))
    names = names or ["input"] + [f"hidden {i}" for i in range(1, len(sizes) - 1)] + ["output"]
    for i, name in enumerate(names):
        ax.text(i, (tallest - 1) / 2 - tallest + 0.6, name, ha="center", va="top", fontsize=9)
    n_weights = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    ax.set_title(f"layer widths {list(sizes)}: {n_weights} parameters (weights + biases)", fontsize=10)
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_ylim((tallest - 1) / 2 - tallest + 0.2, (tallest - 1) / 2 + 0.4)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig


def plot_activations(z: Tensor | None = None) -> Figure:
    """The activation functions of the book's networks, with their slopes (what backpropagation multiplies)."""
    z = torch.linspace(-4, 4, 401) if z is None else z
    funcs = {"ReLU": nn.ReLU(), "leaky ReLU (0.2)": nn.LeakyReLU(0.2), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}
    # ReLU and leaky ReLU coincide for z > 0: a wide solid line under a dashed one keeps both visible
    styles = [{"lw": 3.5, "alpha": 0.6}, {"ls": "--", "lw": 1.6}, {"ls": "-.", "lw": 1.6}, {"ls": ":", "lw": 2.0}]
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    for (name, f), style in zip(funcs.items(), styles):
        zz = z.clone().requires_grad_(True)
        out = f(zz)
        (slope,) = torch.autograd.grad(out.sum(), zz)
        axes[0].plot(z, out.detach(), label=name, **style)
        axes[1].plot(z, slope, label=name, **style)
    axes[0].set_title("activation $a(z)$", fontsize=10)
    axes[1].set_title("slope $a'(z)$", fontsize=10)
    for ax in axes:
        ax.axhline(0, color="#999999", lw=0.6)
        ax.set_xlabel("weighted input $z$")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def plot_representation(points: Tensor, labels: Tensor, features: Tensor, grid_probability: Tensor,
                        last_layer: nn.Linear, extent: float = 1.1) -> Figure:
    """Left: the inputs with a network's decision regions; right: the same points in the network's last
    hidden layer (two features), with the straight line ``w · f + b = 0`` of its final ``last_layer``."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.8), layout="constrained")
    colours = np.where(labels.numpy() > 0.5, "#d62728", "#1f77b4")
    axes[0].imshow(grid_probability.numpy(), extent=(-extent, extent, -extent, extent), origin="lower",
                   cmap="RdBu_r", vmin=0, vmax=1, alpha=0.35)
    axes[0].scatter(points[:, 0], points[:, 1], c=colours, s=5)
    axes[0].set_title("input space: two spirals", fontsize=10)
    axes[1].scatter(features[:, 0], features[:, 1], c=colours, s=5)
    axes[1].set_title("learned features (last hidden layer)", fontsize=10)
    (w1, w2), b = last_layer.weight.detach()[0].tolist(), float(last_layer.bias.detach()[0])
    lo, hi = float(features[:, 0].min()), float(features[:, 0].max())
    if abs(w2) > 1e-12:
        xs = np.linspace(lo, hi, 2)
        axes[1].plot(xs, -(w1 * xs + b) / w2, color="k", lw=1, label="decision line")
        axes[1].set_ylim(float(features[:, 1].min()) - 0.1 * (hi - lo), float(features[:, 1].max()) + 0.1 * (hi - lo))
        axes[1].legend(fontsize=8, loc="best")
    for ax, labels_xy in zip(axes, (("$x_1$", "$x_2$"), ("feature 1", "feature 2"))):
        ax.set_xlabel(labels_xy[0])
        ax.set_ylabel(labels_xy[1])
        ax.set_aspect("equal", adjustable="datalim")
    return fig


def plot_training_curves(curves: Mapping[str, Sequence[float]], ylabel: str = "training loss",
                         window: int = 20) -> Figure:
    """Training curves (moving average over ``window`` steps), one line per entry of ``curves``."""
    fig, ax = plt.subplots(figsize=(6.0, 3.2), layout="constrained")
    for name, values in curves.items():
        v = np.asarray(values, dtype=float)
        w = max(1, min(window, len(v)))
        smooth = np.convolve(v, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, len(v) + 1), smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
