"""The training loop (report §4): :func:`train` checks the config (and the checkpoint when resuming),
``_run`` trains one recipe and writes the run directory described in :mod:`inpaintlib.rundir`.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from inpaintlib.rundir import WEIGHTS_FORMAT

from .checkpoint import (
    CHECKPOINT_FORMAT,
    _fmt,
    _history_header,
    _portable,
    _rng_state,
    _save_torch,
    _set_rng_state,
    _truncate_history,
    _write_text,
)
from .config import TrainConfig, _check_resume_config, _validate_config, config_from_dict
from inpaintlib.device import _Dist, _setup_distributed, resolve_amp, resolve_device
from .recipes import _RECIPES
from .report import _environment, _evaluate, _python_call, _sample_masks, _save_grid, _write_run_card
from .sampling import (
    _SALT_RANK,
    StepBatchSampler,
    _default_workers,
    _derive_seed,
    _photo_folder,
    _stack_images,
    _TrainingSamples,
)


def _new_log() -> dict[str, Any]:
    return {"sums": {}, "count": 0, "skipped": 0, "images": 0, "step_s": 0.0, "wait_s": 0.0}


def train(
    config: TrainConfig | None,
    out_dir: str | Path,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    callback: Callable[[dict[str, Any]], None] | None = None,
    command: str | None = None,
) -> Path:
    """Train the model ``config`` describes and write the run directory ``out_dir``; returns its path.

    Args:
        config: a :class:`CEConfig` or :class:`PConvConfig` (see :func:`make_config`); with
            ``resume=True`` it may be None to continue with the settings stored in the checkpoint.
        out_dir: the run directory (created; must not already hold a run unless resuming).
        resume: continue from ``out_dir/checkpoint.pt``; the result equals an uninterrupted run.
        device: overrides ``config.device`` ("auto", "cpu", "cuda", "mps", a torch.device).
        progress: a tqdm bar (notebook-aware); False prints nothing.
        callback: called after every step with ``{"step", "phase", "losses", "skipped", "networks",
            "run_dir"}`` (for notebooks and tests; raising from it stops the run like a kill).
        command: how the run was started, for RUN.md (the CLI passes its command line).

    Under ``torchrun`` every process calls this; they train one DistributedDataParallel model and
    only rank 0 writes files.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    checkpoint = None
    if resume:
        checkpoint = _resume_state(out_dir)
        stored = config_from_dict({**checkpoint["config"], "kind": checkpoint["kind"]})
        if config is None:
            config = stored
        else:
            _check_resume_config(stored, config)
            if stored.steps != config.steps and checkpoint["step"] > min(stored.steps, config.steps):
                raise ValueError("steps (the first phase's length) cannot change once the run is past it")
    elif config is None:
        raise ValueError("config is required unless resume=True")
    elif ckpt_path.exists() or (out_dir / "weights.pt").exists():
        raise ValueError(f"{out_dir} already holds a run; pass resume=True to continue it or choose a new folder")
    if not isinstance(config, TrainConfig) or not config.kind:
        raise ValueError(f"config must be a CEConfig or PConvConfig, got {type(config).__name__}")
    _validate_config(config)

    dd = _setup_distributed(device if device is not None else config.device)
    try:
        return _run(config, out_dir, checkpoint, device, progress, callback, command, dd)
    finally:
        if dd.owns_group:
            dist.destroy_process_group()


