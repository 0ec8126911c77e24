"""Training engine for both models of the report (§4): one loop, two recipes, one run directory.

* Context Encoder (report §3.1, §4.1, Fig 1): alternating Adam updates of the discriminator and the
  generator on a fixed central hole, loss ``0.999 L_rec + 0.001 L_adv`` (eqs. (3)-(5)).
* PConv U-Net (report §3.2, §4.2): irregular masks drawn afresh for every sample, loss of eq. (12),
  a first phase at lr 2e-4 and a fine-tuning phase at 5e-5 with the encoder's BatchNorm frozen.

How to run it::

    python -m inpaintlib train pconv --profile cpu --out runs/pconv-cpu        # 2-core CPU, minutes
    python -m inpaintlib train ce --profile gpu --out runs/ce-gpu              # one GPU, the report's settings
    torchrun --standalone --nproc_per_node=4 -m inpaintlib train pconv --profile gpu --out runs/pconv-4gpu
    python -m inpaintlib train pconv --out runs/pconv-cpu --resume             # continue a killed run

or from Python::

    from inpaintlib.train import make_config, train
    run_dir = train(make_config("pconv", "cpu", steps=200), "runs/demo", progress=False)

The run directory it writes is described in :mod:`inpaintlib.runs`.

Exact resume. Nothing about the data depends on iterator state: the order of the training photos in
epoch ``e`` is a permutation seeded by ``(seed, e)``, and the crop/flip of a sample and its mask come
from a seed derived from ``(seed, step, position in the global batch)``. A run restarted from a
checkpoint at step ``k`` therefore sees exactly the batches an uninterrupted run sees from ``k`` on;
together with the saved model, optimizer, scaler and RNG states the final weights are bit-identical
(tested on CPU in fp32). The same keys make a DDP run with ``N`` processes of batch ``B`` see the same
photos as one process of batch ``N * B``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import multiprocessing
import os
import platform
import random
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

import inpaintlib
from inpaintlib.masks import center_mask, center_patch_slice, evaluation_masks, irregular_mask
from inpaintlib.runs import WEIGHTS_FORMAT, load_model

__all__ = [
    "TrainConfig",
    "CEConfig",
    "PConvConfig",
    "PROFILES",
    "make_config",
    "config_from_dict",
    "train",
    "load_model",
    "resolve_device",
    "resolve_amp",
    "StepBatchSampler",
    "cli",
]

CHECKPOINT_FORMAT = "inpaintlib.checkpoint/1"
_REPO_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------


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
    if c.total_steps < 1:
        raise ValueError("the run needs at least one step (steps + finetune_steps >= 1)")


# Settings that may differ when resuming: they change how long or where a run goes, not what it computes.
_RESUMABLE_CHANGES = {
    "steps",
    "finetune_steps",
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


# ---------------------------------------------------------------------------------------------------
# Devices, precision, distributed
# ---------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None picks CUDA, then Apple MPS, then CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    return device


def _cpu_has_bf16() -> bool:
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # private API: absent or failing means "no"
            pass
    return False


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``amp`` on ``device`` (None = full fp32).

    "auto" is bf16 on CUDA GPUs that support it (fp16 with a GradScaler on older ones) and on CPUs
    with native bf16 instructions (avx512_bf16 / AMX), where it halves the step time; fp32 elsewhere.
    """
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("amp='fp16' is for CUDA devices; use 'bf16' or 'off' on CPU/MPS")
        return torch.float16
    if amp != "auto":
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_bf16():
        return torch.bfloat16
    return None


@dataclass
class _Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_pref: str | torch.device | None) -> _Dist:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return _Dist()
    owns = False
    if not dist.is_initialized():
        wants_cuda = resolve_device(device_pref).type == "cuda"
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        owns = True
    return _Dist(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size(), owns)


def _all_ok(flag: bool, device: torch.device, dd: _Dist) -> bool:
    """True only if ``flag`` holds on every process (so all of them skip or step together)."""
    if not dd.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device, dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


# ---------------------------------------------------------------------------------------------------
# Data: a pure function of (seed, step)
# ---------------------------------------------------------------------------------------------------


