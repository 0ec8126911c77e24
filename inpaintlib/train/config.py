"""Training settings: one dataclass per recipe with the report's defaults (§4.1, §4.2), the named
profiles "cpu" and "gpu", their validation, and which settings a resumed run may change.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch

from inpaintlib.images import pixel_limit
from inpaintlib.losses import DEFAULT_PCONV_WEIGHTS
from inpaintlib.metrics import SSIM_WINDOW


def setting(default: Any, help: str | None = None, flag: str | None = None, **argparse_kw: Any) -> Any:
    """A config field; ``help`` makes it a command-line flag (``--name-with-dashes`` unless ``flag`` names
    another), so the dataclasses below are the single description of the settings and the CLI is built
    from them (:mod:`inpaintlib.train.command`)."""
    meta = {"help": help, "flag": flag, **argparse_kw} if help else {}
    if isinstance(default, (list, dict, tuple)) and not isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Settings both recipes share (the recipe-specific ones live in :class:`CEConfig`, :class:`PConvConfig`)."""

    image_size: int = setting(128, "training image side in pixels (ce: must be 128)", flag="--size")
    batch_size: int = setting(16, "images per step and process (under torchrun the global batch is N times this)")
    width: int = setting(64, "channels of the first layer (64 in the report)")
    steps: int = setting(1000, "training steps (pconv: of the first phase)")
    data: str | None = setting(None, "folder of training photos (default: the embedded data/photos/train)")
    val_data: str | None = setting(None, "folder of held-out photos for samples and metrics (default data/photos/val)")
    log_every: int = setting(10, "steps between history.csv rows")
    sample_every: int = setting(500, "steps between sample grids in samples/ (and at step 0 and the end)")
    sample_images: int = 4  # validation photos shown in each sample grid
    eval_images: int | None = setting(None, "validation photos scored in metrics.json (default all)")
    val_every: int = setting(0, "steps between validation scores (val_psnr, val_ssim, val_l1_hole) in history.csv; "
                             "0 = none; a multiple of --log-every")
    val_images: int = setting(8, "validation photos scored every --val-every steps (default 8)")
    checkpoint_every: int = 0  # also checkpoint every this many steps (0 = only by time and at the end)
    checkpoint_every_minutes: float = setting(10.0, "minutes between checkpoints (default 10)", flag="--checkpoint-minutes")
    seed: int = setting(0, "seed of initialisation, data order and masks (default 0)")
    device: str = setting("auto", "auto (default), cpu, cuda, cuda:N or mps")
    amp: str = setting("auto", "mixed precision (default auto: bf16 where the hardware has it)",
                       choices=["auto", "bf16", "fp16", "off"])
    # channels_last on CUDA always; on CPU where the recipe gains from it (bench/RESULTS.md, "Training step"):
    # the PConv U-Net (about 25 % faster with oneDNN), not the Context Encoder (about 50 % slower).
    channels_last: bool = True
    compile: bool = setting(False, "torch.compile the networks")
    num_workers: int | None = setting(None, "DataLoader processes (default: 0 on CPU, cores - 1 up to 16 on CUDA)",
                                      flag="--workers")
    max_bad_steps: int = 20  # this many non-finite losses in a row stop the run
    init_from: str | None = setting(None, "start the model from another run's weights (run directory, weights.pt or a stored run name such as pconv)")
    global_flags: bool = False  # let train() turn on TF32 / cuDNN autotuning for the run (the CLI always does)
    profile: str | None = None  # name of the profile the settings came from (a label only)
    head_width: int = setting(0, "channels of a full-resolution head after the network (default 0: none, the "
                              "report's network; inpaintlib.models.head.FullResolutionHead)")
    head_fill_iterations: int = setting(0, "the head also reads a biharmonic fill with this many CG steps per "
                                        "pyramid level and blends it in (default 0: no fill; needs a head)")
    crop_scale: tuple[float, float] | None = setting(
        None, "rescale each training crop by a random factor in LO,HI first (e.g. 0.7,2.5; above 1 enlarges, "
        "so the crop is smoother); default: no rescale", parse="factor_range")
    head_only: bool = setting(False, "train only the head; the rest of the generator keeps the weights and "
                              "batch-norm statistics it was loaded with (--init-from)")

    kind: ClassVar[str] = ""

    @property
    def total_steps(self) -> int:
        return self.steps


