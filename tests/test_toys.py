"""Chapter 1's toy data, networks and figures (inpaintlib.toys)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from inpaintlib import toys  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_spirals_are_seeded_two_class_points_in_the_unit_disc():
    a, la = toys.spirals(500, torch.Generator().manual_seed(0))
    b, lb = toys.spirals(500, torch.Generator().manual_seed(0))
    assert a.shape == (500, 2) and la.shape == (500,)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert set(la.tolist()) == {0.0, 1.0} and 0.4 < la.mean() < 0.6
    assert a.norm(dim=1).max() < 1.1
    # the two classes are point reflections of each other: no straight line through the centre separates them
    c, _ = toys.spirals(500, torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="n must be positive"):
        toys.spirals(0, torch.Generator())


def test_mlp_layers_and_batch_norm():
    plain = toys.mlp([2, 8, 8, 1])
    normed = toys.mlp([2, 8, 8, 1], activation="tanh", batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in plain) == 0
    assert [type(m) for m in normed] == [nn.Linear, nn.BatchNorm1d, nn.Tanh] * 2 + [nn.Linear]
    assert isinstance(plain[-1], nn.Linear) and plain(torch.zeros(5, 2)).shape == (5, 1)
    with pytest.raises(ValueError, match="activation must be one of"):
        toys.mlp([2, 1], activation="swish")
    with pytest.raises(ValueError, match="at least an input and an output"):
        toys.mlp([2])


def test_a_hidden_layer_solves_what_a_linear_model_cannot():
    points, labels = toys.spirals(400, torch.Generator().manual_seed(0))
    accuracy = {}
    for name, sizes in {"linear": [2, 1], "deep": [2, 64, 64, 1]}.items():
        torch.manual_seed(0)
        net = toys.mlp(sizes, activation="leaky_relu")
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(600):
            loss = nn.functional.binary_cross_entropy_with_logits(net(points).squeeze(1), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        accuracy[name] = ((net(points).squeeze(1) > 0).float() == labels).float().mean().item()
    assert accuracy["linear"] < 0.75 < 0.95 < accuracy["deep"]


def test_network_graph_draws_every_neuron_and_weight():
    fig = toys.plot_network_graph([3, 4, 2])
    ax = fig.axes[0]
    assert len(ax.patches) == 3 + 4 + 2
    assert len(ax.lines) == 3 * 4 + 4 * 2
    assert "26 parameters" in ax.get_title()


def test_activation_slopes_and_curves():
    fig = toys.plot_activations(torch.tensor([-1.0, 2.0]))
    slopes = {line.get_label(): line.get_ydata().tolist() for line in fig.axes[1].lines if line.get_label()[0] != "_"}
    assert slopes["ReLU"] == [0.0, 1.0]
    assert slopes["leaky ReLU (0.2)"] == pytest.approx([0.2, 1.0])
    for ax in fig.axes:  # ReLU and leaky ReLU coincide for z > 0: both stay visible (Fig. 1.2)
        lines = {line.get_label(): line for line in ax.lines}
        relu, leaky = lines["ReLU"], lines["leaky ReLU (0.2)"]
        assert relu.get_linestyle() != leaky.get_linestyle() and relu.get_linewidth() > leaky.get_linewidth()
    curves = toys.plot_training_curves({"a": [1.0] * 30, "b": [2.0] * 30}, window=10)
    assert [line.get_label() for line in curves.axes[0].lines] == ["a", "b"]
    assert curves.axes[0].lines[1].get_ydata().tolist() == pytest.approx([2.0] * 21)


def test_representation_draws_the_last_layers_decision_line():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0]]))
        layer.bias.zero_()
    feats = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 3.0]])
    fig = toys.plot_representation(feats, torch.tensor([0.0, 1.0, 0.0]), feats, torch.zeros(4, 4), layer)
    (line,) = [ln for ln in fig.axes[1].lines if ln.get_label() == "decision line"]
    assert line.get_ydata().tolist() == pytest.approx(line.get_xdata().tolist())  # w·f + b = 0 is f2 = f1