def _derive_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from a tuple of non-negative integers."""
    a, b = np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint32)
    return ((int(a) << 32) | int(b)) & 0x7FFF_FFFF_FFFF_FFFF


_SALT_EPOCH, _SALT_IMAGE, _SALT_MASK, _SALT_RANK, _SALT_SAMPLE = 1, 2, 3, 4, 5


class StepBatchSampler(Sampler):
    """Yields, for each step in ``[start_step, end_step)``, this process's list of ``(index, sample_seed)``.

    Step ``s`` takes positions ``s*G .. s*G + G - 1`` (``G = batch_size * world_size``) of the endless
    sequence of epoch permutations (epoch ``e`` is ``randperm`` seeded by ``(seed, e)``); process ``r``
    gets positions ``r*batch_size ..`` of that global batch.  Like ``DistributedSampler`` it partitions
    the data between processes, but it can start at any step, which exact resume needs.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start_step: int,
        end_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples < 1:
            raise ValueError("the training set is empty")
        self.n, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start, self.end = start_step, end_step
        self.rank, self.world_size = rank, world_size
        self._perms: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(_derive_seed(self.seed, _SALT_EPOCH, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def batch(self, step: int) -> list[tuple[int, int]]:
        """Keys of this process's part of the global batch of ``step``."""
        g = self.batch_size * self.world_size
        keys = []
        for j in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
            epoch, i = divmod(step * g + j, self.n)
            keys.append((int(self._perm(epoch)[i]), _derive_seed(self.seed, _SALT_SAMPLE, step, j)))
        return keys

    def __iter__(self):
        for step in range(self.start, self.end):
            yield self.batch(step)


@contextlib.contextmanager
def _seeded_global_rng(seed: int):
    """Run a block with torch/numpy/random seeded from ``seed``, then put the previous states back.

    ``PhotoFolder`` draws its crops and flips from the global generators; seeding them per sample
    makes a sample a function of its key, in the main process and in any worker.
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


class _TrainingSamples(Dataset):
    """``(index, seed) -> (image (3,S,S) in [0,1], mask (1,S,S), 1 = valid)``; both drawn from ``seed``."""

    def __init__(self, photos: Dataset, config: TrainConfig) -> None:
        self.photos = photos
        self.size = config.image_size
        self.hole_ratio = getattr(config, "hole_ratio", None)
        self.fixed_mask = (
            center_mask(config.image_size, config.hole_size) if isinstance(config, CEConfig) else None
        )

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        index, seed = key
        with _seeded_global_rng(_derive_seed(seed, _SALT_IMAGE)):
            image = self.photos[index]
        if self.fixed_mask is not None:
            return image, self.fixed_mask
        g = torch.Generator().manual_seed(_derive_seed(seed, _SALT_MASK))
        return image, irregular_mask(self.size, self.size, self.hole_ratio, generator=g)


def _photo_folder(root: str | Path | None, split: str, size: int, train: bool) -> Dataset:
    from inpaintlib.data import PhotoFolder, photo_dir

    # Decoded photos stay in memory when they fit: decoding is ~95 % of a sample's CPU cost
    # (bench/bench_data.py), and the CE run on an H100 waited on its loader ~30 % of the time.
    # Only where workers are forked and so share that memory; spawned ones would each get a copy.
    cache = "auto" if multiprocessing.get_start_method() == "fork" else False
    return PhotoFolder(Path(root) if root is not None else photo_dir(split), size, train=train, cache=cache)


def _default_workers(device: torch.device) -> int:
    """DataLoader workers when not set: none on CPU (they would compete with the training threads);
    on a GPU all but one of this process's share of the cores, up to 16 -- decoding photos is what
    the GPU waits for (measured on an H100: CE at batch 64 waited 54 % of the time with 8 workers,
    9 % with 15)."""
    if device.type != "cuda":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(16, per_process - 1))


def _stack_images(dataset: Dataset, count: int | None) -> Tensor:
    n = len(dataset) if count is None else min(count, len(dataset))
    return torch.stack([dataset[i] for i in range(n)])  # (n, 3, S, S)


# ---------------------------------------------------------------------------------------------------
# The two recipes
# ---------------------------------------------------------------------------------------------------


def _adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    # Fused (one kernel for all tensors) on CUDA and CPU; both are deterministic, so resume stays exact.
    return torch.optim.Adam(list(params), lr=lr, betas=tuple(betas), fused=device.type in ("cuda", "cpu"))


def _load_initial_weights(module: nn.Module, source: str) -> None:
    """Copy the inpainting model of another run into ``module`` (``init_from``: train a stored run
    further, on other data or another machine; optimiser state starts afresh)."""
    from inpaintlib.runs import load_model

    donor = load_model(source)
    if type(donor) is not type(module):
        raise ValueError(f"init_from {source} holds a {type(donor).__name__}, not a {type(module).__name__}")
    try:
        module.load_state_dict(donor.state_dict())
    except RuntimeError as error:
        raise ValueError(
            f"init_from {source}: its weights do not fit this model (same width, layers and bottleneck needed): "
            f"{str(error).splitlines()[0]}"
        ) from None


class _Recipe:
    """What differs between the models: networks, optimizers, one training step, inpainting."""

    columns: tuple[str, ...] = ()  # the loss terms logged in history.csv

    def __init__(self, config: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None, dd: _Dist):
        self.config, self.device, self.amp_dtype, self.dd = config, device, amp_dtype, dd
        self.networks: dict[str, nn.Module] = {}  # plain modules: state dicts, evaluation
        self.locals: dict[str, nn.Module] = {}  # the same, compiled if asked for
        self.runners: dict[str, nn.Module] = {}  # what the training step calls: locals, DDP-wrapped
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        use_cl = config.channels_last and device.type == "cuda"
        self.memory_format = torch.channels_last if use_cl else torch.contiguous_format

    # -- setup helpers
    def _add_network(self, name: str, module: nn.Module) -> None:
        if name == "generator" and self.config.init_from:
            _load_initial_weights(module, self.config.init_from)
        module = module.to(self.device, memory_format=self.memory_format)
        self.networks[name] = module
        self.scalers[name] = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self._wrap(name)

    def _wrap(self, name: str) -> None:
        module = self.networks[name]
        local = self.locals[name] = torch.compile(module) if self.config.compile else module
        if self.dd.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.runners[name] = nn.parallel.DistributedDataParallel(local, device_ids=ids)
        else:
            self.runners[name] = local

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _step(self, name: str, ok: bool) -> None:
        """Backward has run; step the optimizer of ``name`` unless a loss was not finite."""
        if ok:
            self.scalers[name].step(self.optimizers[name])
            self.scalers[name].update()

    def _backward(self, name: str, loss: Tensor) -> None:
        self.scalers[name].scale(loss).backward()

    def _buffers(self) -> list[Tensor]:
        return [b for m in self.networks.values() for b in m.buffers()]

    # -- interface used by the loop
    def phase(self, step: int) -> str:
        return "train"

    def enter_phase(self, phase: str) -> None:
        pass

    def lr(self) -> dict[str, float]:
        return {}

    def model_args(self) -> dict[str, Any]:
        raise NotImplementedError

    def train_step(self, images: Tensor, masks: Tensor) -> tuple[dict[str, Tensor], bool]:
        raise NotImplementedError

    def inpaint(self, images: Tensor, masks: Tensor) -> Tensor:
        raise NotImplementedError

    def set_train(self, mode: bool) -> None:
        for m in self.networks.values():
            m.train(mode)

    def state_dict(self) -> dict[str, Any]:
        return {
            "models": {k: m.state_dict() for k, m in self.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.networks.items():
            m.load_state_dict(state["models"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.scalers.items():
            if state["scalers"].get(k):
                s.load_state_dict(state["scalers"][k])


class _PConvRecipe(_Recipe):
    """Report §3.2 / §4.2: eq. (12) on irregular masks; phase "finetune" freezes the encoder's BN."""

    columns = ("total", "valid", "hole", "perceptual", "style_out", "style_comp", "tv")
    phases = ("train", "finetune")

    def __init__(self, config: PConvConfig, device, amp_dtype, dd):
        super().__init__(config, device, amp_dtype, dd)
        from inpaintlib.losses import PConvLoss, VGG16Features
        from inpaintlib.models import PConvUNet

        self._add_network("generator", PConvUNet(config.image_size, config.layers, config.width))
        features = VGG16Features(weights=config.vgg_weights)
        self.loss = PConvLoss(features, config.loss_weights).to(self.device, memory_format=self.memory_format)
        self.optimizers["generator"] = _adam(self.networks["generator"].parameters(), config.lr, config.betas, device)
        self._phase = "train"

    def model_args(self) -> dict[str, Any]:
        net = self.networks["generator"]
        return {"image_size": net.image_size, "layers": net.layers, "width": net.width}

    def phase(self, step: int) -> str:
        return "train" if step < self.config.steps else "finetune"

    def enter_phase(self, phase: str) -> None:
        if phase == self._phase:
            return
        if phase != "finetune":
            raise ValueError(f"cannot go from phase {self._phase!r} back to {phase!r}")
        from inpaintlib.models import freeze_encoder_batchnorm

        net = self.networks["generator"]
        freeze_encoder_batchnorm(net)
        self._wrap("generator")  # DDP must be rebuilt: its set of parameters to reduce has changed
        params = [p for p in net.parameters() if p.requires_grad]
        self.optimizers["generator"] = _adam(params, self.config.finetune_lr, self.config.betas, self.device)
        self._phase = phase

    def lr(self) -> dict[str, float]:
        return {"lr": self.optimizers["generator"].param_groups[0]["lr"]}

    def train_step(self, images, masks):
        self.optimizers["generator"].zero_grad(set_to_none=True)
        with self.autocast():
            output = self.runners["generator"](images, masks)  # (N, 3, H, W) in [0, 1]
            terms = self.loss(output, images, masks)
        self._backward("generator", terms["total"])
        ok = _all_ok(bool(torch.isfinite(terms["total"])), self.device, self.dd)
        self._step("generator", ok)
        return {k: terms[k].detach() for k in self.columns}, ok

    @torch.no_grad()
    def inpaint(self, images, masks):
        with self.autocast():
            output = self.networks["generator"](images, masks)
        return masks * images + (1 - masks) * output.float().clamp(0, 1)


class _CERecipe(_Recipe):
    """Report §3.1 / §4.1, Fig 1: per step one discriminator update, then one generator update."""

    columns = ("total", "rec", "adv", "d_loss", "d_acc")

    def __init__(self, config: CEConfig, device, amp_dtype, dd):
        super().__init__(config, device, amp_dtype, dd)
        from inpaintlib.losses import context_encoder_discriminator_loss, context_encoder_generator_loss
        from inpaintlib.models import ContextDiscriminator, ContextEncoder

        self.d_loss, self.g_loss = context_encoder_discriminator_loss, context_encoder_generator_loss
        self._add_network("generator", ContextEncoder(config.bottleneck, config.width))
        self._add_network("discriminator", ContextDiscriminator(config.width))
        self.optimizers["generator"] = _adam(self.networks["generator"].parameters(), config.lr_g, config.betas, device)
        self.optimizers["discriminator"] = _adam(
            self.networks["discriminator"].parameters(), config.lr_d, config.betas, device
        )
        self.patch = center_patch_slice(config.image_size, config.patch_size)

    def model_args(self) -> dict[str, Any]:
        net = self.networks["generator"]
        return {"bottleneck": net.bottleneck, "width": net.width}

    def lr(self) -> dict[str, float]:
        return {"lr": self.optimizers["generator"].param_groups[0]["lr"]}

    def train_step(self, images, masks):
        c = self.config
        s = self.patch
        real = images * 2 - 1  # the Context Encoder works in [-1, 1] (report §3.1)
        real_patch = real[:, :, s, s]  # (N, 3, 64, 64)
        G, D = self.runners["generator"], self.runners["discriminator"]
        ones = torch.ones(images.shape[0], device=self.device)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        with self.autocast():
            fake_patch = G(real * masks)  # (N, 3, 64, 64); the hole is filled with 0 = mid grey

        # Discriminator, eq. (4): real and generated patches in separate batches (as DCGAN and
        # Pathak do), each with its own forward/backward pair, which DDP also requires.
        with self.autocast():
            logit_real = D(real_patch)
        self._backward("discriminator", F.binary_cross_entropy_with_logits(logit_real.float(), ones))
        with self.autocast():
            logit_fake = D(fake_patch.detach())
        self._backward("discriminator", F.binary_cross_entropy_with_logits(logit_fake.float(), 1 - ones))
        d_terms = self.d_loss(logit_real.detach(), logit_fake.detach())  # the same two halves, for the log
        ok_d = _all_ok(bool(torch.isfinite(d_terms["total"])), self.device, self.dd)
        self._step("discriminator", ok_d)

        # Generator, eq. (5), with fresh scores from the updated discriminator. The discriminator
        # is called without its DDP wrapper and with frozen parameters: no gradient is needed there.
        d_local = self.locals["discriminator"]
        d_local.requires_grad_(False)
        try:
            with self.autocast():
                g_terms = self.g_loss(
                    fake_patch, real_patch, d_local(fake_patch), c.w_rec, c.w_adv, c.overlap, c.overlap_weight
                )
            self._backward("generator", g_terms["total"])
        finally:
            d_local.requires_grad_(True)
        ok_g = _all_ok(bool(torch.isfinite(g_terms["total"])), self.device, self.dd)
        self._step("generator", ok_g)
        losses = {
            "total": g_terms["total"].detach(),
            "rec": g_terms["rec"].detach(),
            "adv": g_terms["adv"].detach(),
            "d_loss": d_terms["total"],
            "d_acc": d_terms["accuracy"],
        }
        return losses, ok_d and ok_g

    @torch.no_grad()
    def inpaint(self, images, masks):
        s = self.patch
        with self.autocast():
            patch = self.networks["generator"]((images * 2 - 1) * masks)  # (N, 3, 64, 64) in [-1, 1]
        filled = images.clone()
        filled[:, :, s, s] = (patch.float() + 1) / 2
        return masks * images + (1 - masks) * filled.clamp(0, 1)


_RECIPES: dict[str, type[_Recipe]] = {"ce": _CERecipe, "pconv": _PConvRecipe}


# ---------------------------------------------------------------------------------------------------
# Files of the run directory
# ---------------------------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write via a temporary file in the same folder, fsync, then ``os.replace``: readers and a crash
    mid-write see either the old file or the new one, never a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _save_torch(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda f: torch.save(obj, f))


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_gauss),
            "cached": float(np_cached),
        },
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(state["python"])


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _portable(text: str) -> str:
    """Paths inside the repository written relative to it (run directories get committed)."""
    return text.replace(str(_REPO_ROOT) + os.sep, "")


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu} ({torch.get_num_threads()} threads)"