@dataclass
class CEConfig(TrainConfig):
    """Context Encoder recipe; defaults are the report's (§4.1): batch 64, Adam(0.5, 0.999), lr D 1e-4, G 1e-3.

    The report trains 370 epochs of 35,040 Places2 photos, about 200,000 steps of 64.
    """

    image_size: int = 128  # the Context Encoder's input is fixed at 128 px
    batch_size: int = 64
    width: int = 64
    steps: int = 200_000
    bottleneck: int = setting(4000, "channels of the bottleneck (4000 in the report)")
    lr_g: float = setting(1e-3, "generator learning rate (default 1e-3)")
    lr_d: float = setting(1e-4, "discriminator learning rate (default 1e-4)")
    betas: tuple[float, float] = (0.5, 0.999)
    hole_size: int = 56  # the central hole (center_mask)
    patch_size: int = 64  # the predicted patch: the hole plus the overlap band
    overlap: int = 4
    overlap_weight: float = 10.0
    w_rec: float = 0.999  # eq. (5)
    w_adv: float = setting(0.001, "weight of the adversarial term in eq. (5) (default 0.001; 0 = L2 only)")
    d_max_accuracy: float = setting(
        1.0, "skip the discriminator's update in a step where its accuracy on that step's real and generated "
        "patches (before the update) is above this (default 1: never skip; not in the report)")

    kind: ClassVar[str] = "ce"


@dataclass
class PConvConfig(TrainConfig):
    """PConv U-Net recipe; defaults follow the report (§4.2) and Liu et al.

    The report trains at 512 px; 256 px is the common public setting and the default here.
    Liu et al. use batch 6; the report's 40 + 20 epochs of 35,040 photos are ~233,600 + ~116,800 steps.
    """

    image_size: int = 256
    batch_size: int = 6
    width: int = 64
    layers: int | None = setting(None, "encoder levels (default log2(size) - 1)")
    head_lr_scale: float = setting(1.0, "the head learns at this times the learning rate (default 1)")
    steps: int = 233_600  # phase "train"
    finetune_steps: int = setting(116_800, "steps of the fine-tuning phase (encoder BN frozen)")
    lr: float = setting(2e-4, "Adam learning rate of the first phase (default 2e-4)")
    finetune_lr: float = setting(5e-5, "learning rate of the fine-tuning phase (default 5e-5)")
    betas: tuple[float, float] = (0.9, 0.999)
    hole_ratio: tuple[float, float] = (0.01, 0.6)  # range of the irregular training masks
    vgg_weights: str = setting("auto", "VGG16 for the loss", choices=["auto", "imagenet", "hed"])
    loss_weights: dict[str, float] | None = setting(
        None, "change eq. (12)'s weights, e.g. style=0,perceptual=0 (keys valid, hole, perceptual, style, tv; "
        "default 1, 6, 0.05, 120, 0.1)", parse="loss_weights")

    kind: ClassVar[str] = "pconv"

    @property
    def total_steps(self) -> int:
        return self.steps + self.finetune_steps


CONFIGS: dict[str, type[TrainConfig]] = {"ce": CEConfig, "pconv": PConvConfig}


#: The two named sets of sizes and step counts; the CLI, papermill and the chapters use these names.
#: "cpu" finishes in minutes on 2 cores. "gpu" is the report's settings with step counts cut to about
#: an hour on one H100 (measured there with bf16: PConv 256 px batch 6 ~27 steps/s; CE batch 64
#: ~37 steps/s with 15 loader workers); raise ``steps`` for the report's full schedule.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "ce": dict(
            batch_size=16, width=32, bottleneck=1000, steps=400, log_every=10, sample_every=100, sample_images=4,
            val_every=50,
        ),
        "pconv": dict(
            image_size=128,
            batch_size=4,
            width=32,
            steps=300,
            finetune_steps=100,
            vgg_weights="hed",  # offline and identical on every machine (no 528 MB download)
            log_every=10,
            sample_every=100,
            sample_images=4,
            val_every=50,
        ),
    },
    "gpu": {
        "ce": dict(steps=100_000, log_every=100, sample_every=5000, sample_images=8, val_every=1000),
        "pconv": dict(steps=80_000, finetune_steps=20_000, log_every=100, sample_every=5000, sample_images=6,
                      val_every=1000),
    },
}


def _check_kind(kind: str) -> type[TrainConfig]:
    if kind not in CONFIGS:
        raise ValueError(f"unknown recipe {kind!r}; expected one of {sorted(CONFIGS)}")
    return CONFIGS[kind]


