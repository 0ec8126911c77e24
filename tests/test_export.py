"""ONNX export (inpaintlib.export): onnxruntime must compute what PyTorch computes, for the stored runs.

* ``data/runs/pconv`` exported once (float32 weights, ~20 s on 2 cores): at 256x256, 512x512 and a
  non-square 256x384 (dynamic height and width) onnxruntime's output is within 1e-3 of the PyTorch model's on a
  validation photo with an irregular mask from the training generator;
* the same graph with float16 weights (``weights_to_fp16``, what ``--fp16`` writes): within 1e-3. The graph
  computes in float32, but its weights are the folded ones (``inpaintlib.models.folded``: batch norm scales
  multiplied in, 3x3 taps summed into 4x4 kernels), which float16 rounds; measured here (onnxruntime 1.32 CPU,
  the inputs of these tests): 2.3e-4 at 256 px (0.06/255);
* ``data/runs/ce`` through the command line with ``--fp16``: the 64x64 patch within 1e-3 of PyTorch's;
* errors: a missing run or output folder gives exit status 2 and a message naming it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpaintlib.__main__ import main
from inpaintlib.data import load_image
from inpaintlib.export import export_onnx, weights_to_fp16
from inpaintlib.masks import irregular_mask
from inpaintlib.paths import photos_dir, stored_runs_dir
from inpaintlib.rundir import load_model

onnx = pytest.importorskip("onnx", reason="pip install -r requirements.txt (onnx)")
ort = pytest.importorskip("onnxruntime", reason="pip install -r requirements.txt (onnxruntime)")

pytestmark = pytest.mark.usefixtures("one_thread")

PCONV = stored_runs_dir() / "pconv"
CE = stored_runs_dir() / "ce"
PHOTO = photos_dir() / "val" / "gcompris-world-lemur.jpg"  # 768x512: room for every size tested


def _session(model_bytes_or_path) -> "ort.InferenceSession":
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes_or_path, options, providers=["CPUExecutionProvider"])


def _inputs(height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A validation photo cut to height x width (top-left corner) and an irregular mask, batch of one."""
    image = load_image(PHOTO)[:, :height, :width].unsqueeze(0)  # (1, 3, H, W)
    assert image.shape[-2:] == (height, width)
    mask = irregular_mask(height, width, hole_ratio=(0.2, 0.4), generator=torch.Generator().manual_seed(seed))
    return image.contiguous(), mask.unsqueeze(0)  # (1, 1, H, W), 1 = valid


@pytest.fixture(scope="module")
def pconv_fp32(tmp_path_factory):
    path = export_onnx(PCONV, tmp_path_factory.mktemp("export") / "pconv.onnx")
    return path


@pytest.fixture(scope="module")
def pconv_model():
    return load_model(PCONV)


def _max_diff(session, model, image, mask) -> float:
    with torch.no_grad():
        expected = model(image, mask).numpy()
    got = session.run(["prediction"], {"image": image.numpy(), "mask": mask.numpy()})[0]
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max())


@pytest.mark.parametrize("height, width", [(256, 256), (512, 512), (256, 384)])
def test_pconv_fp32_matches_pytorch(pconv_fp32, pconv_model, height, width) -> None:
    image, mask = _inputs(height, width, seed=height + width)
    assert _max_diff(_session(str(pconv_fp32)), pconv_model, image, mask) <= 1e-3


def test_pconv_fp16_weights_match_pytorch_and_halve_the_file(pconv_fp32, pconv_model) -> None:
    proto = weights_to_fp16(onnx.load(str(pconv_fp32)))
    data = proto.SerializeToString()
    assert len(data) < 0.55 * pconv_fp32.stat().st_size
    halves = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) >= 28  # every convolution's weights at least
    session = _session(data)
    for size in (256, 512):
        image, mask = _inputs(size, size, seed=size)
        assert _max_diff(session, pconv_model, image, mask) <= 1e-3


def test_pconv_export_records_how_to_call_it(pconv_fp32) -> None:
    proto = onnx.load(str(pconv_fp32), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["inpaintlib.kind"] == "pconv" and meta["inpaintlib.multiple"] == "128"
    assert meta["inpaintlib.mask_polarity"].startswith("1 = valid")
    assert [i.name for i in proto.graph.input] == ["image", "mask"]
    assert [o.name for o in proto.graph.output] == ["prediction"]
    assert proto.opset_import[0].version == 20


def test_ce_cli_fp16_matches_pytorch(tmp_path, capsys) -> None:
    out = tmp_path / "ce.fp16.onnx"
    assert main(["export", str(CE), "--format", "onnx", "--fp16", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    model = load_model(CE)
    context = load_image(PHOTO)[:, 100:228, 200:328].unsqueeze(0) * 2 - 1  # (1, 3, 128, 128) in [-1, 1]
    context[..., 36:92, 36:92] = 0  # the central hole, filled with 0 as in training
    with torch.no_grad():
        expected = model(context).numpy()
    got = _session(str(out)).run(["patch"], {"context": context.numpy()})[0]
    assert got.shape == (1, 3, 64, 64)
    assert float(np.abs(got - expected).max()) <= 1e-3


def test_cli_errors_name_the_problem(tmp_path, capsys) -> None:
    assert main(["export", str(tmp_path / "no-run"), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no-run" in capsys.readouterr().err
    assert main(["export", str(CE), "--format", "onnx", "--out", str(tmp_path / "missing" / "x.onnx")]) == 2
    assert "missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(CE), "--format", "tflite", "--out", str(tmp_path / "x")])


def test_pconv_still_rejects_a_non_binary_mask_outside_export(pconv_model) -> None:
    image, mask = _inputs(256, 256, seed=0)
    with pytest.raises(ValueError, match="must be binary"):
        pconv_model(image, mask * 0.5)


def test_a_head_with_a_biharmonic_fill_exports_and_matches_at_other_sizes(tmp_path) -> None:
    """The fill is the graph's third input (not unrolled into it); the network must match at every size."""
    from inpaintlib.export import onnx_inputs
    from inpaintlib.models import PConvUNet

    torch.manual_seed(0)
    model = PConvUNet(64, width=8, head_width=4, head_fill_iterations=3).eval()
    with torch.no_grad():
        model.head.layers[-1].weight.normal_(0, 0.1)  # a gate and a correction that are not constant
    session = _session(str(export_onnx(model, tmp_path / "fill.onnx")))
    assert [i.name for i in session.get_inputs()] == ["image", "mask", "fill"]
    for height, width in ((64, 64), (64, 192), (256, 256)):
        image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height + width))
        mask = irregular_mask(height, width, hole_ratio=(0.05, 0.3), generator=torch.Generator().manual_seed(width))
        with torch.no_grad():
            expected = model(image, mask.unsqueeze(0)).numpy()
        got = session.run(["prediction"], onnx_inputs(model, image, mask.unsqueeze(0)))[0]
        assert float(np.abs(got - expected).max()) <= 1e-4