def _environment(device: torch.device, amp_dtype: torch.dtype | None, dd: _Dist) -> dict[str, Any]:
    return {
        "library_version": inpaintlib.__version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": _hardware(device),
        "amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "world_size": dd.world_size,
    }


def _history_header(recipe: _Recipe) -> list[str]:
    return ["step", "epoch", "phase", *recipe.columns, "lr", "img_per_s", "data_wait", "skipped", "seconds"]


def _truncate_history(path: Path, header: list[str], last_step: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they will be logged again)."""
    rows = []
    if path.is_file():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(path, buf.getvalue())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# ---------------------------------------------------------------------------------------------------
# Samples and metrics
# ---------------------------------------------------------------------------------------------------


def _sample_masks(config: TrainConfig, count: int) -> Tensor:
    """Fixed masks for the sample grids: the centre hole (CE) or one mask per hole-ratio bucket, spread
    over the rows from small to large holes (PConv)."""
    if isinstance(config, CEConfig):
        return center_mask(config.image_size, config.hole_size).expand(count, 1, -1, -1).clone()
    masks = [m for _, m in evaluation_masks(config.image_size, per_bucket=1, seed=0)]
    picks = [round(i * (len(masks) - 1) / max(1, count - 1)) for i in range(count)]
    return torch.stack([masks[i] for i in picks])  # (count, 1, S, S)


def _save_grid(images: Tensor, masks: Tensor, composite: Tensor, path: Path) -> None:
    """Rows: one photo each; columns: masked input (holes white) | composite | ground truth (report Fig 7/8)."""
    from PIL import Image

    masked = images * masks + (1 - masks)
    tiles = torch.stack([masked, composite, images], dim=1)  # (n, 3 columns, 3, S, S)
    n, cols, _, s, _ = tiles.shape
    pad = 2
    canvas = torch.ones(3, n * s + (n + 1) * pad, cols * s + (cols + 1) * pad)
    for r in range(n):
        for c in range(cols):
            y, x = pad + r * (s + pad), pad + c * (s + pad)
            canvas[:, y : y + s, x : x + s] = tiles[r, c]
    array = (canvas.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    _atomic_write(path, lambda f: f.write(buf.getvalue()))


def _score(composite: Tensor, target: Tensor, masks: Tensor) -> dict[str, Tensor]:
    """Per-image PSNR, SSIM and hole L1 (x100): the very metrics of :mod:`inpaintlib.evaluate`."""
    from . import evaluate  # imported late: evaluate imports the inference code, which imports this module's peers

    composite, target, masks = composite.float().cpu(), target.float().cpu(), masks.float().cpu()
    return {
        "psnr": evaluate.psnr(composite, target),
        "ssim": evaluate.ssim(composite, target),
        "l1_hole": evaluate.l1_hole(composite, target, masks),
    }


def _evaluate(recipe: _Recipe, config: TrainConfig, images: Tensor, step: int) -> dict[str, Any]:
    """Validation metrics of the composite (BN in eval mode), by hole-ratio bucket for PConv and for
    the centre hole for the Context Encoder (report §4; Liu et al.'s bucketed protocol)."""
    if isinstance(config, CEConfig):
        by_label = {"center": [center_mask(config.image_size, config.hole_size)]}
    else:
        by_label: dict[str, list[Tensor]] = {}
        for label, m in evaluation_masks(config.image_size, per_bucket=config.eval_masks_per_bucket, seed=0):
            by_label.setdefault(label, []).append(m)
    batch = max(8, config.batch_size)
    recipe.set_train(False)
    buckets: dict[str, dict[str, float]] = {}
    every: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "l1_hole": []}
    try:
        for label, masks in by_label.items():
            # image i gets mask i mod len(masks) of the bucket: every photo is scored once per bucket
            pairs = torch.stack([masks[i % len(masks)] for i in range(len(images))])  # (n, 1, S, S)
            scores: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "l1_hole": []}
            for i in range(0, len(images), batch):
                x = images[i : i + batch].to(recipe.device)
                m = pairs[i : i + batch].to(recipe.device)
                for k, v in _score(recipe.inpaint(x, m), x, m).items():
                    scores[k].append(v)
            row = {k: float(torch.cat(v).mean()) for k, v in scores.items()}
            row["n"] = len(images)
            buckets[label] = row
            for k, v in scores.items():
                every[k].extend(v)
    finally:
        recipe.set_train(True)
    overall: dict[str, float] = {k: float(torch.cat(v).mean()) for k, v in every.items()}
    overall["n"] = sum(b["n"] for b in buckets.values())
    return {
        "kind": config.kind,
        "step": step,
        "image_size": config.image_size,
        "num_images": len(images),
        "buckets": buckets,
        "overall": overall,
    }


