"""The training loop (report §4). :func:`train` reads one training session as named steps:

1. :func:`~inpaintlib.train.resume.settings_for` -- the config, checked against the checkpoint when resuming;
2. :func:`_set_up` -- device, recipe, data, and :func:`_restore` or :func:`_start` of the run directory;
3. :func:`_train_steps` -- :func:`_one_step` per batch, :func:`_log_row` into ``history.csv``, samples, checkpoints;
4. :func:`_finish` -- checkpoint, ``weights.pt``, ``metrics.json`` and ``RUN.md``.

The files are those of :mod:`inpaintlib.rundir`. Nothing of the caller's process is changed: the random
states are put back afterwards, and torch's global speed switches only change when asked for.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from inpaintlib.device import Distributed, fast_global_flags, process_device, resolve_amp, setup_distributed
from inpaintlib.inference import inpaint
from inpaintlib.runcard import write_run_card
from inpaintlib.rundir import (
    CHECKPOINT_FORMAT,
    append_history,
    history_header,
    load_model,
    portable,
    removed_if_unstarted,
    rng_kept,
    rng_state,
    save_torch,
    save_weights,
    set_rng_state,
    truncate_history,
    write_text,
    writer_lock,
)

from .config import TrainConfig, check_batch_memory, config_from_dict, device_memory_bytes
from .interrupts import TrainingInterrupted, stop_requests
from .recipes import RECIPES, Recipe
from .report import environment, python_call, sample_masks, save_sample_grid, validation_metrics, validation_scores
from .resume import new_log, settings_for
from .sampling import SALT_RANK, StepBatchSampler, TrainingSamples, default_workers, derive_seed
from .sampling import photo_folder, stack_images

Callback = Callable[[dict[str, Any]], None]


@dataclass
class _Session:
    """One training session of a run: what the steps below share."""

    config: TrainConfig
    out_dir: Path
    device: torch.device
    dist: Distributed
    recipe: Recipe
    env: dict[str, Any]
    train_photos: Any
    val_photos: Any
    sample_images: Tensor
    sample_masks: Tensor
    val_images: Tensor | None
    header: list[str]
    start: int = 0
    seconds_before: float = 0.0
    log: dict[str, Any] = field(default_factory=new_log)
    bad_in_row: int = 0
    sessions: list[dict[str, Any]] = field(default_factory=list)
    command: str | None = None
    t_start: float = field(default_factory=time.perf_counter)

    @property
    def history(self) -> Path:
        return self.out_dir / "history.csv"

    def seconds(self) -> float:
        """Wall time of the whole run so far, earlier sessions included."""
        return self.seconds_before + time.perf_counter() - self.t_start


def train(
    config: TrainConfig | None,
    out_dir: str | Path,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    callback: Callback | None = None,
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
    dist = setup_distributed(device if device is not None else getattr(config, "device", "auto"))
    try:
        with writer_lock(out_dir) if dist.main else contextlib.nullcontext():
            return _train_locked(config, out_dir, resume, device, progress, callback, command, dist)
    finally:
        if dist.owns_group:
            torch_dist.destroy_process_group()


def _train_locked(config, out_dir, resume, device, progress, callback, command, dist: Distributed) -> Path:
    """:func:`train` once this process is the run directory's only writer."""
    config, checkpoint = settings_for(config, out_dir, resume)
    dev = process_device(device if device is not None else config.device, dist)
    check_batch_memory(config, device_memory_bytes(dev))
    with fast_global_flags(config.global_flags), rng_kept(dev), removed_if_unstarted(out_dir, not checkpoint and dist.main):
        session = _set_up(config, out_dir, checkpoint, dev, dist, command)
        with stop_requests(not dist.enabled) as stop:
            step = _train_steps(session, progress, callback, stop)
        if "signal" in stop:
            raise TrainingInterrupted(stop["signal"], step, out_dir / "checkpoint.pt")
        if dist.enabled:
            torch_dist.barrier()
        if dist.main:
            _finish(session, step)
    return out_dir


