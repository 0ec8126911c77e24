"""Every stored run (``data/runs/*``) exports to ONNX quickly and the graph computes what PyTorch computes.

A head that blends in a biharmonic fill gets the fill as an input (``inpaintlib.export``): traced, the fill's
conjugate gradients unrolled into a graph whose export took 861 s on two cores. Each export's wall time is
printed (``pytest -s``); this test does not assert it (speed is measured in ``bench/``), but an unrolled solver
would make the test take many minutes. The comparison uses one input per run: a validation photo with an
irregular mask from the training generator (PConv U-Nets), or a context with the report's central hole (Context
Encoders), fed through :func:`inpaintlib.export.onnx_inputs`.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from inpaintlib.data import load_image
from inpaintlib.export import export_onnx, onnx_inputs
from inpaintlib.masks import irregular_mask
from inpaintlib.models import PConvUNet
from inpaintlib.paths import photos_dir, stored_runs_dir
from inpaintlib.rundir import load_model

onnx = pytest.importorskip("onnx", reason="pip install -r requirements.txt (onnx)")
ort = pytest.importorskip("onnxruntime", reason="pip install -r requirements.txt (onnxruntime)")

pytestmark = pytest.mark.usefixtures("one_thread")

RUNS = sorted(p.name for p in stored_runs_dir().iterdir() if (p / "weights.pt").is_file())
PHOTO = photos_dir() / "val" / "gcompris-world-lemur.jpg"


def _inputs(model) -> tuple[torch.Tensor, ...]:
    image = load_image(PHOTO)[:, :256, :256].unsqueeze(0).contiguous()  # (1, 3, 256, 256)
    if isinstance(model, PConvUNet):
        mask = irregular_mask(256, 256, hole_ratio=(0.2, 0.4), generator=torch.Generator().manual_seed(1))
        return image, mask.unsqueeze(0)
    context = image[..., 64:192, 64:192] * 2 - 1  # (1, 3, 128, 128) in [-1, 1]
    return (context * model.hole_mask,)  # the central hole filled with 0, as in training


def test_the_stored_runs_are_all_listed() -> None:
    assert {"pconv", "pconv-fill-scale", "ce", "ce-fill-scale"} <= set(RUNS)


@pytest.mark.parametrize("run", RUNS)
def test_every_stored_run_exports_and_matches_pytorch(run, tmp_path) -> None:
    model = load_model(stored_runs_dir() / run).eval()
    start = time.perf_counter()
    path = export_onnx(model, tmp_path / f"{run}.onnx")
    print(f"\nexport of data/runs/{run}: {time.perf_counter() - start:.1f} s, {path.stat().st_size / 1e6:.1f} MB")
    inputs = _inputs(model)
    with torch.no_grad():
        expected = model(*inputs).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = onnx_inputs(model, *inputs)
    assert [i.name for i in session.get_inputs()] == list(feeds)
    assert ("fill" in feeds) == bool(model.head is not None and model.head.fill_iterations)
    got = session.run(None, feeds)[0]
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= 1e-4