def _resume_state(out_dir: Path) -> dict[str, Any]:
    """What a resume starts from: ``checkpoint.pt``, else the stand-in built from ``weights.pt``."""
    if (out_dir / "checkpoint.pt").is_file():
        return torch.load(out_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    if (out_dir / "weights.pt").is_file():
        return _checkpoint_from_weights(out_dir)
    raise FileNotFoundError(
        f"cannot resume: {out_dir} holds neither checkpoint.pt nor weights.pt (start a new run without resume)"
    )


def resume_config(out_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The settings a run ended with (from its checkpoint, else its weights), with ``overrides`` applied:
    what ``train(..., resume=True)`` continues with. Not ``config.json``, which keeps the first session's
    settings while resumes may change step counts and learning rates."""
    state = _resume_state(Path(out_dir))
    return config_from_dict({**state["config"], **overrides, "kind": state["kind"]})


def _checkpoint_from_weights(out_dir: Path) -> dict[str, Any]:
    """A stand-in checkpoint for continuing a finished run whose ``checkpoint.pt`` was not kept (a run
    committed to a repository keeps only ``weights.pt``; see :mod:`inpaintlib.rundir`): the generator from
    the fp16 weights; the step, time, sessions and settings from the ``run`` record that training stores
    in ``weights.pt`` (for older files: ``config.json`` and ``history.csv``). Adam's moments, a Context
    Encoder's discriminator and the random streams start afresh, so unlike a real checkpoint this does
    not reproduce an uninterrupted run; the run card's sessions table says so.
    """
    from inpaintlib.rundir import load_config

    weights = torch.load(out_dir / "weights.pt", map_location="cpu", weights_only=True)
    if not isinstance(weights, dict) or weights.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{out_dir / 'weights.pt'} is not an inpaintlib weights.pt file")
    record = weights.get("run")
    if record is None:  # weights.pt written before the run record existed
        config = load_config(out_dir)
        with (out_dir / "history.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError(f"cannot resume {out_dir} from weights.pt: history.csv has no rows")
        last = rows[-1]
        step, seconds = int(last["step"]), float(last["seconds"])
        # resumes may have run longer and at another learning rate than config.json says
        if config["kind"] == "pconv":
            config["finetune_steps"] = max(config["finetune_steps"], step - config["steps"])
            config["finetune_lr" if last["phase"] == "finetune" else "lr"] = float(last["lr"])
        else:
            config["steps"] = max(config["steps"], step)
            config["lr_g"] = float(last["lr"])
        hardware = config.get("environment", {}).get("device_name", "unknown")
        record = {
            "step": step,
            "seconds": seconds,
            "sessions": [{"start_step": 0, "end_step": step, "seconds": seconds, "device_name": hardware}],
            "command": None,
            "config": config,
        }
    state = {k: v.float() if v.is_floating_point() else v for k, v in weights["state_dict"].items()}
    return {
        "kind": weights["kind"],
        "config": {k: v for k, v in record["config"].items() if k not in ("kind", "environment")},
        "step": int(record["step"]),
        "seconds": float(record["seconds"]),
        "sessions": record["sessions"],
        "command": record["command"],
        "models": {"generator": state},
        "log": _new_log(),
        "bad_steps": 0,
        "from_weights": True,
    }


def _run(config, out_dir, checkpoint, device_arg, progress, callback, command, dd: _Dist) -> Path:
    dev = resolve_device(device_arg if device_arg is not None else config.device)
    if dev.type == "cuda":
        if dd.enabled:
            dev = torch.device("cuda", dd.local_rank)
        if dev.index is not None:
            torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    amp_dtype = resolve_amp(config.amp, dev)
    env = _environment(dev, amp_dtype, dd)
    total = config.total_steps

    # Models are initialised from the seed; on resume the checkpoint overwrites them.
    torch.manual_seed(_derive_seed(config.seed, _SALT_RANK, 0))
    # A resumed run takes its weights from the checkpoint: its init_from donor is not read (nor needed).
    recipe = _RECIPES[config.kind](replace(config, init_from=None) if checkpoint else config, dev, amp_dtype, dd)
    torch.manual_seed(_derive_seed(config.seed, _SALT_RANK, dd.rank + 1))  # per-process stream for the rest
    history_path = out_dir / "history.csv"
    header = _history_header(recipe)

    train_photos = _photo_folder(config.data, "train", config.image_size, train=True)
    val_photos = _photo_folder(config.val_data, "val", config.image_size, train=False)
    sample_images = _stack_images(val_photos, config.sample_images)
    sample_masks = _sample_masks(config, len(sample_images))

    if checkpoint is not None:
        start = int(checkpoint["step"])
        recipe.enter_phase(recipe.phase(start - 1) if start > 0 else recipe.phase(0))
        if checkpoint.get("from_weights"):
            recipe.networks["generator"].load_state_dict(checkpoint["models"]["generator"])
            torch.manual_seed(_derive_seed(config.seed, _SALT_RANK, dd.rank + 1, start))
        else:
            recipe.load_state_dict(checkpoint)
            _set_rng_state(checkpoint["rng"], dev)
        seconds_before = float(checkpoint["seconds"])
        log = checkpoint["log"]
        bad_in_row = int(checkpoint["bad_steps"])
        sessions = list(checkpoint["sessions"])
        command = checkpoint["command"] if command is None else command
        if dd.main:
            _truncate_history(history_path, header, start)
            for stale in out_dir.glob(".*.tmp"):  # left by a writer that was killed mid-write
                stale.unlink(missing_ok=True)
    else:
        start, seconds_before, log, bad_in_row, sessions = 0, 0.0, _new_log(), 0, []
        if dd.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "samples").mkdir(exist_ok=True)
            config_json = {"kind": config.kind, **asdict(config), "environment": env}
            _write_text(out_dir / "config.json", json.dumps(config_json, indent=2) + "\n")
            _truncate_history(history_path, header, -1)
    if command is None:
        command = _python_call(config, out_dir)
    changed = {}
    if checkpoint is not None:  # what this session changed, for the run card (see _RESUMABLE_CHANGES)
        before = asdict(config_from_dict({**checkpoint["config"], "kind": checkpoint["kind"]}))  # lists -> tuples
        now = asdict(config)
        changed = {k: [before[k], now[k]] for k in now if k in before and before[k] != now[k]}
    sessions.append({
        "start_step": start, "end_step": start, "seconds": 0.0, "device_name": env["device_name"],
        "lr": recipe.lr()["lr"], "changed": changed,
    })
    if checkpoint is not None and checkpoint.get("from_weights"):
        sessions[-1]["note"] = (
            "resumed from weights.pt (no checkpoint.pt): Adam state"
            + (" and the discriminator" if config.kind == "ce" else "")
            + " restarted"
        )

    def sample(step: int) -> None:
        recipe.set_train(False)
        try:
            x, m = sample_images.to(dev), sample_masks.to(dev)
            comp = recipe.inpaint(x, m).float().cpu()
        finally:
            recipe.set_train(True)
        _save_grid(sample_images, sample_masks, comp, out_dir / "samples" / f"step_{step:06d}.png")

    t_session = time.perf_counter()

    def seconds() -> float:
        return seconds_before + time.perf_counter() - t_session

    def save_checkpoint(step: int) -> None:
        sessions[-1].update(end_step=step, seconds=time.perf_counter() - t_session)
        state = {
            "format": CHECKPOINT_FORMAT,
            "kind": config.kind,
            "config": asdict(config),
            "model_args": recipe.model_args(),
            "step": step,
            "phase": recipe.phase(max(0, step - 1)),
            **recipe.state_dict(),
            "rng": _rng_state(dev),
            "seconds": seconds(),
            "log": log,
            "bad_steps": bad_in_row,
            "sessions": sessions,
            "command": command,
        }
        _save_torch(state, out_dir / "checkpoint.pt")

    if dd.main and start == 0:
        sample(0)

    num_workers = config.num_workers if config.num_workers is not None else _default_workers(dev)
    sampler = StepBatchSampler(
        len(train_photos), config.batch_size, config.seed, start, total, rank=dd.rank, world_size=dd.world_size
    )
    loader = DataLoader(
        _TrainingSamples(train_photos, config),
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    global_batch = config.batch_size * dd.world_size

    from tqdm.auto import tqdm

    quiet = not (progress and dd.main)
    bar = tqdm(total=total, initial=start, disable=quiet, unit="step", desc=config.kind, dynamic_ncols=True)
    last_ckpt = time.monotonic()
    recipe.set_train(True)
    step = start
    batches = iter(loader)
    try:
        while step < total:
            phase = recipe.phase(step)
            recipe.enter_phase(phase)
            t0 = time.perf_counter()
            images, masks = next(batches)
            t1 = time.perf_counter()
            images = images.to(dev, non_blocking=True).contiguous(memory_format=recipe.memory_format)
            masks = masks.to(dev, non_blocking=True).contiguous(memory_format=recipe.memory_format)
            backup = [b.clone() for b in recipe._buffers()]
            losses, ok = recipe.train_step(images, masks)
            values = torch.stack([v.float() for v in losses.values()]).cpu().tolist()  # one device sync
            step += 1
            log["step_s"] += time.perf_counter() - t0
            log["wait_s"] += t1 - t0
            log["images"] += global_batch
            if ok:
                bad_in_row = 0
                log["count"] += 1
                for k, v in zip(losses, values):
                    log["sums"][k] = log["sums"].get(k, 0.0) + v
            else:
                # The non-finite step changed nothing: no optimizer update, BN statistics put back.
                with torch.no_grad():
                    for b, saved in zip(recipe._buffers(), backup):
                        b.copy_(saved)
                bad_in_row += 1
                log["skipped"] += 1
                message = f"step {step}: non-finite loss ({dict(zip(losses, values))}); update skipped"
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                if bad_in_row >= config.max_bad_steps:
                    raise RuntimeError(
                        f"{bad_in_row} non-finite losses in a row (last at step {step}); stopping. The last good "
                        f"checkpoint is kept in {out_dir / 'checkpoint.pt'}. Lower the learning rate, try amp='off', "
                        "or check the data for corrupt photos."
                    )
            if dd.main:
                if step % config.log_every == 0 or step == total:
                    row = {
                        "step": step,
                        "epoch": round(step * global_batch / len(train_photos), 4),
                        "phase": phase,
                        **{k: log["sums"][k] / log["count"] if log["count"] else float("nan") for k in recipe.columns},
                        **recipe.lr(),
                        "img_per_s": log["images"] / max(log["step_s"], 1e-9),
                        "data_wait": log["wait_s"] / max(log["step_s"], 1e-9),
                        "skipped": log["skipped"],
                        "seconds": seconds(),
                    }
                    with history_path.open("a", newline="") as f:
                        csv.DictWriter(f, fieldnames=header, lineterminator="\n").writerow(
                            {k: _fmt(row.get(k, "")) for k in header}
                        )
                    log = _new_log()
                    bar.set_postfix(loss=f"{row['total']:.4g}", phase=phase, refresh=False)
                if step % config.sample_every == 0 or step == total:
                    sample(step)
                by_steps = config.checkpoint_every and step % config.checkpoint_every == 0
                by_time = time.monotonic() - last_ckpt >= 60 * config.checkpoint_every_minutes
                if (by_steps or by_time) and step < total and ok:
                    save_checkpoint(step)
                    last_ckpt = time.monotonic()
            bar.update(1)
            if callback is not None:
                callback(
                    {
                        "step": step,
                        "phase": phase,
                        "losses": dict(zip(losses, values)),
                        "skipped": not ok,
                        "networks": recipe.networks,
                        "run_dir": out_dir,
                    }
                )
    finally:
        bar.close()
        del batches
    if dd.enabled:
        dist.barrier()
    if not dd.main:
        return out_dir

    # End of the run: checkpoint (so it can be extended), weights, metrics, run card.
    save_checkpoint(step)
    weights = {
        "format": WEIGHTS_FORMAT,
        "kind": config.kind,
        "model_args": recipe.model_args(),
        "state_dict": {
            k: v.half() if v.is_floating_point() else v for k, v in recipe.networks["generator"].state_dict().items()
        },
        # What `train(..., resume=True)` needs to go on from these weights where checkpoint.pt is not kept.
        "run": {
            "step": step,
            "seconds": seconds(),
            "sessions": sessions,
            "command": _portable(command),
            "config": {"kind": config.kind, **asdict(config)},
        },
    }
    _save_torch(weights, out_dir / "weights.pt")
    val_images = _stack_images(val_photos, config.eval_images)
    metrics = _evaluate(recipe, config, val_images, step)
    _write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    sessions[-1].update(end_step=step, seconds=time.perf_counter() - t_session)
    state = {"step": step, "seconds": seconds(), "sessions": sessions, "command": _portable(command)}
    _write_run_card(out_dir, config, env, state, metrics, len(train_photos), len(val_photos))
    return out_dir