def make_config(kind: str, profile: str | None = "cpu", **overrides: Any) -> TrainConfig:
    """The config of recipe ``kind`` ("ce" or "pconv") for ``profile`` ("cpu", "gpu" or None = plain
    report defaults), with ``overrides`` applied last.  Unknown names raise ``ValueError``."""
    cls = _check_kind(kind)
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)} or None")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no setting(s) {unknown}; valid names: {sorted(names)}")
    values = dict(PROFILES[profile][kind]) if profile else {}
    values.update(overrides)
    values.setdefault("profile", profile)
    config = cls(**values)
    validate_config(config)
    return config


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a config from ``config.json`` (or ``asdict``) content; keys other than settings are ignored."""
    cls = _check_kind(values.get("kind", ""))
    kwargs = {}
    for f in fields(cls):
        if f.name in values:
            v = values[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    config = cls(**kwargs)
    validate_config(config)
    return config


def validate_config(c: TrainConfig) -> None:
    """Raise ``ValueError`` naming the setting when a value is out of range."""
    def positive(name: str, allow_zero: bool = False) -> None:
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if allow_zero else 1):
            raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {v!r}")

    for name in ("image_size", "batch_size", "width", "log_every", "sample_every", "sample_images", "max_bad_steps"):
        positive(name)
    for name in ("steps", "checkpoint_every", "seed", "val_every"):
        positive(name, allow_zero=True)
    positive("val_images")
    if c.val_every % c.log_every:
        raise ValueError(f"val_every ({c.val_every}) must be a multiple of log_every ({c.log_every}): scores go into logged rows")
    if c.eval_images is not None:
        positive("eval_images")
    if c.num_workers is not None:
        positive("num_workers", allow_zero=True)
    if c.amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {c.amp!r}")
    for name in ("lr", "finetune_lr", "lr_g", "lr_d"):
        value = getattr(c, name, None)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"learning rate {name} must be a finite number > 0, got {value!r}")
    if not c.checkpoint_every_minutes > 0:
        raise ValueError(f"checkpoint_every_minutes must be > 0, got {c.checkpoint_every_minutes!r}")
    positive("head_width", allow_zero=True)
    positive("head_fill_iterations", allow_zero=True)
    if c.crop_scale is not None and not (len(c.crop_scale) == 2 and 0 < c.crop_scale[0] <= c.crop_scale[1] < math.inf):
        raise ValueError(f"crop_scale must be (lo, hi) with 0 < lo <= hi, got {c.crop_scale!r}")
    if (c.head_fill_iterations or c.head_only) and not c.head_width:
        raise ValueError("head_fill_iterations and head_only need a head: give head_width > 0 as well")
    if isinstance(c, CEConfig):
        if c.image_size != 128:
            raise ValueError(f"the Context Encoder takes 128x128 images (report §3.1); got image_size={c.image_size}")
        if not c.hole_size < c.patch_size < c.image_size or c.patch_size - c.hole_size != 2 * c.overlap:
            raise ValueError(
                f"expected hole_size < patch_size < image_size and patch_size - hole_size = 2 * overlap; "
                f"got hole {c.hole_size}, patch {c.patch_size}, overlap {c.overlap}"
            )
        if not 0 <= c.d_max_accuracy <= 1:
            raise ValueError(f"d_max_accuracy must be in [0, 1] (1 = never skip), got {c.d_max_accuracy}")
        if c.patch_size != 64:
            raise ValueError(f"the Context Encoder predicts a 64x64 patch; got patch_size={c.patch_size}")
        if c.head_width and c.hole_size != 56:
            raise ValueError(f"a Context Encoder with a head fills the report's 56 px hole; got hole_size={c.hole_size}")
    if isinstance(c, PConvConfig):
        positive("finetune_steps", allow_zero=True)
        if not (math.isfinite(c.head_lr_scale) and c.head_lr_scale > 0):
            raise ValueError(f"head_lr_scale must be a positive number, got {c.head_lr_scale!r}")
        if c.layers is not None:
            positive("layers")
        layers = c.layers if c.layers is not None else int(math.log2(c.image_size)) - 1
        if layers < 1 or c.image_size % (2**layers):
            raise ValueError(
                f"image_size={c.image_size} must be a multiple of 2**layers = 2**{layers} (e.g. 64, 128, 256, 512)"
            )
        lo, hi = c.hole_ratio
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"hole_ratio must be (lo, hi) with 0 <= lo < hi <= 1, got {c.hole_ratio}")
        if c.vgg_weights not in ("auto", "imagenet", "hed"):
            raise ValueError(f"vgg_weights must be 'auto', 'imagenet' or 'hed', got {c.vgg_weights!r}")
        unknown = sorted(set(c.loss_weights or {}) - set(DEFAULT_PCONV_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown loss weight(s) {unknown}; expected {', '.join(DEFAULT_PCONV_WEIGHTS)}")
        if any(not math.isfinite(v) or v < 0 for v in (c.loss_weights or {}).values()):
            raise ValueError(f"loss weights must be finite and >= 0, got {c.loss_weights}")
    if c.total_steps < 1:
        raise ValueError("the run needs at least one step (steps + finetune_steps >= 1)")
    check_feasible(c)


def check_feasible(c: TrainConfig) -> None:
    """Refuse settings that pass the range checks but could not finish: an image smaller than validation's
    SSIM window (``--size 8`` trained to the end, then failed), and a crop-scale range whose crops would
    not fit in memory (``--crop-scale 1e-9,1e-9`` asked for 119 TiB)."""
    if isinstance(c, PConvConfig) and c.image_size < SSIM_WINDOW:
        multiple = 2**c.layers if c.layers is not None else 16  # without --layers, the depth follows the size
        smallest = multiple * math.ceil(SSIM_WINDOW / multiple)
        raise ValueError(
            f"image_size={c.image_size} is too small: validation's SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} "
            f"pixels (its window) and the U-Net a multiple of 2**layers; the smallest size is {smallest}"
        )
    if c.crop_scale is not None:
        lo, hi = c.crop_scale
        window, limit = c.image_size / lo, pixel_limit()
        if window * window > limit or hi > c.image_size:
            raise ValueError(
                f"crop_scale={tuple(c.crop_scale)} is out of reach: the crops would be {window:.0f} px wide at "
                f"factor {lo:g} (at most {math.isqrt(limit)} px, the pixel limit) or under 1 px at {hi:g} "
                f"(at most {c.image_size}); e.g. 0.5,2"
            )


def batch_memory_bytes(c: TrainConfig) -> int:
    """A lower bound on a training step's memory: the float32 batch (images, masks, outputs, composites:
    10 channels) and the first layer's activations with their gradients (``width`` channels at half
    resolution, kept for the backward pass); the real need is several times more."""
    side = c.image_size
    return 4 * c.batch_size * (10 * side * side + 2 * c.width * (side // 2) ** 2)


def device_memory_bytes(device: Any) -> int | None:
    """The memory of a ``torch.device``: a GPU's own, the machine's RAM for the CPU, None when unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cpu":
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        pass
    return None


