"""The training engine: configs, exact resume after a kill, NaN guard, atomic checkpoints, run files.

Everything runs on CPU with tiny networks (width 8, 64 px, batch 2) on a few real photos
from scikit-image written into a temporary folder.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import inpaintlib.models
import inpaintlib.train.recipes
from inpaintlib import rundir
from inpaintlib.data import PhotoFolder
from inpaintlib.inference import inpaint
from inpaintlib.masks import evaluation_assignment
from inpaintlib.models import ContextEncoder, PConvUNet
from inpaintlib.rundir import load_config, load_history, load_metrics, load_model, sample_paths
from inpaintlib.train import (
    PROFILES,
    CEConfig,
    PConvConfig,
    StepBatchSampler,
    config_from_dict,
    make_config,
    train,
)

PCONV_COLUMNS = ["total", "valid", "hole", "perceptual", "style_out", "style_comp", "tv"]
CE_COLUMNS = ["total", "rec", "adv", "d_loss", "d_acc"]
TAIL_COLUMNS = ["lr", "img_per_s", "data_wait", "skipped", "seconds", "val_psnr", "val_ssim", "val_l1_hole"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(kind: str, photos: Path, **overrides):
    """A CPU run of seconds on the test photos: width 8, batch 2, fp32, no loader workers."""
    settings = dict(
        batch_size=2,
        width=8,
        log_every=1,
        sample_images=2,
        amp="off",
        device="cpu",
        num_workers=0,
        data=str(photos / "train"),
        val_data=str(photos / "val"),
    )
    if kind == "pconv":
        settings.update(image_size=64, steps=4, finetune_steps=2, sample_every=3, checkpoint_every=2,
                        vgg_weights="hed", val_every=2)  # validation in the loop: resume must stay exact with it
    else:
        settings.update(bottleneck=16, steps=3, sample_every=2)
    return make_config(kind, None, **{**settings, **overrides})


def tiny_pconv(photos: Path, **overrides) -> PConvConfig:
    return tiny_config("pconv", photos, **overrides)


def tiny_ce(photos: Path, **overrides) -> CEConfig:
    return tiny_config("ce", photos, **overrides)


def state_of(run_dir: Path) -> dict[str, torch.Tensor]:
    """Generator weights and buffers (fp32) from a run's checkpoint."""
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return ckpt["models"]["generator"]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory):
    """An uninterrupted tiny PConv run (4 train + 2 fine-tune steps) and the generator state after each step."""
    snapshots = {}

    def record(info):
        net = info["networks"]["generator"]
        snapshots[info["step"]] = {k: v.detach().clone() for k, v in net.state_dict().items()}

    out = tmp_path_factory.mktemp("runs") / "reference"
    run_dir = train(tiny_pconv(photos), out, progress=False, callback=record)
    return run_dir, snapshots


# ---------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------


def test_config_defaults_are_the_reports_settings():
    ce = CEConfig()
    assert (ce.batch_size, ce.image_size, ce.betas, ce.lr_d, ce.lr_g) == (64, 128, (0.5, 0.999), 1e-4, 1e-3)
    assert (ce.hole_size, ce.patch_size, ce.overlap, ce.bottleneck, ce.width) == (56, 64, 4, 4000, 64)
    assert (ce.w_rec, ce.w_adv) == (0.999, 0.001)
    pc = PConvConfig()
    assert (pc.lr, pc.finetune_lr, pc.image_size, pc.width, pc.layers) == (2e-4, 5e-5, 256, 64, None)
    assert pc.checkpoint_every_minutes == 10


def test_make_config_applies_profile_then_overrides_and_rejects_unknown_names():
    c = make_config("pconv", "cpu", steps=7)
    assert c.steps == 7 and c.profile == "cpu"
    assert c.image_size == PROFILES["cpu"]["pconv"]["image_size"]
    assert make_config("ce", "gpu").batch_size == 64  # the report's batch on a GPU
    with pytest.raises(ValueError, match="no setting"):
        make_config("pconv", "cpu", learning_rate=1.0)
    with pytest.raises(ValueError, match="unknown recipe"):
        make_config("gan")
    with pytest.raises(ValueError, match="128x128"):
        make_config("ce", "cpu", image_size=64)
    with pytest.raises(ValueError, match="multiple of 2"):
        make_config("pconv", "cpu", image_size=100)
    # a config survives the trip through config.json
    assert config_from_dict(json.loads(json.dumps({"kind": "pconv", **vars(c)}))) == c