def _set_up(
    config: TrainConfig, out_dir: Path, checkpoint: dict | None, dev: torch.device, dist: Distributed,
    command: str | None,
) -> _Session:
    """Device, recipe, photos and sample grid inputs; then the run directory restored or started."""
    amp_dtype = resolve_amp(config.amp, dev)
    # Models are initialised from the seed; on resume the checkpoint overwrites them, and the run's
    # init_from donor is not read (nor needed).
    torch.manual_seed(derive_seed(config.seed, SALT_RANK, 0))
    recipe = RECIPES[config.kind](replace(config, init_from=None) if checkpoint else config, dev, amp_dtype, dist)
    torch.manual_seed(derive_seed(config.seed, SALT_RANK, dist.rank + 1))  # per-process stream for the rest
    val_photos = photo_folder(config.val_data, "val", config.image_size, train=False)
    sample_images = stack_images(val_photos, config.sample_images)
    session = _Session(
        config=config, out_dir=out_dir, device=dev, dist=dist, recipe=recipe,
        env=environment(dev, amp_dtype, dist),
        train_photos=photo_folder(config.data, "train", config.image_size, train=True, scale=config.crop_scale),
        val_photos=val_photos, sample_images=sample_images, sample_masks=sample_masks(config, len(sample_images)),
        val_images=stack_images(val_photos, config.val_images) if config.val_every else None,
        header=history_header(recipe.columns),
    )
    if checkpoint is not None:
        _restore(session, checkpoint)
    else:
        _start(session)
    session.command = command or session.command or python_call(config, out_dir)
    return session


def _restore(s: _Session, checkpoint: dict[str, Any]) -> None:
    """Continue from a checkpoint (or the stand-in from ``weights.pt``): weights, optimizers, RNG, log."""
    s.start = start = int(checkpoint["step"])
    s.recipe.enter_phase(s.recipe.phase(start - 1) if start > 0 else s.recipe.phase(0))
    if checkpoint.get("from_weights"):
        s.recipe.networks["generator"].load_state_dict(checkpoint["models"]["generator"])
        torch.manual_seed(derive_seed(s.config.seed, SALT_RANK, s.dist.rank + 1, start))
    else:
        s.recipe.load_state_dict(checkpoint)
        set_rng_state(checkpoint["rng"], s.device)
    s.seconds_before = float(checkpoint["seconds"])
    s.log = checkpoint["log"]
    s.bad_in_row = int(checkpoint["bad_steps"])
    s.sessions = list(checkpoint["sessions"])
    s.command = checkpoint["command"]
    if s.dist.main:
        truncate_history(s.history, s.header, start)
        for stale in s.out_dir.glob(".*.tmp"):  # left by a writer that was killed mid-write
            stale.unlink(missing_ok=True)
    before = asdict(config_from_dict({**checkpoint["config"], "kind": checkpoint["kind"]}))  # lists -> tuples
    now = asdict(s.config)
    changed = {k: [before[k], now[k]] for k in now if k in before and before[k] != now[k]}
    _open_session(s, changed)
    if checkpoint.get("from_weights"):
        s.sessions[-1]["note"] = (
            "resumed from weights.pt (no checkpoint.pt): Adam state"
            + (" and the discriminator" if s.config.kind == "ce" else "")
            + " restarted"
        )


def _start(s: _Session) -> None:
    """A new run: the folder, ``config.json``, an empty ``history.csv`` and the step-0 sample grid."""
    if s.dist.main:
        (s.out_dir / "samples").mkdir(parents=True, exist_ok=True)
        config_json = {"kind": s.config.kind, **asdict(s.config), "environment": s.env}
        write_text(s.out_dir / "config.json", json.dumps(config_json, indent=2) + "\n")
        truncate_history(s.history, s.header, -1)
    _open_session(s, {})
    if s.dist.main:
        _sample(s, 0)


def _open_session(s: _Session, changed: dict[str, Any]) -> None:
    s.sessions.append({
        "start_step": s.start, "end_step": s.start, "seconds": 0.0, "device_name": s.env["device_name"],
        "lr": s.recipe.lr()["lr"], "changed": changed,
    })


