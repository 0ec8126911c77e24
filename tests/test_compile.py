"""torch.compile: the layer, both models and the PConv loss trace as one graph each (no graph breaks), and a
compiled network trains and inpaints like the eager one.  On CPU, compiling buys nothing measurable today
(bench/RESULTS.md, "torch.compile"); the test is that it works and changes no result."""

from __future__ import annotations

import csv

import pytest
import torch

from inpaintlib.inference import inpaint
from inpaintlib.layers import PartialConv2d
from inpaintlib.losses import PConvLoss
from inpaintlib.masks import irregular_mask
from inpaintlib.models import ContextDiscriminator, ContextEncoder, PConvUNet
from inpaintlib.train import train
from inpaintlib.vgg import VGG16Features

from test_train import tiny_pconv


def _mask(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, size, size, generator=g) > 0.3).float()


CASES = {
    "PartialConv2d, shared mask": lambda: (PartialConv2d(4, 6, 3, padding=1), (torch.rand(2, 4, 16, 16), _mask(2, 16, 0))),
    "PartialConv2d, per-channel mask": lambda: (
        PartialConv2d(4, 6, 3, padding=1),
        (torch.rand(2, 4, 16, 16), (torch.rand(2, 4, 16, 16) > 0.5).float()),
    ),
    "PConvUNet": lambda: (PConvUNet(64, 4, 8), (torch.rand(2, 3, 64, 64), _mask(2, 64, 1))),
    "ContextEncoder": lambda: (ContextEncoder(width=8, bottleneck=16), (torch.rand(2, 3, 128, 128) * 2 - 1,)),
    "ContextDiscriminator": lambda: (ContextDiscriminator(width=8), (torch.rand(2, 3, 64, 64),)),
    "PConvLoss (HED VGG16)": lambda: (
        PConvLoss(VGG16Features("hed")),
        (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), _mask(2, 32, 2)),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_traces_as_one_graph_without_breaks(name):
    torch._dynamo.reset()
    module, args = CASES[name]()
    explained = torch._dynamo.explain(module)(*args)
    reasons = [b.reason.splitlines()[0] for b in explained.break_reasons]
    assert explained.graph_break_count == 0, f"{name}: graph breaks: {reasons}"
    assert explained.graph_count == 1


def test_the_value_check_still_runs_in_eager_mode():
    net = PConvUNet(64, 4, 8)
    with pytest.raises(ValueError, match="must be binary"):
        net(torch.rand(1, 3, 64, 64), torch.full((1, 1, 64, 64), 0.5))


def test_compiled_unet_inpaints_like_the_eager_one():
    torch.manual_seed(0)
    net = PConvUNet(64, 4, 8).eval()
    image = torch.rand(3, 64, 64)
    mask = irregular_mask(64, 64, generator=torch.Generator().manual_seed(3))
    eager = inpaint(net, image, mask)
    compiled = inpaint(torch.compile(net), image, mask)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    assert torch.equal(compiled * mask, image * mask)


def test_training_with_compile_runs_and_matches_eager(photos, tmp_path):
    """Two steps of the tiny fp32 PConv run, compiled and not: the logged losses agree."""
    runs = {}
    for compiled in (False, True):
        config = tiny_pconv(photos, steps=2, finetune_steps=0, sample_every=2, val_every=2, compile=compiled)
        runs[compiled] = train(config, tmp_path / f"compile-{compiled}", progress=False)
    losses = []
    for run in runs.values():
        with (run / "history.csv").open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["phase"] == "train"]
        losses.append(torch.tensor([[float(r[k]) for k in ("total", "valid", "hole", "perceptual")] for r in rows]))
    assert losses[0].shape == losses[1].shape == (2, 4)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-3, atol=1e-5)