# ---------------------------------------------------------------------------------------------------
# Run card
# ---------------------------------------------------------------------------------------------------


def _python_call(config: TrainConfig, out_dir: Path) -> str:
    base = make_config(config.kind, config.profile) if config.profile in PROFILES else CONFIGS[config.kind]()
    diff = [
        f"{f.name}={getattr(config, f.name)!r}"
        for f in fields(config)
        if f.name != "profile" and getattr(config, f.name) != getattr(base, f.name)
    ]
    args = ", ".join([repr(config.kind), repr(config.profile), *diff])
    return f'train(make_config({args}), "{out_dir.name}")'


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _write_run_card(
    out_dir: Path, config: TrainConfig, env: dict, state: dict, metrics: dict, n_train: int, n_val: int
) -> None:
    history = out_dir / "history.csv"
    speeds, waits = [], []
    with history.open(newline="") as f:
        for row in csv.DictReader(f):
            with contextlib.suppress(ValueError):
                speeds.append(float(row["img_per_s"]))
                waits.append(float(row["data_wait"]))
    precision = "fp32" if env["amp_dtype"] == "off" else f"{env['amp_dtype']} autocast"
    name = {"ce": "Context Encoder (report §3.1, §4.1)", "pconv": "PConv U-Net (report §3.2, §4.2)"}[config.kind]
    steps = state["step"]
    global_batch = config.batch_size * env["world_size"]
    step_text = f"{steps:,}"
    if isinstance(config, PConvConfig):
        step_text += f" ({min(steps, config.steps):,} train + {max(0, steps - config.steps):,} fine-tune)"
    data = _portable(str(config.data)) if config.data else "data/photos/train (embedded)"
    val = _portable(str(config.val_data)) if config.val_data else "data/photos/val (embedded)"
    lines = [
        f"# Run card: {out_dir.name}",
        "",
        "| | |",
        "|---|---|",
        f"| model | {name} |",
        f"| profile | {config.profile or 'none (explicit settings)'} |",
        f"| hardware | {env['device_name']} |",
        f"| device, precision | {env['device']}, {precision}, {env['world_size']} process(es) |",
        f"| wall time | {_duration(state['seconds'])} (all sessions) |",
        f"| steps | {step_text} |",
        f"| images seen | {steps * global_batch:,} (batch {config.batch_size} x {env['world_size']} process(es)) |",
        f"| image size | {config.image_size} px |",
        f"| training data | {data}: {n_train} photos |",
        f"| validation data | {val}: {n_val} photos ({metrics['num_images']} scored) |",
        f"| throughput | {np.median(speeds) if speeds else float('nan'):.1f} images/s (median of history rows) |",
        f"| data-loader wait | {100 * np.median(waits) if waits else float('nan'):.1f} % of step time (median) |",
        f"| library | inpaintlib {env['library_version']}, commit {env['git_commit'] or 'unknown'}, "
        f"torch {env['torch_version']} |",
        f"| command | `{state['command']}` |",
        "",
        "## Validation metrics (composite vs ground truth, data range 1; `metrics.json`)",
        "",
        "| hole ratio | PSNR (dB) | SSIM | L1 in hole (x100) | images |",
        "|---|---|---|---|---|",
    ]
    for label, row in [*metrics["buckets"].items(), ("all", metrics["overall"])]:
        lines.append(f"| {label} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['l1_hole']:.2f} | {row['n']} |")
    lines += ["", "## Sessions", "", "| from step | to step | wall time | hardware |", "|---|---|---|---|"]
    for s in state["sessions"]:
        lines.append(f"| {s['start_step']} | {s['end_step']} | {_duration(s['seconds'])} | {s['device_name']} |")
    _write_text(out_dir / "RUN.md", "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------


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
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"cannot resume: {ckpt_path} does not exist (start a new run without resume)")
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
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
    recipe = _RECIPES[config.kind](config, dev, amp_dtype, dd)
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
    sessions.append({"start_step": start, "end_step": start, "seconds": 0.0, "device_name": env["device_name"]})

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
    }
    _save_torch(weights, out_dir / "weights.pt")
    val_images = _stack_images(val_photos, config.eval_images)
    metrics = _evaluate(recipe, config, val_images, step)
    _write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    sessions[-1].update(end_step=step, seconds=time.perf_counter() - t_session)
    state = {"step": step, "seconds": seconds(), "sessions": sessions, "command": _portable(command)}
    _write_run_card(out_dir, config, env, state, metrics, len(train_photos), len(val_photos))
    return out_dir


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inpaintlib train",
        description="Train a Context Encoder (ce) or a PConv U-Net (pconv) and write a run directory "
        "(config.json, history.csv, samples/, metrics.json, checkpoint.pt, weights.pt, RUN.md). "
        "Settings not given come from --profile; with --resume they come from the run's checkpoint. "
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
    p.add_argument("--width", type=int, help="channels of the first layer (64 in the report)")
    p.add_argument("--bottleneck", type=int, help="ce only: channels of the bottleneck (4000 in the report)")
    p.add_argument("--init-from", help="start the model from another run's weights (run directory or weights.pt)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar and no messages")
    return p