def _sample(s: _Session, step: int) -> None:
    s.recipe.set_train(False)
    try:
        comp = s.recipe.inpaint(s.sample_images.to(s.device), s.sample_masks.to(s.device)).float().cpu()
    finally:
        s.recipe.set_train(True)
    save_sample_grid(s.sample_images, s.sample_masks, comp, s.out_dir / "samples" / f"step_{step:06d}.png")


def _save_checkpoint(s: _Session, step: int) -> None:
    """The full state for an exact resume, written atomically."""
    s.sessions[-1].update(end_step=step, seconds=time.perf_counter() - s.t_start)
    state = {
        "format": CHECKPOINT_FORMAT,
        "kind": s.config.kind,
        "config": asdict(s.config),
        "model_args": s.recipe.model_args(),
        "step": step,
        "phase": s.recipe.phase(max(0, step - 1)),
        **s.recipe.state_dict(),
        "rng": rng_state(s.device),
        "seconds": s.seconds(),
        "log": s.log,
        "bad_steps": s.bad_in_row,
        "sessions": s.sessions,
        "command": s.command,
    }
    save_torch(state, s.out_dir / "checkpoint.pt")


def _loader(s: _Session) -> DataLoader:
    c = s.config
    workers = c.num_workers if c.num_workers is not None else default_workers(s.device)
    sampler = StepBatchSampler(
        len(s.train_photos), c.batch_size, c.seed, s.start, c.total_steps, rank=s.dist.rank,
        world_size=s.dist.world_size,
    )
    return DataLoader(
        TrainingSamples(s.train_photos, c),
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=s.device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def _train_steps(s: _Session, progress: bool, callback: Callback | None, stop: dict[str, int]) -> int:
    """Steps from ``s.start`` to the end of the run, or until ``stop`` holds a signal (then the checkpoint
    of the step reached is written); returns the step reached."""
    c, total = s.config, s.config.total_steps
    bar = tqdm(total=total, initial=s.start, disable=not (progress and s.dist.main), unit="step", desc=c.kind,
               dynamic_ncols=True)
    last_checkpoint = time.monotonic()
    s.recipe.set_train(True)
    step = s.start
    batches = iter(_loader(s))
    try:
        if step == total and s.dist.main and (s.log["count"] or s.log["skipped"]):  # a resume that only finishes:
            _log_row(s, step, s.recipe.phase(step - 1))  # the steps an interrupted session left unlogged
        while step < total:
            phase = s.recipe.phase(step)
            s.recipe.enter_phase(phase)
            t0 = time.perf_counter()
            images, masks = next(batches)
            losses, ok = _one_step(s, images, masks, step + 1, t0)
            step += 1
            if s.dist.main:
                if step % c.log_every == 0 or step == total:
                    row = _log_row(s, step, phase)
                    bar.set_postfix(loss=f"{row['total']:.4g}", phase=phase, refresh=False)
                if step % c.sample_every == 0 or step == total:
                    _sample(s, step)
                by_steps = c.checkpoint_every and step % c.checkpoint_every == 0
                by_time = time.monotonic() - last_checkpoint >= 60 * c.checkpoint_every_minutes
                if (by_steps or by_time) and step < total and ok:
                    _save_checkpoint(s, step)
                    last_checkpoint = time.monotonic()
            bar.update(1)
            if callback is not None:
                callback({"step": step, "phase": phase, "losses": losses, "skipped": not ok,
                          "networks": s.recipe.networks, "run_dir": s.out_dir})
            if "signal" in stop and step < total:
                if s.dist.main:
                    _save_checkpoint(s, step)
                break
    finally:
        bar.close()
        del batches
    return step


def _one_step(s: _Session, images: Tensor, masks: Tensor, step: int, t0: float) -> tuple[dict[str, float], bool]:
    """One optimisation step; a non-finite loss changes nothing (no update, BatchNorm statistics put back)."""
    t1 = time.perf_counter()
    fmt = s.recipe.memory_format
    images = images.to(s.device, non_blocking=True).contiguous(memory_format=fmt)
    masks = masks.to(s.device, non_blocking=True).contiguous(memory_format=fmt)
    backup = [b.clone() for b in s.recipe.buffers()]
    terms, ok = s.recipe.train_step(images, masks)
    losses = dict(zip(terms, torch.stack([v.float() for v in terms.values()]).cpu().tolist()))  # one sync
    log = s.log
    log["step_s"] += time.perf_counter() - t0
    log["wait_s"] += t1 - t0
    log["images"] += s.config.batch_size * s.dist.world_size
    if ok:
        s.bad_in_row = 0
        log["count"] += 1
        for k, v in losses.items():
            log["sums"][k] = log["sums"].get(k, 0.0) + v
        return losses, ok
    with torch.no_grad():
        for b, saved in zip(s.recipe.buffers(), backup):
            b.copy_(saved)
    s.bad_in_row += 1
    log["skipped"] += 1
    warnings.warn(f"step {step}: non-finite loss ({losses}); update skipped", RuntimeWarning, stacklevel=3)
    if s.bad_in_row >= s.config.max_bad_steps:
        raise RuntimeError(
            f"{s.bad_in_row} non-finite losses in a row (last at step {step}); stopping. {_last_checkpoint(s)} "
            "Lower the learning rate, try amp='off' (--amp off), or check the data for corrupt photos."
        )
    return losses, ok


def _last_checkpoint(s: _Session) -> str:
    path = s.out_dir / "checkpoint.pt"
    if path.is_file():
        return f"The last good checkpoint is kept in {path}."
    return "No checkpoint was written yet (the first comes after checkpoint_every_minutes)."


def _log_row(s: _Session, step: int, phase: str) -> dict[str, Any]:
    """One ``history.csv`` row: loss means since the previous row, learning rate, speed, wall time."""
    log = s.log
    row = {
        "step": step,
        "epoch": round(step * s.config.batch_size * s.dist.world_size / len(s.train_photos), 4),
        "phase": phase,
        **{k: log["sums"][k] / log["count"] if log["count"] else float("nan") for k in s.recipe.columns},
        **s.recipe.lr(),
        "img_per_s": log["images"] / max(log["step_s"], 1e-9),
        "data_wait": log["wait_s"] / max(log["step_s"], 1e-9),
        "skipped": log["skipped"],
        "seconds": s.seconds(),
    }
    if s.val_images is not None and (step % s.config.val_every == 0 or step == s.config.total_steps):
        row.update(validation_scores(s.recipe, s.config, s.val_images.to(s.device), step))
    append_history(s.history, s.header, row)
    s.log = new_log()
    return row


def _finish(s: _Session, step: int) -> None:
    """End of the session: checkpoint (so the run can be extended), weights, metrics, run card."""
    _save_checkpoint(s, step)
    config = {"kind": s.config.kind, **asdict(s.config)}
    record = {"step": step, "seconds": s.seconds(), "sessions": s.sessions, "command": portable(s.command),
              "config": config}
    save_weights(s.out_dir / "weights.pt", s.config.kind, s.recipe.model_args(), s.recipe.networks["generator"], record)
    # Scored from weights.pt as saved, in fp32, by the protocol of `evaluate`: the numbers users reproduce.
    model = load_model(s.out_dir, device=s.device)
    val_images = stack_images(s.val_photos, s.config.eval_images).to(s.device)
    metrics = validation_metrics(
        lambda x, m: inpaint(model, x, m.to(x.device)), s.config.kind, val_images, step,
        hole_size=getattr(s.config, "hole_size", 56), batch=max(8, s.config.batch_size),
    )
    write_text(s.out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    s.sessions[-1].update(end_step=step, seconds=time.perf_counter() - s.t_start)
    state = {"step": step, "seconds": s.seconds(), "sessions": s.sessions, "command": portable(s.command)}
    write_run_card(s.out_dir, config, s.env, state, metrics, len(s.train_photos), len(s.val_photos))
