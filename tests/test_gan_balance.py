"""inpaintlib.gan_balance: the discriminator's dominance read from history.csv, checked on hand-made histories
and on the stored Context Encoder run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import pytest

from inpaintlib import gan_balance
from inpaintlib.paths import stored_runs_dir

matplotlib.use("Agg")

HEADER = "step,epoch,phase,total,rec,adv,d_loss,d_acc,lr,img_per_s,data_wait,skipped,seconds,val_psnr,val_ssim,val_l1_hole"


def _run(folder: Path, rows: list[tuple[int, float, float]], w_adv: float = 0.001) -> Path:
    folder.mkdir()
    lines = [HEADER] + [f"{s},0,train,1,1,{adv},0.5,{acc},0.001,1,0,0,1,{20 + s / 100},0.8,9" for s, acc, adv in rows]
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    (folder / "config.json").write_text(json.dumps({"kind": "ce", "w_adv": w_adv}))
    (folder / "metrics.json").write_text(json.dumps({"step": rows[-1][0], "overall": {"psnr": 25.0, "ssim": 0.8, "l1_hole": 9.0}}))
    return folder


def test_dominance_from_a_hand_made_history(tmp_path):
    rows = [(10, 0.6, 1.0), (20, 0.97, 2.0), (30, 0.9, 3.0), (40, 0.99, 4.0), (50, 0.98, 5.0)]
    d = gan_balance.discriminator_dominance(_run(tmp_path / "a", rows))
    assert d["rows"] == 5
    assert d["share_above"] == pytest.approx(3 / 5)
    assert d["above_from"] == 40  # the last row at or below 0.95 is step 30
    assert d["adv_late"] == pytest.approx(4.0)  # median over the second half (steps 30, 40, 50)
    assert d["d_fake_late"] == pytest.approx(math.exp(-d["adv_late"]))


def test_a_discriminator_that_never_settles_has_no_start_of_dominance(tmp_path):
    d = gan_balance.discriminator_dominance(_run(tmp_path / "b", [(10, 0.99, 1.0), (20, 0.5, 1.0)]))
    assert d["above_from"] is None and d["share_above"] == 0.5


def test_a_pconv_run_is_refused(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "history.csv").write_text("step,epoch,phase,total,valid\n10,0,train,1,1\n")
    with pytest.raises(ValueError, match="not a Context Encoder run"):
        gan_balance.discriminator_dominance(folder)


def test_stored_ce_run_discriminator_wins_from_step_100():
    run = stored_runs_dir() / "ce"
    d = gan_balance.discriminator_dominance(run)
    assert d["above_from"] == 100 and d["share_above"] > 0.99
    assert d["d_fake_late"] < 0.01


def test_comparison_table_reads_config_and_metrics(tmp_path):
    a = _run(tmp_path / "a", [(10, 0.6, 1.0), (20, 0.99, 2.0)], w_adv=0.001)
    b = _run(tmp_path / "b", [(10, 0.6, 1.0), (20, 0.99, 2.0)], w_adv=0.0)
    table = gan_balance.adversarial_comparison({"with": a, "without": b})
    assert table["with"]["w_adv"] == 0.001 and table["without"]["w_adv"] == 0.0
    assert table["with"]["psnr"] == 25.0 and table["with"]["steps"] == 20


def test_comparison_figure_shows_each_runs_completions_in_a_row_of_large_tiles():
    """The stored study (data/studies/ce-adversarial): one row of tiles per run between the input and the
    ground truth, at most four photos a row, so each tile is at least 2 inches wide."""
    import matplotlib.pyplot as plt

    study = Path(__file__).resolve().parents[1] / "data" / "studies" / "ce-adversarial"
    runs = {p.name: p for p in sorted(study.iterdir()) if (p / "samples").is_dir()}
    if len(runs) < 2:
        pytest.skip("the stored ce-adversarial study is missing")
    fig = gan_balance.plot_adversarial_comparison(runs)
    tiles = [ax for ax in fig.axes if ax.get_images()]
    labels = [ax.get_ylabel() for ax in tiles if ax.get_ylabel()]
    assert labels[0] == "input" and labels[-1] == "ground truth" and len(labels) == len(runs) + 2
    assert all(label.startswith(name) for label, name in zip(labels[1:-1], runs))
    columns = len(tiles) // len(labels)
    assert columns <= 4 and fig.get_figwidth() / columns >= 2
    plt.close(fig)