def check_batch_memory(c: TrainConfig, total_bytes: int | None) -> None:
    """Refuse a batch whose lower-bound memory (:func:`batch_memory_bytes`) is over ``total_bytes``, the
    device's memory (None: unknown, not checked), before anything is written."""
    need = batch_memory_bytes(c)
    if total_bytes is not None and need > total_bytes:
        raise ValueError(
            f"batch_size={c.batch_size} at {c.image_size} px needs at least {need / 2**30:.1f} GiB for one step, more "
            f"than the device's {total_bytes / 2**30:.1f} GiB; use a smaller --batch-size"
        )


# Settings that may differ when resuming: they change how long or where a run goes, or (learning rates)
# how it goes on from here; the run card's sessions table records each change.
RESUMABLE_CHANGES = {
    "steps",
    "finetune_steps",
    "lr",
    "finetune_lr",
    "lr_g",
    "lr_d",
    "head_lr_scale",
    "device",
    "num_workers",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "checkpoint_every_minutes",
    "compile",
    "profile",
    "max_bad_steps",
    "global_flags",
    "val_every",
    "val_images",
}


def check_resume_config(stored: TrainConfig, given: TrainConfig) -> None:
    a, b = asdict(stored), asdict(given)
    changed = sorted(k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES)
    if type(stored) is not type(given):
        raise ValueError(f"the run was a {stored.kind!r} run; cannot resume it as {given.kind!r}")
    if changed:
        details = ", ".join(f"{k}: {a[k]!r} -> {b[k]!r}" for k in changed)
        raise ValueError(
            f"resume needs the run's own settings, but these differ from its checkpoint: {details}. "
            f"Only {sorted(RESUMABLE_CHANGES)} may change (on the command line: --resume uses the stored settings)."
        )
