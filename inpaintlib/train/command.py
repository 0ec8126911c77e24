"""Command line: ``python -m inpaintlib train ...``, also under ``torchrun`` (see ``--help``).

The flags are generated from the config dataclasses (:func:`inpaintlib.train.config.setting`): a setting
with help text is a flag, and its help says which recipe it belongs to.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

from inpaintlib.cliname import program
from inpaintlib.device import fast_global_flags
from inpaintlib.errors import exits_cleanly
from inpaintlib.hub import resolve_checkpoint
from inpaintlib.rundir import writer_lock

from .config import CONFIGS, PROFILES, TrainConfig, make_config
from .interrupts import TrainingInterrupted
from .loop import train
from .resume import resume_config


def _loss_weights(text: str) -> dict[str, float]:
    """``"style=0,perceptual=0"`` -> ``{"style": 0.0, "perceptual": 0.0}``."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=NUMBER pairs separated by commas, got {item!r}")
    if not weights:
        raise argparse.ArgumentTypeError("give at least one NAME=NUMBER pair")
    return weights


def _factor_range(text: str) -> tuple[float, float]:
    """``"0.7,2.5"`` -> ``(0.7, 2.5)``."""
    try:
        lo, hi = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers separated by a comma), got {text!r}") from None
    return lo, hi


_PARSERS = {"loss_weights": _loss_weights, "factor_range": _factor_range}


def flag_settings() -> dict[str, tuple[Field, list[str]]]:
    """``{field name: (the field that carries the help text, recipes that have it)}`` for every setting
    that is a command-line flag (a recipe that only changes a shared setting's default keeps its flag)."""
    shared = {f.name: f for f in fields(TrainConfig) if f.metadata.get("help")}
    found: dict[str, tuple[Field, list[str]]] = {}
    for kind, cls in sorted(CONFIGS.items()):
        for f in fields(cls):
            described = f if f.metadata.get("help") else shared.get(f.name)
            if described is not None:
                found[f.name] = (described, [*found.get(f.name, (None, []))[1], kind])
    return found


def _flag(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _add_flag(parser: argparse.ArgumentParser, f: Field, kinds: list[str]) -> None:
    meta = f.metadata
    text = meta["help"] + ("" if len(kinds) == len(CONFIGS) else f" [{' '.join(kinds)} only]")
    if f.type in ("bool", bool):
        parser.add_argument(_flag(f), dest=f.name, action="store_true", default=None, help=text)
        return
    types = {"int": int, "float": float}
    kind_of = next((types[t] for t in types if str(f.type).startswith(t)), str)
    parse = _PARSERS.get(meta.get("parse"), kind_of)
    metavar = None if meta.get("choices") else _flag(f)[2:].upper().replace("-", "_")
    parser.add_argument(_flag(f), dest=f.name, type=parse, choices=meta.get("choices"), metavar=metavar, help=text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{program()} train",
        description="Train a Context Encoder (ce) or a PConv U-Net (pconv) and write a run directory "
        "(config.json, history.csv, samples/, metrics.json, checkpoint.pt, weights.pt, RUN.md). "
        "Settings not given come from --profile; with --resume, from the settings the run ended with. "
        "Several GPUs: torchrun --standalone --nproc_per_node=N -m inpaintlib train ...",
    )
    p.add_argument("kind", choices=sorted(CONFIGS), help="ce: Context Encoder (report §3.1); pconv: PConv U-Net (§3.2)")
    p.add_argument("--out", required=True, help="run directory to create (or to continue with --resume)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help="sizes and step counts (default cpu)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt, or from its weights.pt (Adam restarts) "
                   "where no checkpoint was kept; may change step counts and learning rates")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no messages")
    for f, kinds in flag_settings().values():
        _add_flag(p, f, kinds)
    return p


def _overrides(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line; a flag of the other recipe is an error."""
    overrides = {}
    for name, (f, kinds) in flag_settings().items():
        value = getattr(args, name)
        if value is None:
            continue
        if args.kind not in kinds:
            parser.error(f"{_flag(f)} applies to {' and '.join(kinds)} only")
        overrides[name] = value
    return overrides


@exits_cleanly
def cli(argv: list[str] | None = None) -> int:
    """``python -m inpaintlib train ...`` (see ``--help``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = _overrides(parser, args)
    argv = sys.argv[1:] if argv is None else argv
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node={world} -m inpaintlib" if world > 1 else "python -m inpaintlib"
    command = " ".join([launcher, "train", *map(shlex.quote, argv)])
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        with writer_lock(Path(args.out)) if main else contextlib.nullcontext():  # before reading the run
            if "init_from" in overrides:  # a stored run's name (e.g. pconv) is fetched outside a checkout
                overrides["init_from"] = str(resolve_checkpoint(overrides["init_from"]))
            if args.resume:
                config = resume_config(args.out, **overrides)
                if config.kind != args.kind:
                    raise ValueError(f"{args.out} is a {config.kind!r} run, not {args.kind!r}")
            else:
                config = make_config(args.kind, args.profile, **overrides)
            with fast_global_flags():  # a process of its own: the command line may set torch's global switches
                run_dir = train(config, args.out, resume=args.resume, progress=not args.quiet, command=command)
    except TrainingInterrupted as stop:
        print(f"stopped by {signal.Signals(stop.signal).name} at step {stop.step}; checkpoint: {stop.checkpoint}\n"
              f"continue with: {program()} train {args.kind} --out {shlex.quote(args.out)} --resume",
              file=sys.stderr)
        return 128 + stop.signal
    if not args.quiet and main:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        o = metrics["overall"]
        n = metrics["num_images"]
        print(f"run directory: {run_dir}  (PSNR {o['psnr']:.2f} dB, SSIM {o['ssim']:.3f} on {n} validation photos)")
    return 0
