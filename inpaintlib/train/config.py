"""Training settings: one dataclass per recipe with the report's defaults (§4.1, §4.2), the named
profiles "cpu" and "gpu", their validation, and which settings a resumed run may change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass
class TrainConfig:
    """Settings both recipes share (the recipe-specific ones live in :class:`CEConfig`, :class:`PConvConfig`)."""

    image_size: int = 128
    batch_size: int = 16  # per process; under DDP the global batch is batch_size * world size
    width: int = 64
    steps: int = 1000
    data: str | None = None  # folder of training photos; None = the embedded data/photos/train
    val_data: str | None = None  # held-out photos for samples and metrics; None = data/photos/val
    log_every: int = 10  # one history.csv row every this many steps
    sample_every: int = 500  # one samples/step_XXXXXX.png every this many steps (and at 0 and the end)
    sample_images: int = 4  # validation photos shown in each sample grid
    eval_images: int | None = None  # validation photos scored in metrics.json; None = all
    checkpoint_every: int = 0  # also checkpoint every this many steps (0 = only by time and at the end)
    checkpoint_every_minutes: float = 10.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # auto (bf16 where the hardware has it) | bf16 | fp16 | off
    channels_last: bool = True  # used on CUDA only: on CPU it gains nothing for PConv and costs the CE ~20 %
    compile: bool = False
    num_workers: int | None = None  # DataLoader workers; None = 0 on CPU, all cores but one (<= 16) on CUDA
    max_bad_steps: int = 20  # this many non-finite losses in a row stop the run
    init_from: str | None = None  # start the model from another run's weights (run dir or weights.pt)
    profile: str | None = None  # name of the profile the settings came from (a label only)

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
    bottleneck: int = 4000
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    hole_size: int = 56  # the central hole (center_mask)
    patch_size: int = 64  # the predicted patch: the hole plus the overlap band
    overlap: int = 4
    overlap_weight: float = 10.0
    w_rec: float = 0.999  # eq. (5)
    w_adv: float = 0.001

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
    layers: int | None = None  # None = log2(image_size) - 1
    steps: int = 233_600  # phase "train"
    finetune_steps: int = 116_800  # phase "finetune": encoder BN frozen (freeze_encoder_batchnorm)
    lr: float = 2e-4
    finetune_lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.999)
    hole_ratio: tuple[float, float] = (0.01, 0.6)  # range of the irregular training masks
    vgg_weights: str = "auto"  # VGG16Features weights: auto | imagenet | hed
    loss_weights: dict[str, float] | None = None  # None = eq. (12)
    eval_masks_per_bucket: int = 2

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
            batch_size=16, width=32, bottleneck=1000, steps=400, log_every=10, sample_every=100, sample_images=4
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
        ),
    },
    "gpu": {
        "ce": dict(steps=100_000, log_every=100, sample_every=5000, sample_images=8),
        "pconv": dict(steps=80_000, finetune_steps=20_000, log_every=100, sample_every=5000, sample_images=6),
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
    _validate_config(config)
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
    _validate_config(config)
    return config


def _validate_config(c: TrainConfig) -> None:
    def positive(name: str, allow_zero: bool = False) -> None:
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if allow_zero else 1):
            raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {v!r}")

    for name in ("image_size", "batch_size", "width", "log_every", "sample_every", "sample_images", "max_bad_steps"):
        positive(name)
    for name in ("steps", "checkpoint_every", "seed"):
        positive(name, allow_zero=True)
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
    if isinstance(c, CEConfig):
        if c.image_size != 128:
            raise ValueError(f"the Context Encoder takes 128x128 images (report §3.1); got image_size={c.image_size}")
        if not c.hole_size < c.patch_size < c.image_size or c.patch_size - c.hole_size != 2 * c.overlap:
            raise ValueError(
                f"expected hole_size < patch_size < image_size and patch_size - hole_size = 2 * overlap; "
                f"got hole {c.hole_size}, patch {c.patch_size}, overlap {c.overlap}"
            )
        if c.patch_size != 64:
            raise ValueError(f"the Context Encoder predicts a 64x64 patch; got patch_size={c.patch_size}")
    if isinstance(c, PConvConfig):
        positive("finetune_steps", allow_zero=True)
        positive("eval_masks_per_bucket")
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
        from inpaintlib.losses import DEFAULT_PCONV_WEIGHTS

        unknown = sorted(set(c.loss_weights or {}) - set(DEFAULT_PCONV_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown loss weight(s) {unknown}; expected {', '.join(DEFAULT_PCONV_WEIGHTS)}")
        if any(not math.isfinite(v) or v < 0 for v in (c.loss_weights or {}).values()):
            raise ValueError(f"loss weights must be finite and >= 0, got {c.loss_weights}")
    if c.total_steps < 1:
        raise ValueError("the run needs at least one step (steps + finetune_steps >= 1)")


# Settings that may differ when resuming: they change how long or where a run goes, or (learning rates)
# how it goes on from here; the run card's sessions table records each change.
_RESUMABLE_CHANGES = {
    "steps",
    "finetune_steps",
    "lr",
    "finetune_lr",
    "lr_g",
    "lr_d",
    "device",
    "num_workers",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "checkpoint_every_minutes",
    "compile",
    "profile",
    "max_bad_steps",
}


def _check_resume_config(stored: TrainConfig, given: TrainConfig) -> None:
    a, b = asdict(stored), asdict(given)
    changed = sorted(k for k in a if a[k] != b[k] and k not in _RESUMABLE_CHANGES)
    if type(stored) is not type(given):
        raise ValueError(f"the run was a {stored.kind!r} run; cannot resume it as {given.kind!r}")
    if changed:
        details = ", ".join(f"{k}: {a[k]!r} -> {b[k]!r}" for k in changed)
        raise ValueError(
            f"resume needs the run's own settings, but these differ from its checkpoint: {details}. "
            f"Only {sorted(_RESUMABLE_CHANGES)} may change; pass config=None to use the stored one."
        )
