"""Forward + backward timing: inpaintlib's PartialConv2d against NVIDIA's formulation.

    python bench/bench_partial_conv.py                  # CPU, prints a markdown table
    python bench/bench_partial_conv.py --write          # ... and records it in bench/RESULTS.md
    python bench/bench_partial_conv.py --device cuda --write

The comparison layer, ``NvidiaStylePartialConv2d`` below, is written here from the
description of NVIDIA/partialconv's ``PartialConv2d`` (Liu et al. 2018): with a
per-channel mask ("multi_channel") the valid counts come from an all-ones
``(C_out, C_in, k, k)`` convolution; the ratio is ``window / (count + 1e-8)`` times the
clamped update mask; the bias is removed, the output rescaled, the bias added back and the
result multiplied by the update mask.  With a shared ``(N, 1, H, W)`` mask it takes NVIDIA's
single-channel path (``1 x 1 x k x k`` ones kernel, window ``k * k``).  inpaintlib's layer is
timed twice: as built by default, and with ``check_mask_values=False`` (no 0/1 value check).

Timing follows the recipe in the project NOTES ("Timing on these machines"): the cases are
interleaved over several rounds in one process, every timed step is bracketed by a small
matmul speed probe, and steps whose probes ran at < 0.75x the best probe are dropped from
the "clean" median.  Plain median and minimum over all steps are reported as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inpaintlib.layers import PartialConv2d  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## PartialConv2d"
PROBE_KEEP = 0.75  # keep steps whose probe speed is >= this fraction of the best probe
OURS = "inpaintlib"
UNCHECKED = "inpaintlib, check_mask_values=False"


class NvidiaStylePartialConv2d(nn.Conv2d):
    """NVIDIA's partial-convolution formulation, re-written for comparison only.

    It recounts the mask on every call, as NVIDIA's layer does whenever a mask is passed
    (its cached-ratio shortcut only applies to calls without a mask).
    """

    def __init__(self, *args, multi_channel: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.multi_channel = multi_channel
        kh, kw = self.kernel_size
        if multi_channel:
            ones = torch.ones(self.out_channels, self.in_channels, kh, kw)
        else:
            ones = torch.ones(1, 1, kh, kw)
        self.register_buffer("weight_mask_updater", ones, persistent=False)
        self.slide_winsize = ones.shape[1] * ones.shape[2] * ones.shape[3]

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        with torch.no_grad():
            update_mask = F.conv2d(
                mask, self.weight_mask_updater, None, self.stride, self.padding, self.dilation, 1
            )
            mask_ratio = self.slide_winsize / (update_mask + 1e-8)
            update_mask = torch.clamp(update_mask, 0, 1)
            mask_ratio = torch.mul(mask_ratio, update_mask)
        raw_out = super().forward(torch.mul(x, mask))
        if self.bias is not None:
            bias_view = self.bias.view(1, self.out_channels, 1, 1)
            output = torch.mul(raw_out - bias_view, mask_ratio) + bias_view
            output = torch.mul(output, update_mask)
        else:
            output = torch.mul(raw_out, mask_ratio)
        return output, update_mask


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class Timer:
    """Seconds for a callable: wall clock on CPU, CUDA events on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        n = 512 if not self.cuda else 2048
        self.a = torch.randn(n, n, device=device)
        self.b = torch.randn(n, n, device=device)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def probe(self) -> float:
        """Seconds for one small matmul: a speed gauge for the machine right now."""
        return self.time(lambda: torch.mm(self.a, self.b))


