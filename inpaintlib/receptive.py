"""Effective receptive fields (Luo et al. 2016): which input pixels one output pixel depends on.

The gradient of one output pixel with respect to the input image says how much each input pixel
moves it. A deep convolutional network's *theoretical* receptive field may cover the whole image,
while the gradient mass stays concentrated near the output position; a layer that works in the
Fourier domain (the spectral transform of fast Fourier convolutions, Chi et al. 2020, used by LaMa,
Suvorov et al. 2022) depends on every pixel from its first layer on.  Used by Chapter 4 and the
closing page of the book.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

__all__ = ["FourierUnit", "input_gradient", "mass_radius", "plot_gradient_maps"]


class FourierUnit(nn.Module):
    """The spectral transform of a fast Fourier convolution: 2-D real FFT, a 1x1 convolution over
    the real and imaginary parts of every frequency, ReLU, inverse FFT.  Every output pixel depends on
    every input pixel, whatever the image size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.conv = nn.Conv2d(2 * channels, 2 * channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        spectrum = torch.fft.rfft2(x, norm="ortho")  # (N, C, H, W // 2 + 1), complex
        mixed = torch.relu(self.conv(torch.cat([spectrum.real, spectrum.imag], 1)))
        real, imag = mixed.chunk(2, 1)
        return torch.fft.irfft2(torch.complex(real, imag), s=x.shape[-2:], norm="ortho")


def input_gradient(fn: Callable[[Tensor], Tensor], image: Tensor, position: tuple[int, int] | None = None) -> Tensor:
    """``|d out[:, y, x] / d image|`` summed over channels, shape (H, W): how strongly each input pixel
    moves the output pixel at ``position`` (default: the centre).  ``image`` is (C, H, W); ``fn`` maps a
    batch (1, C, H, W) to (1, C', H, W)."""
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
    h, w = image.shape[1:]
    y, x = position if position is not None else (h // 2, w // 2)
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(f"position {(y, x)} lies outside the {h}x{w} image")
    inp = image[None].detach().clone().requires_grad_(True)
    out = fn(inp)
    if out.shape[-2:] != (h, w):
        raise ValueError(f"fn must keep the spatial size {h}x{w}, got {tuple(out.shape[-2:])}")
    (grad,) = torch.autograd.grad(out[0, :, y, x].sum(), inp)
    return grad[0].abs().sum(0)


def mass_radius(grad: Tensor, share: float, position: tuple[int, int] | None = None) -> float:
    """Radius (pixels) of the smallest disc around ``position`` (default: centre) that holds ``share``
    of the total gradient magnitude."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    h, w = grad.shape
    y, x = position if position is not None else (h // 2, w // 2)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    radius = ((yy - y) ** 2 + (xx - x) ** 2).float().sqrt().flatten()
    order = torch.argsort(radius, stable=True)
    cumulative = torch.cumsum(grad.flatten()[order].double(), 0)
    if cumulative[-1] <= 0:
        raise ValueError("the gradient is zero everywhere: the output does not depend on the input")
    cumulative = cumulative / cumulative[-1]
    target = torch.tensor([share - 1e-12], dtype=torch.float64)  # share = 1 must stop at the last non-zero pixel
    index = int(torch.searchsorted(cumulative, target).clamp(max=len(order) - 1))
    return float(radius[order][index])


def plot_gradient_maps(maps: Mapping[str, Tensor], shares: tuple[float, ...] = (0.5, 0.9)) -> Figure:
    """One panel per map: log10 of the gradient magnitude (relative to its maximum), with circles that
    hold ``shares`` of the gradient mass around the centre."""
    fig, axes = plt.subplots(1, len(maps), figsize=(3.4 * len(maps), 3.4), layout="constrained", squeeze=False)
    for ax, (name, grad) in zip(axes[0], maps.items()):
        g = grad.detach().float().cpu()
        rel = np.log10((g / g.max()).clamp(min=1e-6).numpy())
        im = ax.imshow(rel, cmap="magma", vmin=-6, vmax=0)
        h, w = g.shape
        for share, style in zip(shares, ("-", "--", ":")):
            r = mass_radius(g, share)
            ax.add_patch(plt.Circle((w // 2, h // 2), r, fill=False, color="#4fc3f7", ls=style, lw=1.2,
                                    label=f"{share:.0%} of the mass: r = {r:.0f} px"))
        ax.set_title(name, fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="log10 |gradient| / max")
    return fig