_FLAG_TO_FIELD = {
    "data": "data",
    "val_data": "val_data",
    "size": "image_size",
    "batch_size": "batch_size",
    "steps": "steps",
    "finetune_steps": "finetune_steps",
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
}


def cli(argv: list[str] | None = None) -> int:
    """``python -m inpaintlib train ...`` (see ``--help``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = {f: getattr(args, a) for a, f in _FLAG_TO_FIELD.items() if getattr(args, a) is not None}
    if args.kind == "ce":
        for flag in ("finetune_steps", "vgg_weights"):
            if flag in overrides:
                parser.error(f"--{flag.replace('_', '-')} applies to pconv only")
    elif "bottleneck" in overrides:
        parser.error("--bottleneck applies to ce only")
    argv = sys.argv[1:] if argv is None else argv
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node={world} -m inpaintlib" if world > 1 else "python -m inpaintlib"
    command = " ".join([launcher, "train", *map(shlex.quote, argv)])
    try:
        if args.resume:
            stored_path = Path(args.out) / "config.json"
            if not stored_path.is_file():
                raise FileNotFoundError(f"cannot resume: {stored_path} does not exist")
            stored = json.loads(stored_path.read_text())
            if stored["kind"] != args.kind:
                raise ValueError(f"{args.out} is a {stored['kind']!r} run, not {args.kind!r}")
            config = config_from_dict({**stored, **overrides})
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
