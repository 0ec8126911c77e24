"""Effective receptive fields from input gradients (inpaintlib.receptive)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from inpaintlib.receptive import FourierUnit, input_gradient, mass_radius, plot_gradient_maps  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_3x3_convolution_sees_only_its_window():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 3, padding=1)
    grad = input_gradient(conv, torch.rand(3, 15, 15))
    assert grad.shape == (15, 15)
    outside = grad.clone()
    outside[6:9, 6:9] = 0
    assert bool((grad[6:9, 6:9] > 0).all()) and bool((outside == 0).all())
    assert mass_radius(grad, 1.0) <= 2 ** 0.5 + 1e-6


def test_a_fourier_unit_sees_the_whole_image():
    torch.manual_seed(0)
    grad = input_gradient(FourierUnit(3), torch.rand(3, 32, 32))
    assert bool((grad > 0).float().mean() > 0.99)
    assert mass_radius(grad, 0.5) > 8  # half the mass lies far outside any small window


def test_mass_radius_of_a_point_and_errors():
    grad = torch.zeros(9, 9)
    grad[4, 4] = 1.0
    assert mass_radius(grad, 0.9) == 0.0
    grad[4, 8] = 1.0  # a second point 4 px to the right holds half the mass
    assert mass_radius(grad, 0.5) == 0.0 and mass_radius(grad, 0.9) == 4.0
    with pytest.raises(ValueError, match="share must be in"):
        mass_radius(grad, 0.0)
    with pytest.raises(ValueError, match="zero everywhere"):
        mass_radius(torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match="outside the"):
        input_gradient(nn.Identity(), torch.rand(3, 4, 4), position=(4, 0))


def test_plot_draws_one_panel_and_circles_per_map():
    fig = plot_gradient_maps({"a": torch.rand(16, 16), "b": torch.rand(16, 16)})
    panels = [ax for ax in fig.axes if ax.get_title() in ("a", "b")]
    assert len(panels) == 2 and all(len(ax.patches) == 2 for ax in panels)
    plt.close(fig)
