"""What a run continues from: its ``checkpoint.pt`` (exact resume), or, for a finished run whose checkpoint
was not kept, a stand-in built from the ``run`` record of its ``weights.pt``; and which settings a
resumed session may change (:data:`~inpaintlib.train.config.RESUMABLE_CHANGES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpaintlib.rundir import check_apart, check_new_run_folder, load_checkpoint, load_config, load_weights

from .config import TrainConfig, check_resume_config, config_from_dict, validate_config

__all__ = ["settings_for", "resume_state", "resume_config", "new_log"]


def new_log() -> dict[str, Any]:
    """The running sums a session logs into ``history.csv`` every ``log_every`` steps."""
    return {"sums": {}, "count": 0, "skipped": 0, "images": 0, "step_s": 0.0, "wait_s": 0.0}


def settings_for(config: TrainConfig | None, out_dir: Path, resume: bool) -> tuple[TrainConfig, dict | None]:
    """The config to train ``out_dir`` with and, when resuming, the state to start from."""
    checkpoint = None
    if resume:
        checkpoint = resume_state(out_dir)
        _check_same_run(out_dir, checkpoint)
        stored = config_from_dict({**checkpoint["config"], "kind": checkpoint["kind"]})
        if config is None:
            config = stored
        else:
            check_resume_config(stored, config)
            if stored.steps != config.steps and checkpoint["step"] > min(stored.steps, config.steps):
                raise ValueError("steps (the first phase's length) cannot change once the run is past it")
    elif config is None:
        raise ValueError("config is required unless resume=True")
    else:
        check_new_run_folder(out_dir)
    if not isinstance(config, TrainConfig) or not config.kind:
        raise ValueError(f"config must be a CEConfig or PConvConfig, got {type(config).__name__}")
    validate_config(config)
    check_apart(out_dir, {"--data": config.data, "--val-data": config.val_data})
    return config, checkpoint


_MODEL_SETTINGS = ("image_size", "width", "layers", "head_width", "bottleneck")  # what the weights' shapes follow


def _check_same_run(out_dir: Path, checkpoint: dict[str, Any]) -> None:
    """Refuse a resume whose checkpoint is not this folder's run (a checkpoint of a Context Encoder, or of
    another width, copied over a PConv run's) or whose ``history.csv`` is gone (its log would silently start
    again at the checkpoint's step)."""
    source = "weights.pt" if checkpoint.get("from_weights") else "checkpoint.pt"
    if (out_dir / "config.json").is_file():
        try:
            first = load_config(out_dir)
        except ValueError as error:
            raise ValueError(f"{out_dir / 'config.json'} is not readable JSON ({error}); restore it to resume") from None
        stored = {"kind": checkpoint["kind"], **checkpoint["config"]}
        differ = [f"{k} {first[k]!r} vs {stored[k]!r}" for k in ("kind", *_MODEL_SETTINGS)
                  if k in first and k in stored and first[k] != stored[k]]
        if differ:
            raise ValueError(f"{out_dir / source} is not from the run in {out_dir} (config.json vs {source}: "
                             f"{', '.join(differ)}); put back the run's own {source}, or start a new run")
    if int(checkpoint["step"]) > 0 and not (out_dir / "history.csv").is_file():
        raise ValueError(f"{out_dir / 'history.csv'} is missing: resuming at step {checkpoint['step']} would lose the "
                         "log of the earlier steps; restore it, or start a new run")


def resume_state(out_dir: Path) -> dict[str, Any]:
    """What a resume of ``out_dir`` starts from: ``checkpoint.pt``, else the stand-in built from ``weights.pt``."""
    if (out_dir / "checkpoint.pt").is_file():
        return load_checkpoint(out_dir / "checkpoint.pt")
    if (out_dir / "weights.pt").is_file():
        return _checkpoint_from_weights(out_dir)
    raise FileNotFoundError(
        f"cannot resume: {out_dir} holds neither checkpoint.pt nor weights.pt (start a new run without --resume)"
    )


def resume_config(out_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The settings a run ended with (from its checkpoint, else its weights), with ``overrides`` applied:
    what ``train(..., resume=True)`` continues with. Not ``config.json``, which keeps the first session's
    settings while resumes may change step counts and learning rates."""
    state = resume_state(Path(out_dir))
    _check_same_run(Path(out_dir), state)
    return config_from_dict({**state["config"], **overrides, "kind": state["kind"]})


def _checkpoint_from_weights(out_dir: Path) -> dict[str, Any]:
    """A stand-in checkpoint for continuing a finished run whose ``checkpoint.pt`` was not kept (a run
    committed to a repository keeps only ``weights.pt``): the generator from the fp16 weights; the step,
    time, sessions and settings from the ``run`` record of ``weights.pt``. Adam's moments, a Context
    Encoder's discriminator and the random streams start afresh, so unlike a real checkpoint this does
    not reproduce an uninterrupted run; the run card's sessions table says so.
    """
    weights = load_weights(out_dir / "weights.pt")
    record = weights["run"]
    state = {k: v.float() if v.is_floating_point() else v for k, v in weights["state_dict"].items()}
    return {
        "kind": weights["kind"],
        "config": {k: v for k, v in record["config"].items() if k not in ("kind", "environment")},
        "step": int(record["step"]),
        "seconds": float(record["seconds"]),
        "sessions": record["sessions"],
        "command": record["command"],
        "models": {"generator": state},
        "log": new_log(),
        "bad_steps": 0,
        "from_weights": True,
    }
