"""Command line: ``python -m inpaintlib train ...``, also under ``torchrun`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from ..cliname import program
from ..hub import resolve_checkpoint
from .config import CONFIGS, PROFILES, make_config
from .loop import resume_config, train


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
    p.add_argument("--data", help="folder of training photos (default: the embedded data/photos/train)")
    p.add_argument("--val-data", help="folder of held-out photos for samples and metrics (default data/photos/val)")
    p.add_argument("--size", type=int, help="training image side in pixels (ce: must be 128)")
    p.add_argument("--batch-size", type=int, help="images per step and process")
    p.add_argument("--steps", type=int, help="training steps (pconv: of the first phase)")
    p.add_argument("--finetune-steps", type=int, help="pconv only: steps of the fine-tuning phase (encoder BN frozen)")
    p.add_argument("--lr", type=float, help="pconv only: Adam learning rate of the first phase (default 2e-4)")
    p.add_argument("--finetune-lr", type=float, help="pconv only: learning rate of the fine-tuning phase (default 5e-5)")
    p.add_argument("--lr-g", type=float, help="ce only: generator learning rate (default 1e-3)")
    p.add_argument("--lr-d", type=float, help="ce only: discriminator learning rate (default 1e-4)")
    p.add_argument("--width", type=int, help="channels of the first layer (64 in the report)")
    p.add_argument("--bottleneck", type=int, help="ce only: channels of the bottleneck (4000 in the report)")
    p.add_argument("--init-from", help="start the model from another run's weights (run directory, weights.pt or "
                   "a stored run name such as pconv)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt, or from its weights.pt (Adam restarts) "
                   "where no checkpoint was kept; may change step counts and learning rates")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], help="mixed precision (default auto)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the networks")
    p.add_argument("--workers", type=int, help="DataLoader processes (default: 0 on CPU, cores - 1 up to 16 on CUDA)")
    p.add_argument("--seed", type=int, help="seed of initialisation, data order and masks (default 0)")
    p.add_argument("--log-every", type=int, help="steps between history.csv rows")
    p.add_argument("--sample-every", type=int, help="steps between sample grids in samples/")
    p.add_argument("--checkpoint-minutes", type=float, help="minutes between checkpoints (default 10)")
    p.add_argument("--eval-images", type=int, help="validation photos scored in metrics.json (default all)")
    p.add_argument("--vgg-weights", choices=["auto", "imagenet", "hed"], help="pconv only: VGG16 for the loss")
    p.add_argument("--loss-weights", type=_loss_weights,
                   help="pconv only: change eq. (12)'s weights, e.g. style=0,perceptual=0 "
                   "(keys valid, hole, perceptual, style, tv; default 1, 6, 0.05, 120, 0.1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no messages")
    return p


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


_FLAG_TO_FIELD = {
    "data": "data",
    "val_data": "val_data",
    "size": "image_size",
    "batch_size": "batch_size",
    "steps": "steps",
    "finetune_steps": "finetune_steps",
    "lr": "lr",
    "finetune_lr": "finetune_lr",
    "lr_g": "lr_g",
    "lr_d": "lr_d",
    "width": "width",
    "bottleneck": "bottleneck",
    "init_from": "init_from",
    "device": "device",
    "amp": "amp",
    "compile": "compile",
    "workers": "num_workers",
    "seed": "seed",
    "log_every": "log_every",
    "sample_every": "sample_every",
    "checkpoint_minutes": "checkpoint_every_minutes",
    "eval_images": "eval_images",
    "vgg_weights": "vgg_weights",
    "loss_weights": "loss_weights",
}


def cli(argv: list[str] | None = None) -> int:
    """``python -m inpaintlib train ...`` (see ``--help``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = {f: getattr(args, a) for a, f in _FLAG_TO_FIELD.items() if getattr(args, a) is not None}
    if args.kind == "ce":
        for flag in ("finetune_steps", "vgg_weights", "loss_weights", "lr", "finetune_lr"):
            if flag in overrides:
                parser.error(f"--{flag.replace('_', '-')} applies to pconv only")
    else:
        for flag in ("bottleneck", "lr_g", "lr_d"):
            if flag in overrides:
                parser.error(f"--{flag.replace('_', '-')} applies to ce only")
    argv = sys.argv[1:] if argv is None else argv
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node={world} -m inpaintlib" if world > 1 else "python -m inpaintlib"
    command = " ".join([launcher, "train", *map(shlex.quote, argv)])
    try:
        if "init_from" in overrides:
            overrides["init_from"] = str(resolve_checkpoint(overrides["init_from"]))
        if args.resume:
            config = resume_config(args.out, **overrides)
            if config.kind != args.kind:
                raise ValueError(f"{args.out} is a {config.kind!r} run, not {args.kind!r}")
        else:
            config = make_config(args.kind, args.profile, **overrides)
        run_dir = train(config, args.out, resume=args.resume, progress=not args.quiet, command=command)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        o = metrics["overall"]
        n = metrics["num_images"]
        print(f"run directory: {run_dir}  (PSNR {o['psnr']:.2f} dB, SSIM {o['ssim']:.3f} on {n} validation photos)")
    return 0