def make_cases(shape: tuple[int, int, int, int], k: int, device: torch.device, seed: int):
    """Both layers with equal weights, and inputs for a per-channel and a shared mask."""
    n, c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    ours = PartialConv2d(c, c, k, padding=k // 2)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(ours.weight.shape, generator=g) * 0.05)
        ours.bias.copy_(torch.randn(ours.bias.shape, generator=g))
    unchecked = PartialConv2d(c, c, k, padding=k // 2, check_mask_values=False)
    nv_multi = NvidiaStylePartialConv2d(c, c, k, padding=k // 2, multi_channel=True)
    nv_single = NvidiaStylePartialConv2d(c, c, k, padding=k // 2, multi_channel=False)
    for layer in (unchecked, nv_multi, nv_single):
        layer.load_state_dict(ours.state_dict())
    ours, unchecked, nv_multi, nv_single = (m.to(device) for m in (ours, unchecked, nv_multi, nv_single))

    x = torch.randn(shape, generator=g).to(device).requires_grad_(True)
    # Holes of several sizes, so that some windows are partly and some entirely in a hole.
    shared = (torch.rand(n, 1, h // 8, w // 8, generator=g) > 0.4).float()
    shared = F.interpolate(shared, size=(h, w), mode="nearest").to(device)
    per_channel = (torch.rand(n, c, h, w, generator=g) > 0.3).float().to(device) * shared
    grad_out = torch.randn(n, c, h, w, generator=g).to(device)
    return {
        f"per-channel (N,{c},H,W)": {
            "NVIDIA-style": (nv_multi, per_channel),
            OURS: (ours, per_channel),
            UNCHECKED: (unchecked, per_channel),
        },
        "shared (N,1,H,W)": {
            "NVIDIA-style": (nv_single, shared),
            OURS: (ours, shared),
            UNCHECKED: (unchecked, shared),
        },
    }, x, grad_out


def check_equal(cases: dict, x: Tensor) -> None:
    """Both implementations must agree on outputs, masks and gradients before timing."""
    for mask_name, impls in cases.items():
        results = {}
        for impl, (layer, mask) in sorted(impls.items(), key=lambda kv: kv[0] != "NVIDIA-style"):
            layer.zero_grad(set_to_none=True)
            x.grad = None
            y, new_mask = layer(x, mask)
            y.square().mean().backward()
            grads = (x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone())
            results[impl] = (y.detach(), new_mask[:, :1], *grads)
        reference = results.pop("NVIDIA-style")
        for impl, result in results.items():
            for name, a, b in zip(("y", "new_mask", "x.grad", "weight.grad", "bias.grad"), result, reference):
                scale = b.abs().max().item() + 1e-12
                if not torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale):
                    raise SystemExit(
                        f"{mask_name}, {impl}: {name} differs from NVIDIA-style, "
                        f"max |diff| = {(a - b).abs().max().item():.3g}"
                    )
        print(f"  {mask_name}: outputs, masks and gradients agree with NVIDIA-style")
    x.grad = None


def step(layer: nn.Module, x: Tensor, mask: Tensor, grad_out: Tensor) -> None:
    y, _ = layer(x, mask)
    y.backward(grad_out)


def run(args: argparse.Namespace) -> tuple[dict, dict]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    cases, x, grad_out = make_cases(shape, args.kernel, device, args.seed)
    check_equal(cases, x)
    timer = Timer(device)
    keys = [(m, i) for m in cases for i in cases[m]]
    for key in keys * args.warmup:
        layer, mask = cases[key[0]][key[1]]
        step(layer, x, mask, grad_out)
    timer.sync()

    records: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in keys}
    rng = random.Random(args.seed)
    for r in range(args.rounds):
        order = keys[:]
        rng.shuffle(order)
        for key in order:
            layer, mask = cases[key[0]][key[1]]
            for _ in range(args.steps):
                layer.zero_grad(set_to_none=True)
                x.grad = None
                before = timer.probe()
                seconds = timer.time(lambda: step(layer, x, mask, grad_out))
                after = timer.probe()
                records[key].append((seconds, max(before, after)))
        print(f"  round {r + 1}/{args.rounds} done", end="\r", flush=True)
    print()

    best_probe = min(p for rec in records.values() for _, p in rec)
    stats = {}
    for key, rec in records.items():
        clean = [s for s, p in rec if best_probe / p >= PROBE_KEEP]
        times = [s for s, _ in rec]
        stats[key] = {
            "clean": statistics.median(clean) if clean else float("nan"),
            "median": statistics.median(times),
            "min": min(times),
            "kept": len(clean),
            "total": len(times),
        }
    info = {
        "date": dt.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": shape,
        "k": args.kernel,
        "rounds": args.rounds,
        "steps": args.steps,
        "masks": list(cases),
    }
    return stats, info


def table(stats: dict, info: dict) -> str:
    def ms(seconds: float) -> str:
        if seconds != seconds:  # NaN: no clean steps
            return "n/a"
        return f"{1000 * seconds:.2f}" if seconds < 0.01 else f"{1000 * seconds:.1f}"

    def ratio(a: float, b: float) -> str:
        return "n/a" if a != a or b != b else f"{a / b:.2f}x"

    lines = [
        "| mask | implementation | clean median (ms) | plain median (ms) | min (ms) | steps kept "
        "| speed-up (clean / plain / min) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for mask_name in info["masks"]:
        nv = stats[(mask_name, "NVIDIA-style")]
        for impl in ("NVIDIA-style", OURS, UNCHECKED):
            s = stats[(mask_name, impl)]
            speedup = ""
            if impl != "NVIDIA-style":
                speedup = " / ".join(ratio(nv[k], s[k]) for k in ("clean", "median", "min"))
            lines.append(
                f"| {mask_name} | {impl} | {ms(s['clean'])} | {ms(s['median'])} | {ms(s['min'])} "
                f"| {s['kept']}/{s['total']} | {speedup} |"
            )
    return "\n".join(lines)


def subsection(stats: dict, info: dict, device_type: str, command: str) -> str:
    n, c, h, w = info["shape"]
    where = (
        "a shared 2-core CPU machine (other jobs ran at the same time, hence the probe filtering)"
        if device_type == "cpu"
        else "one GPU (CUDA events, synchronised)"
    )
    return "\n".join(
        [
            subsection_title(device_type, info["shape"], info["threads"]),
            "",
            f"Forward + backward of one layer, x = ({n}, {c}, {h}, {w}) fp32 with gradient, "
            f"{c} -> {c} channels, k = {info['k']}, stride 1, padding {info['k'] // 2}, bias.",
            f"Measured {info['date']} on {where}: {info['device']}, torch {info['torch']}, "
            f"{plural(info['threads'], 'thread')}; "
            f"{info['rounds']} interleaved rounds x {info['steps']} steps per case, "
            f"clean = steps whose matmul probes ran at >= {PROBE_KEEP}x the best probe.",
            f"Command: `{command}`",
            "",
            table(stats, info),
            "",
        ]
    )


def subsection_title(device_type: str, shape, threads: int) -> str:
    title = f"### {device_type.upper()}, x = ({', '.join(map(str, shape))})"
    return title + (f", {plural(threads, 'thread')}" if device_type == "cpu" else "")


def write_results(text: str, title: str, path: Path = RESULTS) -> None:
    """Put ``text`` in place of the "### title" subsection of "## PartialConv2d", keeping the rest."""
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = content.splitlines()
    intro = [
        SECTION,
        "",
        "`inpaintlib.layers.PartialConv2d` against NVIDIA's formulation of the same layer",
        "(re-written in `bench/bench_partial_conv.py`); outputs and gradients are checked equal first.",
        "Speed-up = NVIDIA-style time / inpaintlib time. `check_mask_values=False` skips the check",
        "that a float mask holds only 0/1 (a pass over the mask, and a host sync on a GPU); a model",
        "that validates its input mask once can build its inner layers that way.",
        "",
    ]
    if SECTION not in lines:
        lines = lines + [""] + intro
    start = lines.index(SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    sub = title
    if sub in section:
        s = section.index(sub)
        e = next((i for i in range(s + 1, len(section)) if section[i].startswith("### ")), len(section))
        section = section[:s] + text.splitlines() + section[e:]
    else:
        while section and not section[-1].strip():
            section.pop()
        section = section + [""] + text.splitlines()
    while section and not section[-1].strip():
        section.pop()
    after = lines[end:]
    out = lines[:start] + section + ([""] + after if after else [])
    path.write_text("\n".join(out).rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--shape", type=int, nargs=4, default=[4, 64, 128, 128], metavar=("N", "C", "H", "W"))
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds over all cases")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per case first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"record the table in {RESULTS.name}")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda given but torch.cuda.is_available() is False")

    stats, info = run(args)
    device_type = torch.device(args.device).type
    print(f"{info['device']}, torch {info['torch']}, {plural(info['threads'], 'thread')}, {info['date']}")
    print(table(stats, info))
    if args.write:
        command = "python bench/bench_partial_conv.py " + " ".join(argv if argv is not None else sys.argv[1:])
        title = subsection_title(device_type, info["shape"], info["threads"])
        write_results(subsection(stats, info, device_type, command.strip()), title)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