# ---------------------------------------------------------------------------------------------------
# Data order: a pure function of (seed, step)
# ---------------------------------------------------------------------------------------------------


def test_step_sampler_restarts_anywhere_and_splits_the_global_batch_between_processes():
    full = list(StepBatchSampler(10, 3, seed=5, start_step=0, end_step=12))
    later = list(StepBatchSampler(10, 3, seed=5, start_step=7, end_step=12))
    assert later == full[7:]
    # each epoch visits every photo once: the first 30 positions are 3 permutations of 0..9
    indices = [i for batch in full for i, _ in batch][:30]
    for e in range(3):
        assert sorted(indices[10 * e : 10 * e + 10]) == list(range(10))
    assert indices[:10] != indices[10:20]  # reshuffled between epochs
    # two processes of batch 3 see exactly the keys of one process of batch 6
    one = list(StepBatchSampler(10, 6, seed=5, start_step=0, end_step=4))
    r0 = list(StepBatchSampler(10, 3, seed=5, start_step=0, end_step=4, rank=0, world_size=2))
    r1 = list(StepBatchSampler(10, 3, seed=5, start_step=0, end_step=4, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == one
    assert list(StepBatchSampler(10, 3, seed=6, start_step=0, end_step=4)) != full[:4]


# ---------------------------------------------------------------------------------------------------
# The run directory
# ---------------------------------------------------------------------------------------------------


def test_run_directory_holds_every_file_with_the_documented_columns(reference):
    run_dir, _ = reference
    for name in ("config.json", "history.csv", "metrics.json", "checkpoint.pt", "weights.pt", "RUN.md"):
        assert (run_dir / name).is_file(), name
    with (run_dir / "history.csv").open() as f:
        header = f.readline().strip().split(",")
    assert header == ["step", "epoch", "phase", *PCONV_COLUMNS, *TAIL_COLUMNS]
    h = load_history(run_dir)
    assert h["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert h["phase"].tolist() == ["train"] * 4 + ["finetune"] * 2
    assert h["lr"].tolist() == [2e-4] * 4 + [5e-5] * 2
    assert np.allclose(h["epoch"], np.arange(1, 7) * 2 / 4)  # 4 photos, batch 2
    assert np.all(np.diff(h["seconds"]) > 0) and np.all((h["data_wait"] >= 0) & (h["data_wait"] <= 1))
    assert np.isfinite(h["total"]).all() and (h["skipped"] == 0).all()
    assert [s for s, _ in sample_paths(run_dir)] == [0, 3, 6]
    config = load_config(run_dir)
    assert config["kind"] == "pconv" and config["environment"]["torch_version"] == torch.__version__
    card = (run_dir / "RUN.md").read_text()
    assert "4 train + 2 fine-tune" in card and "| images seen | 12 " in card
    assert "| loss | eq. (12): valid 1, hole 6, perceptual 0.05, style 120, tv 0.1 |" in card
    assert "started from" not in card


def test_history_has_validation_scores_every_val_every_steps(reference):
    rows = read_rows(reference[0] / "history.csv")
    scored = [int(r["step"]) for r in rows if r["val_psnr"]]
    assert scored == [2, 4, 6]
    for r in rows:
        if r["val_psnr"]:
            assert 5 < float(r["val_psnr"]) < 60 and 0 < float(r["val_ssim"]) <= 1 and float(r["val_l1_hole"]) > 0
        else:
            assert r["val_ssim"] == r["val_l1_hole"] == ""


def test_val_every_must_fall_on_logged_rows(photos):
    with pytest.raises(ValueError, match="val_every"):
        tiny_pconv(photos, log_every=2, val_every=3)


def test_metrics_json_matches_an_independent_psnr_of_the_composite(reference, photos):
    """metrics.json follows evaluate's protocol: weights.pt as saved, in fp32, and image i gets the masks
    masks.evaluation_assignment gives it (one per bucket)."""
    run_dir, _ = reference
    metrics = load_metrics(run_dir)
    assert metrics["num_images"] == 2 and len(metrics["buckets"]) == 6
    model = load_model(run_dir)
    images = torch.stack([PhotoFolder(photos / "val", 64, train=False)[i] for i in range(2)])
    assign = evaluation_assignment(64, per_image=6, seed=0)
    label = "0.3-0.4"
    masks = torch.stack([next(m for name, m in assign(i) if name.startswith(label)) for i in range(2)])
    comp = inpaint(model, images, masks).double().numpy()
    gt = images.double().numpy()
    mse = ((comp - gt) ** 2).mean(axis=(1, 2, 3))
    hole = 1 - masks.double().numpy()
    l1 = (np.abs(comp - gt) * hole).sum(axis=(1, 2, 3)) / (3 * hole.sum(axis=(1, 2, 3)))
    assert metrics["buckets"][label]["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), abs=1e-3)
    assert metrics["buckets"][label]["l1_hole"] == pytest.approx(100 * l1.mean(), abs=1e-3)  # x100, as evaluate
    assert 0 < metrics["overall"]["ssim"] <= 1


def test_weights_pt_is_a_small_fp16_file_loaded_with_weights_only(reference):
    run_dir, _ = reference
    blob = torch.load(run_dir / "weights.pt", weights_only=True)
    assert blob["kind"] == "pconv" and blob["model_args"] == {"image_size": 64, "layers": 5, "width": 8}
    floats = [v for v in blob["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    model = load_model(run_dir)
    assert isinstance(model, PConvUNet) and not model.training
    full = load_model(run_dir / "checkpoint.pt")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    m = torch.ones(1, 1, 64, 64)
    m[..., 20:40, 10:50] = 0
    with torch.no_grad():
        assert torch.allclose(model(x, m), full(x, m), atol=2e-2)


def test_finetune_phase_freezes_encoder_batchnorm_and_trains_the_rest(reference):
    run_dir, snapshots = reference
    end_of_train, end = snapshots[4], snapshots[6]
    encoder_bn = [k for k in end if k.startswith("encoders.") and ".bn." in k and "num_batches" not in k]
    decoder_bn = [k for k in end if k.startswith("decoders.") and ".bn." in k and "num_batches" not in k]
    assert encoder_bn and decoder_bn
    for k in encoder_bn:  # affine parameters and running statistics unchanged during fine-tuning
        assert torch.equal(end_of_train[k], end[k]), k
    assert any(not torch.equal(end_of_train[k], end[k]) for k in decoder_bn)
    assert not torch.equal(snapshots[3]["encoders.1.bn.weight"], end_of_train["encoders.1.bn.weight"])
    # the fine-tuning optimizer only holds the parameters that still require gradients
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    model = PConvUNet(64, None, 8)
    n_params = len(list(model.parameters()))
    n_frozen = sum(1 for n, _ in model.named_parameters() if n.startswith("encoders.") and ".bn." in n)
    assert len(ckpt["optimizers"]["generator"]["param_groups"][0]["params"]) == n_params - n_frozen
    assert ckpt["optimizers"]["generator"]["param_groups"][0]["lr"] == 5e-5


# ---------------------------------------------------------------------------------------------------
# Resume
# ---------------------------------------------------------------------------------------------------


class Killed(Exception):
    pass


def test_training_resumes_after_kill_without_losing_steps(reference, photos, tmp_path):
    """Stop at step 5 (checkpoint from step 4, the phase boundary), resume: identical to no stop."""
    ref_dir, _ = reference

    def die_at_5(info):
        if info["step"] == 5:
            raise Killed

    with pytest.raises(Killed):
        train(tiny_pconv(photos), tmp_path / "run", progress=False, callback=die_at_5)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 4
    assert len(read_rows(tmp_path / "run" / "history.csv")) == 5  # row 5 is logged again after resume
    train(None, tmp_path / "run", resume=True, progress=False)
    assert_same_state(state_of(tmp_path / "run"), state_of(ref_dir))
    ours, ref = read_rows(tmp_path / "run" / "history.csv"), read_rows(ref_dir / "history.csv")
    assert [r["step"] for r in ours] == [r["step"] for r in ref]
    compared = [*PCONV_COLUMNS, "epoch", "phase", "lr"]
    for a, b in zip(ours, ref):
        assert [a[c] for c in compared] == [b[c] for c in compared]
    assert load_metrics(tmp_path / "run")["overall"] == load_metrics(ref_dir)["overall"]
    sessions = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["sessions"]
    assert [(s["start_step"], s["end_step"]) for s in sessions] == [(0, 4), (4, 6)]


_KILL_SCRIPT = """
import json, sys, time
from inpaintlib.train import config_from_dict, train
config = config_from_dict(json.loads(sys.argv[1]))
train(config, sys.argv[2], progress=False, callback=lambda info: time.sleep(0.4))
"""


@pytest.mark.slow
def test_training_resumes_after_sigkill_of_the_process(reference, photos, tmp_path):
    ref_dir, _ = reference
    config = tiny_pconv(photos)
    run = tmp_path / "run"
    payload = json.dumps({"kind": "pconv", **vars(config)})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, payload, str(run)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.pt").exists():
            assert proc.poll() is None, "the training process ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "weights.pt").exists()  # it really died mid-run
    assert not list(run.glob(".*.tmp"))
    train(None, run, resume=True, progress=False)
    assert_same_state(state_of(run), state_of(ref_dir))


def test_resume_refuses_changed_settings_and_new_runs_refuse_an_existing_one(reference, photos):
    ref_dir, _ = reference
    with pytest.raises(ValueError, match="betas"):
        train(tiny_pconv(photos, betas=(0.5, 0.9)), ref_dir, resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(tiny_pconv(photos), ref_dir, progress=False)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny_pconv(photos), ref_dir / "nothing-here", resume=True, progress=False)


def copy_run(run_dir: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run_dir, to))


def card_sessions(run_dir: Path) -> list[list[str]]:
    """The rows of RUN.md's sessions table, as lists of cells."""
    lines = (run_dir / "RUN.md").read_text().split("## Sessions", 1)[1].splitlines()
    rows = [line.strip("|").split(" | ") for line in lines if line.startswith("| ") and line[2].isdigit()]
    return [[cell.strip() for cell in row] for row in rows]


def test_resume_may_change_the_learning_rate_and_the_card_records_it(reference, photos, tmp_path):
    run = copy_run(reference[0], tmp_path / "run")
    train(tiny_pconv(photos, finetune_steps=4, finetune_lr=1e-5), run, resume=True, progress=False)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["optimizers"]["generator"]["param_groups"][0]["lr"] == 1e-5
    # Adam's moments came from the checkpoint: its step count goes on from the 2 fine-tune steps
    assert int(next(iter(ckpt["optimizers"]["generator"]["state"].values()))["step"]) == 4
    history = load_history(run)
    assert history["lr"].tolist() == [2e-4] * 4 + [5e-5] * 2 + [1e-5] * 2
    first, second = card_sessions(run)
    assert first[4:] == ["0.0002", "none"]
    assert second[:2] == ["6", "8"] and second[4] == "1e-05"
    assert "finetune_lr 5e-05 -> 1e-05" in second[5] and "finetune_steps 2 -> 4" in second[5]


def test_weights_without_a_run_record_cannot_be_resumed_and_say_so(reference, photos, tmp_path):
    run = copy_run(reference[0], tmp_path / "run")
    (run / "checkpoint.pt").unlink()
    weights = torch.load(run / "weights.pt", weights_only=True)
    del weights["run"]  # a weights.pt from before the run record existed
    torch.save(weights, run / "weights.pt")
    with pytest.raises(ValueError, match="no run record"):
        train(tiny_pconv(photos, finetune_steps=5), run, resume=True, progress=False)


def test_a_finished_run_without_checkpoint_resumes_from_its_weights(reference, photos, tmp_path):
    run = copy_run(reference[0], tmp_path / "run")
    (run / "checkpoint.pt").unlink()  # what a repository keeps: weights.pt only
    weights = torch.load(run / "weights.pt", weights_only=True)
    assert weights["run"]["step"] == 6 and weights["run"]["config"]["finetune_steps"] == 2
    before = load_model(run).state_dict()
    seconds_before = float(load_history(run)["seconds"][-1])
    seen = {}

    def first_step(info):
        seen.setdefault("step", info["step"])
        seen.setdefault("frozen", [m.training for m in info["networks"]["generator"].modules()
                                   if isinstance(m, torch.nn.BatchNorm2d)])

    train(tiny_pconv(photos, finetune_steps=5), run, resume=True, progress=False, callback=first_step)
    assert seen["step"] == 7  # the step counter goes on
    assert not all(seen["frozen"])  # still the fine-tune phase: the encoder's BN stays frozen
    history = load_history(run)
    assert history["step"].tolist() == list(range(1, 10))
    assert float(history["seconds"][-1]) > seconds_before  # the time adds up over sessions
    after = load_model(run).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    sessions = card_sessions(run)
    assert [row[:2] for row in sessions] == [["0", "6"], ["6", "9"]]
    assert "resumed from weights.pt (no checkpoint.pt): Adam state restarted" in sessions[1][5]
    assert torch.load(run / "weights.pt", weights_only=True)["run"]["step"] == 9


def test_cli_resume_keeps_the_settings_the_run_ended_with_not_those_of_config_json(reference, photos, tmp_path):
    from inpaintlib.train import cli, resume_config

    run = copy_run(reference[0], tmp_path / "run")
    train(tiny_pconv(photos, finetune_steps=3, finetune_lr=1e-5), run, resume=True, progress=False)
    assert load_config(run)["finetune_lr"] == 5e-5  # config.json keeps the first session's settings
    assert resume_config(run).finetune_lr == 1e-5 and resume_config(run, finetune_steps=9).finetune_steps == 9
    assert cli(["pconv", "--out", str(run), "--resume", "--finetune-steps", "4", "--quiet"]) == 0
    assert load_history(run)["lr"].tolist()[-2:] == [1e-5, 1e-5]
    last = card_sessions(run)[-1]
    assert last[5] == "finetune_steps 3 -> 4"  # nothing else reported as changed (betas: list vs tuple)


def test_resume_does_not_need_the_run_it_was_started_from(reference, photos, tmp_path):
    donor = copy_run(reference[0], tmp_path / "donor")
    config = tiny_pconv(photos, steps=1, finetune_steps=0, init_from=str(donor))
    run = train(config, tmp_path / "continued", progress=False)
    (run / "checkpoint.pt").unlink()
    donor.rename(tmp_path / "moved-away")
    train(tiny_pconv(photos, steps=2, finetune_steps=0, init_from=str(donor)), run, resume=True, progress=False)
    assert load_history(run)["step"].tolist() == [1, 2]


def test_resume_without_checkpoint_or_weights_names_both_files(photos, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither checkpoint.pt nor weights.pt"):
        train(None, tmp_path / "empty", resume=True, progress=False)


def test_hand_written_notes_on_the_run_card_survive_a_resume(reference, photos, tmp_path):
    from inpaintlib.runcard import NOTES_MARKER

    run = copy_run(reference[0], tmp_path / "run")
    notes = f"{NOTES_MARKER}\n\n## What this run is\n\nA note written by hand.\n"
    (run / "RUN.md").write_text((run / "RUN.md").read_text() + "\n" + notes)
    train(tiny_pconv(photos, finetune_steps=3), run, resume=True, progress=False)
    card = (run / "RUN.md").read_text()
    assert card.endswith(notes) and card.count(NOTES_MARKER) == 1
    assert "| 6 | 7 |" in card  # and the generated part was rewritten


@pytest.mark.parametrize("name", ["lr", "finetune_lr"])
@pytest.mark.parametrize("value", [0.0, -1e-4, float("nan")])
def test_learning_rates_must_be_positive(photos, name, value):
    with pytest.raises(ValueError, match=f"learning rate {name} must be a finite number > 0"):
        tiny_pconv(photos, **{name: value})


# ---------------------------------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------------------------------


def nan_unet(bad_calls):
    """A PConvUNet whose training-mode forward returns NaN on the given (1-based) calls."""

    class FlakyUNet(PConvUNet):
        calls = 0

        def forward(self, image, mask):
            out = super().forward(image, mask)
            if self.training:
                FlakyUNet.calls += 1
                if bad_calls(FlakyUNet.calls):
                    return out * float("nan")
            return out

    return FlakyUNet


def test_non_finite_loss_skips_the_update_and_keeps_the_state(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(inpaintlib.train.recipes, "PConvUNet", nan_unet(lambda call: call in (2, 3)))
    states = {}

    def record(info):
        net = info["networks"]["generator"]
        states[info["step"]] = ({k: v.clone() for k, v in net.state_dict().items()}, info["skipped"])

    config = tiny_pconv(photos, steps=4, finetune_steps=0)
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        run = train(config, tmp_path / "run", progress=False, callback=record)
    assert [states[s][1] for s in (1, 2, 3, 4)] == [False, True, True, False]
    assert_same_state(states[2][0], states[1][0])  # weights and BN statistics untouched
    assert_same_state(states[3][0], states[1][0])
    assert all(torch.isfinite(v).all() for v in states[4][0].values() if v.is_floating_point())
    h = load_history(run)
    assert h["skipped"].tolist() == [0, 1, 1, 0]
    assert math.isnan(h["total"][1]) and np.isfinite(h["total"][[0, 3]]).all()


def test_many_non_finite_losses_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(
    photos, tmp_path, monkeypatch
):
    monkeypatch.setattr(inpaintlib.train.recipes, "PConvUNet", nan_unet(lambda call: call >= 3))
    config = tiny_pconv(photos, steps=8, finetune_steps=0, checkpoint_every=1, max_bad_steps=3)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="3 non-finite losses in a row"):
        train(config, tmp_path / "run", progress=False)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2
    assert not (tmp_path / "run" / "weights.pt").exists()


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    rundir.save_torch({"step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        rundir.save_torch({"step": 2, "w": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary file left


# ---------------------------------------------------------------------------------------------------
# Context Encoder recipe
# ---------------------------------------------------------------------------------------------------


def test_context_encoder_run_logs_both_networks_and_fills_only_the_centre(photos, tmp_path):
    run = train(tiny_ce(photos), tmp_path / "ce", progress=False)
    h = load_history(run)
    assert list(h) == ["step", "epoch", "phase", *CE_COLUMNS, *TAIL_COLUMNS]
    assert ((h["d_acc"] >= 0) & (h["d_acc"] <= 1)).all()
    assert np.allclose(h["total"], 0.999 * h["rec"] + 0.001 * h["adv"], rtol=1e-4)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert set(ckpt["models"]) == set(ckpt["optimizers"]) == {"generator", "discriminator"}
    assert [g["lr"] for g in ckpt["optimizers"]["discriminator"]["param_groups"]] == [1e-4]
    assert ckpt["optimizers"]["generator"]["param_groups"][0]["betas"] == (0.5, 0.999)
    metrics = load_metrics(run)
    assert list(metrics["buckets"]) == ["center"] and metrics["num_images"] == 2
    model = load_model(run)
    assert isinstance(model, ContextEncoder)
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(1, 128, 128)
    mask[:, 36:92, 36:92] = 0
    out = inpaint(model, image, mask)
    assert torch.equal(out * mask, image * mask) and not torch.equal(out, image)


# ---------------------------------------------------------------------------------------------------
# Several processes
# ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_trains_one_model(photos, tmp_path):
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "inpaintlib", "train", "pconv", "--out", str(run), "--data", str(photos / "train"),
        "--val-data", str(photos / "val"), "--size", "64", "--batch-size", "1", "--width", "8",
        "--steps", "2", "--finetune-steps", "1", "--device", "cpu", "--amp", "off", "--workers", "0",
        "--vgg-weights", "hed", "--log-every", "1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_config(run)["environment"]["world_size"] == 2
    h = load_history(run)
    assert h["step"].tolist() == [1, 2, 3] and h["phase"].tolist() == ["train", "train", "finetune"]
    assert np.isfinite(h["total"]).all()
    assert "| images seen | 6 (batch 1 x 2 process(es))" in (run / "RUN.md").read_text()
    assert isinstance(load_model(run), PConvUNet)


def test_init_from_starts_a_new_run_from_a_stored_runs_weights(photos, reference, tmp_path):
    run_dir, _ = reference
    donor = load_model(run_dir)
    seen = {}

    def first_step(info):
        if info["step"] == 1:
            net = info["networks"]["generator"]
            seen.update({k: v.detach().clone() for k, v in net.state_dict().items()})

    # a learning rate of ~0 leaves the first step's weights where init_from put them
    config = tiny_pconv(photos, steps=1, finetune_steps=0, lr=1e-12, init_from=str(run_dir))
    train(config, tmp_path / "continued", progress=False, callback=first_step)
    for name, value in donor.state_dict().items():
        if value.is_floating_point() and "running" not in name:
            torch.testing.assert_close(seen[name], value, atol=1e-6, rtol=0)
    assert load_config(tmp_path / "continued")["init_from"] == str(run_dir)
    assert f"| started from | the weights of `{run_dir}`" in (tmp_path / "continued" / "RUN.md").read_text()


def test_init_from_refuses_weights_of_another_shape(photos, reference, tmp_path):
    run_dir, _ = reference
    with pytest.raises(ValueError, match="do not fit this model"):
        train(tiny_pconv(photos, width=16, init_from=str(run_dir)), tmp_path / "wider", progress=False)
    with pytest.raises(ValueError, match="not a ContextEncoder"):
        train(tiny_ce(photos, init_from=str(run_dir)), tmp_path / "ce", progress=False)


def test_train_or_resume_twice_continues_the_run_instead_of_failing(photos, tmp_path):
    from inpaintlib.train import train_or_resume

    run = train_or_resume(tiny_pconv(photos, steps=2, finetune_steps=0), tmp_path / "run", progress=False)
    again = train_or_resume(tiny_pconv(photos, steps=3, finetune_steps=0), run, progress=False)
    assert again == run and [int(r["step"]) for r in read_rows(run / "history.csv")] == [1, 2, 3]


def test_init_from_gives_a_run_without_a_head_a_full_resolution_head(photos, reference, tmp_path):
    run_dir, _ = reference
    donor = load_model(run_dir)
    image, mask = torch.rand(2, 3, 64, 64), torch.ones(2, 1, 64, 64)
    mask[..., 20:40, 10:30] = 0
    seen = {}

    def first_step(info):
        if info["step"] == 1:
            net = copy.deepcopy(info["networks"]["generator"]).float().eval()
            net.load_state_dict(donor.state_dict(), strict=False)  # the BN statistics one step moved
            with torch.no_grad():
                seen["out"] = net(image, mask)

    config = tiny_pconv(photos, steps=1, finetune_steps=0, lr=1e-12, init_from=str(run_dir), head_width=4)
    train(config, tmp_path / "headed", progress=False, callback=first_step)
    with torch.no_grad():  # the head starts at zero and a learning rate of ~0 keeps it there
        torch.testing.assert_close(seen["out"], donor(image, mask), atol=1e-5, rtol=0)
    assert load_model(tmp_path / "headed").head_width == 4


def test_discriminator_steps_are_skipped_while_its_accuracy_is_above_d_max_accuracy(photos, tmp_path):
    def discriminator(steps: int, **overrides) -> dict[str, torch.Tensor]:
        run = tmp_path / f"ce-{steps}-{overrides}"
        train(tiny_ce(photos, steps=steps, **overrides), run, progress=False)
        return torch.load(run / "checkpoint.pt", weights_only=True)["models"]["discriminator"]

    # d_max_accuracy=0: every batch is told apart better than that, so the discriminator never moves
    frozen_1, frozen_3 = discriminator(1, d_max_accuracy=0.0), discriminator(3, d_max_accuracy=0.0)
    moving_1, moving_3 = discriminator(1), discriminator(3)
    weights = [k for k, v in frozen_1.items() if v.is_floating_point() and "running" not in k]
    assert all(torch.equal(frozen_1[k], frozen_3[k]) for k in weights)
    assert any(not torch.equal(moving_1[k], moving_3[k]) for k in weights)
    with pytest.raises(ValueError, match="d_max_accuracy must be in"):
        train(tiny_ce(photos, d_max_accuracy=1.5), tmp_path / "bad", progress=False)


def head_recipe(head_lr_scale: float) -> inpaintlib.train.recipes.PConvRecipe:
    """A tiny PConv recipe with a full-resolution head, on the CPU, in one process."""
    from inpaintlib.device import Distributed

    config = PConvConfig(image_size=64, width=8, head_width=4, head_lr_scale=head_lr_scale, steps=1,
                         finetune_steps=1, vgg_weights="hed", lr=2e-4, finetune_lr=1e-5)
    return inpaintlib.train.recipes.PConvRecipe(config, torch.device("cpu"), None, Distributed())


def test_the_head_learns_at_head_lr_scale_times_the_learning_rate_in_both_phases_and_after_resume():
    recipe = head_recipe(10.0)
    head = {id(p) for p in recipe.networks["generator"].head.parameters()}

    def rates() -> dict[str, float]:
        groups = recipe.optimizers["generator"].param_groups
        return {"head" if all(id(p) in head for p in g["params"]) else "unet": g["lr"] for g in groups}

    assert rates() == {"unet": 2e-4, "head": pytest.approx(2e-3)}
    recipe.enter_phase("finetune")  # a new optimizer without the frozen BN parameters
    assert rates() == {"unet": 1e-5, "head": pytest.approx(1e-4)}
    recipe.load_state_dict(recipe.state_dict())  # resume puts the configured rates back, scaled
    assert rates() == {"unet": 1e-5, "head": pytest.approx(1e-4)}
    with pytest.raises(ValueError, match="head_lr_scale must be a positive number"):
        make_config("pconv", "cpu", head_lr_scale=0.0)


def test_a_resume_takes_head_lr_scale_from_the_config_not_from_the_checkpoint():
    saved = head_recipe(10.0).state_dict()
    resumed = head_recipe(50.0)
    resumed.load_state_dict(saved)
    assert [g["lr"] for g in resumed.optimizers["generator"].param_groups] == [2e-4, pytest.approx(1e-2)]


def test_head_only_trains_a_fill_head_on_a_donors_u_net_that_had_another_head(photos, tmp_path):
    train(tiny_pconv(photos, steps=1, finetune_steps=0, head_width=4), tmp_path / "donor", progress=False)
    donor = load_model(tmp_path / "donor")
    config = tiny_pconv(photos, steps=2, finetune_steps=1, lr=1e-2, init_from=str(tmp_path / "donor"), head_width=4,
                        head_fill_iterations=2, head_only=True)
    train(config, tmp_path / "fill", progress=False)
    model, kept = load_model(tmp_path / "fill"), donor.state_dict()
    assert model.head.fill_iterations == 2
    unet = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    assert unet and all(torch.equal(v, kept[k]) for k, v in unet.items())  # weights and BN statistics as loaded
    assert model.head.layers[-1].weight.abs().sum() > 0  # the new head (its last layer started at zero) learned
    with pytest.raises(ValueError, match="need a head"):
        make_config("pconv", "cpu", head_fill_iterations=2)


def test_head_only_trains_a_context_encoders_fill_head_and_its_discriminator(photos, tmp_path):
    train(tiny_ce(photos, steps=1), tmp_path / "donor", progress=False)
    config = tiny_ce(photos, steps=2, lr_g=1e-2, init_from=str(tmp_path / "donor"), head_width=4,
                     head_fill_iterations=2, head_only=True)
    train(config, tmp_path / "fill", progress=False)
    donor, model = load_model(tmp_path / "donor"), load_model(tmp_path / "fill")
    kept = donor.state_dict()
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    assert body and all(torch.equal(v, kept[k]) for k, v in body.items())
    assert model.head.fill_iterations == 2 and model.head.layers[-1].weight.abs().sum() > 0
    with pytest.raises(ValueError, match="fills the report's 56 px hole"):
        make_config("ce", "cpu", head_width=4, hole_size=48, overlap=8)


def test_a_resume_that_only_finishes_logs_the_steps_an_interrupted_session_left_unlogged(photos, tmp_path):
    from inpaintlib.train.interrupts import TrainingInterrupted

    def interrupt(info):
        if info["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the loop stops after this step

    config = tiny_pconv(photos, steps=8, finetune_steps=0, log_every=2)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "run", progress=False, callback=interrupt)
    assert [int(r["step"]) for r in read_rows(tmp_path / "run" / "history.csv")] == [2]
    train(tiny_pconv(photos, steps=3, finetune_steps=0, log_every=2), tmp_path / "run", resume=True, progress=False)
    rows = read_rows(tmp_path / "run" / "history.csv")
    assert [int(r["step"]) for r in rows] == [2, 3] and math.isfinite(float(rows[-1]["total"]))
    assert load_metrics(tmp_path / "run")["step"] == 3


def test_crop_scale_reaches_the_training_crops_and_is_checked(photos, tmp_path):
    from inpaintlib.train.command import _parser

    args = _parser().parse_args(["pconv", "--out", "x", "--crop-scale", "0.7,2.5"])
    assert args.crop_scale == (0.7, 2.5)
    with pytest.raises(SystemExit):
        _parser().parse_args(["pconv", "--out", "x", "--crop-scale", "2"])
    with pytest.raises(ValueError, match="crop_scale must be"):
        make_config("pconv", "cpu", crop_scale=(2.0, 1.0))
    run = train(tiny_pconv(photos, steps=1, finetune_steps=0, crop_scale=(2.0, 2.0)), tmp_path / "run", progress=False)
    plain = train(tiny_pconv(photos, steps=1, finetune_steps=0), tmp_path / "plain", progress=False)
    assert tuple(load_config(run)["crop_scale"]) == (2.0, 2.0)
    assert "random factor in [2, 2]" in (run / "RUN.md").read_text()
    # same seed, same masks: only the (enlarged) crops differ, and with them the loss of the step
    assert read_rows(run / "history.csv")[0]["total"] != read_rows(plain / "history.csv")[0]["total"]
