"""Run and evaluation figures (inpaintlib.plots) and the captions that name their run (inpaintlib.runinfo)."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from inpaintlib import plots, runinfo
from inpaintlib.inpainters import LABELS
from inpaintlib.losses import DEFAULT_PCONV_WEIGHTS


def _fake_run(path, history="step,total,seconds\n50,0.5,60.0\n3600,0.4,2700.0\n", **config):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({
        "kind": "pconv", "profile": "cpu", "image_size": 256, "width": 32,
        "environment": {"device_name": "Some CPU (2 cores)"}, **config,
    }))  # fmt: skip
    (path / "history.csv").write_text(history)
    return path


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_run_caption_reads_hardware_shape_steps_and_minutes(tmp_path):
    caption = runinfo.run_caption(_fake_run(tmp_path / "plain"))
    assert caption == "run 'plain': Some CPU (2 cores), profile cpu, 256 px, width 32, 3,600 steps, 45 min"


def test_run_caption_names_the_starting_run_and_changed_loss(tmp_path):
    run = _fake_run(tmp_path / "tuned", init_from="data/runs/pconv", loss_weights={"style": 0.0, "perceptual": 0.0})
    caption = runinfo.run_caption(run)
    assert caption.endswith("45 min, started from the weights of run 'pconv', "
                            "loss weights changed: style 0, perceptual 0")


def test_loss_term_weights_come_from_the_loss_and_the_run(tmp_path):
    default = plots.loss_term_weights()
    assert default["style_out"] == default["style_comp"] == DEFAULT_PCONV_WEIGHTS["style"]
    assert {k: default[k] for k in ("valid", "hole", "perceptual", "tv")} == {
        k: DEFAULT_PCONV_WEIGHTS[k] for k in ("valid", "hole", "perceptual", "tv")}
    assert "total" not in default and "style" not in default
    history = "step,valid,hole,style_out,total,seconds\n10,0.5,0.4,0.01,1.0,5\n20,0.4,0.3,0.02,0.9,10\n"
    run = _fake_run(tmp_path / "tuned", history=history, loss_weights={"style": 0.0, "hole": 3.0})
    assert plots.loss_term_weights(run)["style_out"] == 0.0 and plots.loss_term_weights(run)["hole"] == 3.0
    fig = plots.plot_loss_terms(run)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["valid  (weight 1)", "hole  (weight 3)", "style_out  (weight 0)", "total  (weighted sum)"]


def _summary():
    rows = []
    for method, base in (("pconv", 30.0), ("telea", 28.0)):
        for k, bucket in enumerate(["0.1-0.2", "0.01-0.1", "0.2-0.3", "all"]):  # out of order on purpose
            rows.append({"method": method, "bucket": bucket, "n": 4, "psnr": base - k, "ssim": 0.9 - 0.1 * k})
    return rows


def test_metric_by_bucket_draws_summary_rows_in_bucket_order():
    fig = plots.plot_metric_by_bucket(_summary(), ["psnr", "ssim"], title="t")
    psnr_ax, ssim_ax = fig.axes
    assert [t.get_text() for t in psnr_ax.get_xticklabels()] == ["0.01-0.1", "0.1-0.2", "0.2-0.3"]  # no "all"
    lines = {line.get_label(): line.get_ydata() for line in psnr_ax.get_lines()}
    assert set(lines) == {LABELS["pconv"], LABELS["telea"]}
    np.testing.assert_allclose(lines[LABELS["pconv"]], [29.0, 30.0, 28.0])
    np.testing.assert_allclose(ssim_ax.get_lines()[1].get_ydata(), [0.8, 0.9, 0.7])
    with pytest.raises(ValueError, match="lpips"):
        plots.plot_metric_by_bucket(_summary(), ["lpips"])
    with pytest.raises(ValueError, match="per-bucket"):
        plots.plot_metric_by_bucket([r for r in _summary() if r["bucket"] == "all"])


def test_method_comparison_shows_the_hole_in_white_and_the_scores():
    image = torch.full((2, 3, 8, 8), 0.25)
    mask = torch.ones(2, 1, 8, 8)
    mask[:, :, 2:5, 2:5] = 0
    outputs = {"telea": torch.zeros(2, 3, 8, 8), "my method": torch.ones(2, 3, 8, 8)}
    fig = plots.plot_method_comparison(image, mask, outputs, scores={"telea": [20.0, 21.5]}, row_labels=["a", "b"])
    axes = np.array(fig.axes).reshape(2, 4)
    assert [ax.get_title() for ax in axes[0]] == ["masked input", LABELS["telea"], "my method", "ground truth"]
    shown = axes[1, 0].get_images()[0].get_array()
    assert np.all(shown[2:5, 2:5] == 1.0) and np.all(shown[0, 0] == 0.25)
    assert axes[1, 1].get_xlabel() == "21.5 dB" and axes[1, 2].get_xlabel() == ""
    assert axes[1, 0].get_ylabel() == "b"
    single = plots.plot_method_comparison(image[0], mask[0], {"telea": outputs["telea"][0]}, {"telea": 19.0})
    assert len(single.axes) == 3 and single.axes[1].get_xlabel() == "19.0 dB"
    with pytest.raises(ValueError, match="same number of rows"):
        plots.plot_method_comparison(image, mask[:1], outputs)


def test_curves_with_equal_values_differ_in_dashes_markers_and_position():
    """Telea and Navier-Stokes score almost alike (Fig. 5.4): two methods with the same scores stay visible."""
    rows = [{**r, "method": "ns"} for r in _summary() if r["method"] == "telea"] + _summary()
    ax = plots.plot_metric_by_bucket(rows, ["psnr"]).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    telea, ns = lines[LABELS["telea"]], lines[LABELS["ns"]]
    np.testing.assert_allclose(telea.get_ydata(), ns.get_ydata())
    assert telea.get_linestyle() != ns.get_linestyle() and telea.get_marker() != ns.get_marker()
    assert np.all(np.abs(telea.get_xdata() - ns.get_xdata()) > 0.02)  # drawn side by side, not on top


def test_method_comparison_wraps_a_long_row_into_lines_of_large_titled_panels():
    image, mask = torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8)
    outputs = {f"m{k}": torch.rand(2, 3, 8, 8) for k in range(6)}  # 8 panels a row: input, 6 methods, truth
    fig = plots.plot_method_comparison(image, mask, outputs, scores={"m5": [1.0, 2.0]}, size=1.5)
    assert len(fig.axes) == 2 * 2 * 4  # each row on two lines of four
    assert fig.get_figwidth() == pytest.approx(4 * 1.5)  # so each panel keeps its size
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:8] == ["masked input", "m0", "m1", "m2", "m3", "m4", "m5", "ground truth"] == titles[8:]
    assert fig.axes[14].get_xlabel() == "2.0 dB"  # second row, method m5
    six = plots.plot_method_comparison(image[0], mask[0], {k: outputs[k][0] for k in ["m0", "m1", "m2", "m3"]})
    assert len(six.axes) == 6 and six.get_figwidth() == pytest.approx(3 * 1.4)  # two lines of three, not 4 + 2


def test_sample_progress_turns_the_grid_when_the_steps_make_it_too_wide(tmp_path):
    run = _fake_run(tmp_path / "run")
    (run / "samples").mkdir()
    side, pad, photos = 6, 2, 3
    for step in (0, 100, 200, 300, 400):  # grids as training writes them: photos x (input | completion | truth)
        grid = np.full((photos * (side + pad) + pad, 3 * side + 4 * pad, 3), 255, np.uint8)
        grid[pad:-pad, pad:-pad] = step // 2
        plots.Image.fromarray(grid).save(run / "samples" / f"step_{step:06d}.png")
    wide = plots.plot_sample_progress(run, count=5, max_columns=None)
    assert len(wide.axes) == photos * 7 and wide.axes[1].get_title() == "step 0"
    turned = plots.plot_sample_progress(run, count=5)
    assert len(turned.axes) == 7 * photos and turned.get_figwidth() == pytest.approx(photos * 1.6)
    assert [turned.axes[r * photos].get_ylabel() for r in (0, 1, 6)] == ["input", "step 0", "ground truth"]
    assert turned.axes[photos * 5].get_images()[0].get_array()[0, 0, 0] == pytest.approx(200 / 255, abs=1e-3)
