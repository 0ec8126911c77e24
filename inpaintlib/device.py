"""Devices, mixed precision, the process group ``torchrun`` describes (DistributedDataParallel), and the
process-wide torch speed flags -- which only the command line (or ``train(..., config.global_flags=True)``)
sets, and always puts back.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


def cpu_has_bf16() -> bool:
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
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

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


def setup_distributed(device_pref: str | torch.device | None) -> Distributed:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return Distributed()
    owns = False
    if not dist.is_initialized():
        wants_cuda = resolve_device(device_pref).type == "cuda"
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        owns = True
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size(), owns)


def all_ok(flag: bool, device: torch.device, dd: Distributed) -> bool:
    """True only if ``flag`` holds on every process (so all of them skip or step together)."""
    if not dd.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device, dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


# glibc's mallopt parameters (malloc.h) and their defaults.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_MALLOC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


def _mallopt(settings: dict[int, int]) -> bool:
    """Set glibc malloc parameters; False (and nothing set) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all([mallopt(param, value) == 1 for param, value in settings.items()])  # a list: try every one


@contextlib.contextmanager
def fast_global_flags(enabled: bool = True) -> Iterator[None]:
    """Process-wide speed switches for the block, then the previous settings back.

    * CUDA: TF32 matrix products and cuDNN autotuning.
    * CPU (glibc): freed memory stays in the heap for the next step.  By default glibc hands every
      block over 32 MiB (a 256 px batch's activations) to ``mmap`` and returns it on ``free``, so each
      training step page-faults its largest tensors in afresh; measured in bench/RESULTS.md.

    These are process-wide: a library call must not flip them behind a notebook's back, so the
    training CLI turns them on around its run and ``train()`` only when ``config.global_flags`` asks.
    """
    switches = [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"),
                (torch.backends.cudnn, "benchmark")]
    before = [getattr(obj, name) for obj, name in switches]
    try:
        if enabled:
            for obj, name in switches:
                setattr(obj, name, True)
            _mallopt({_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1})
        yield
    finally:
        for (obj, name), value in zip(switches, before):
            setattr(obj, name, value)
        if enabled:
            _mallopt(_MALLOC_DEFAULTS)  # glibc's defaults (a no-op elsewhere)


def process_device(device: str | torch.device | None, dist: Distributed) -> torch.device:
    """The device this process trains on: under torchrun, the GPU of its local rank."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dist.enabled:
            dev = torch.device("cuda", dist.local_rank)
        if dev.index is not None:
            torch.cuda.set_device(dev)
    return dev
