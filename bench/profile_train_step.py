"""Where a PConv U-Net training step spends its time on a CPU, and what each speed change of issue 17 buys.

    python bench/profile_train_step.py                    # 128 px batch 4 and 256 px batch 2, print
    python bench/profile_train_step.py --write            # ... and replace "## Training step profile" in RESULTS.md
    python bench/profile_train_step.py --sizes 128 --rounds 3

Three parts, all for our step exactly as ``bench/bench_train_step.py`` times it (width 64, HED VGG16 loss,
bf16 autocast where the CPU has bf16 units):

* **by part**: the U-Net's forward + backward (with a trivial loss), the same plus the VGG loss
  (eqs. (8)-(12)), and the whole step with Adam; the differences give each part's share;
* **by operator**: ``torch.profiler``'s self CPU time per ATen operator over a few steps;
* **ablation**: each change switched off on its own (and all of them at once, which is the code before
  the change), timed interleaved in this process.  The switches put back the code that was replaced, as
  it was: a contiguous (NCHW) memory layout on CPU, ``Tensor.mean()`` for the loss means, the Gram matrix
  over an ``(N, C, HW)`` reshape, a decoder that builds its ``(N, C_in, H, W)`` mask, and glibc's default
  allocator (every block over 32 MiB from ``mmap``).

Steps are timed with wall clock and the medians reported; on a shared machine compare the rows of one
run with each other, not with another run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import bench_train_step as bts  # noqa: E402
from results_md import replace_section  # noqa: E402
from inpaintlib import losses  # noqa: E402
from inpaintlib.device import fast_global_flags  # noqa: E402
from inpaintlib.models import pconv_unet  # noqa: E402

SECTION = "## Training step profile (CPU)"


# ----------------------------------------------------------------------------- the replaced code, as it was


def _old_gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    n, c, h, w = feat.shape
    with torch.autocast(device_type=feat.device.type, enabled=False):
        f = feat.float().reshape(n, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def _old_decoder_forward(self, x, mask, skip, skip_mask):
    x = F.interpolate(x, scale_factor=2.0, mode="nearest")
    mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
    n, _, h, w = x.shape
    x = torch.cat([x, skip.to(x.dtype)], dim=1)
    mask = torch.cat([mask.expand(n, self.c_up, h, w), skip_mask.to(mask.dtype).expand(n, self.c_skip, h, w)], dim=1)
    x, mask = self.conv(x, mask)
    if self.bn is not None:
        x = self.bn(x)
    if self.act is not None:
        x = self.act(x)
    return x, mask


@contextlib.contextmanager
def _patched(obj: object, name: str, value: object) -> Iterator[None]:
    before = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, before)


SWITCHES: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "loss means as sum / count": lambda: _patched(losses, "_mean", lambda t: t.mean()),
    "Gram matrix on the channels-last view": lambda: _patched(losses, "gram_matrix", _old_gram_matrix),
    "decoder masks each path (no C_in-channel mask)": lambda: _patched(pconv_unet._DecoderLevel, "forward",
                                                                       _old_decoder_forward),
}
LAYOUT = "channels_last on CPU"
ALLOCATOR = "allocator keeps freed memory (fast_global_flags)"


class Variant:
    """Our step with some changes switched off; ``run()`` takes one timed step."""

    def __init__(self, name: str, size: int, batch: int, off: set[str]) -> None:
        self.name, self.off, self.times = name, off, []
        with self._context():
            self.recipe, _ = bts._our_recipe("pconv", torch.device("cpu"), image_size=size, batch_size=batch,
                                             layers=bts.PCONV_LAYERS[size], width=64, vgg_weights="hed",
                                             channels_last=LAYOUT not in off)
            fmt = self.recipe.memory_format
            self.images = bts.make_images(batch, size, seed=1).contiguous(memory_format=fmt)
            self.masks = bts.make_masks(batch, size, seed=2).contiguous(memory_format=fmt)
            for _ in range(2):
                self.recipe.train_step(self.images, self.masks)

    def _context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(fast_global_flags(ALLOCATOR not in self.off))
        for name, switch in SWITCHES.items():
            if name in self.off:
                stack.enter_context(switch())
        return stack

    def run(self) -> float:
        with self._context():
            start = time.perf_counter()
            self.recipe.train_step(self.images, self.masks)
            elapsed = time.perf_counter() - start
        self.times.append(elapsed)
        return elapsed


# ----------------------------------------------------------------------------- the three parts


def ablation(size: int, batch: int, rounds: int) -> list[tuple[str, float]]:
    changes = [LAYOUT, *SWITCHES, ALLOCATOR]
    variants = [Variant("all changes (today's code)", size, batch, set())]
    variants += [Variant(f"without: {c}", size, batch, {c}) for c in changes]
    variants.append(Variant("none of them (the code before)", size, batch, set(changes)))
    for r in range(rounds):
        for v in variants[r % len(variants):] + variants[:r % len(variants)]:
            v.run()
        print(f"  {size} px round {r + 1}/{rounds}: " + "  ".join(f"{v.times[-1]:.2f}" for v in variants), flush=True)
    return [(v.name, statistics.median(v.times)) for v in variants]


def by_part(size: int, batch: int, rounds: int) -> dict[str, float]:
    """Median seconds of: U-Net fwd+bwd, U-Net + VGG loss fwd+bwd, and the whole step."""
    v = Variant("profile", size, batch, set())
    recipe, net = v.recipe, v.recipe.networks["generator"]

    def unet_only() -> None:
        with recipe.autocast():
            out = net(v.images, v.masks)
        out.float().sum().backward()

    def unet_and_loss() -> None:
        with recipe.autocast():
            terms = recipe.loss(net(v.images, v.masks), v.images, v.masks)
        terms["total"].backward()

    def whole() -> None:
        recipe.train_step(v.images, v.masks)

    parts = {"U-Net": unet_only, "U-Net + loss": unet_and_loss, "step": whole}
    times: dict[str, list[float]] = {k: [] for k in parts}
    with fast_global_flags():
        for _ in range(rounds):
            for name, fn in parts.items():
                net.zero_grad(set_to_none=True)
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(t) for k, t in times.items()}


def by_operator(size: int, batch: int, steps: int = 3, top: int = 12) -> list[tuple[str, float]]:
    from torch.profiler import ProfilerActivity, profile

    v = Variant("profile", size, batch, set())
    with fast_global_flags(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            v.recipe.train_step(v.images, v.masks)
    self_ms = Counter()
    for event in prof.key_averages():
        self_ms[event.key] += event.self_cpu_time_total / 1000 / steps
    total = sum(self_ms.values())
    return [(k, ms) for k, ms in self_ms.most_common(top)] + [("(all operators)", total)]


def compile_effect(size: int, batch: int, rounds: int, minutes: float = 10.0) -> list[tuple[str, float, float, int]]:
    """Eager vs ``torch.compile`` (the generator, as ``--compile`` does; and generator + loss): seconds to the end
    of the first step (compiling, with inductor's on-disk caches off, so it is the cold cost), median s/step
    afterwards, and how many steps fit in ``minutes`` of wall time counting the compile."""
    import torch._inductor.config as inductor

    inductor.fx_graph_cache = False
    rows = []
    for name in ("eager", "compiled generator (--compile)", "compiled generator + loss"):
        torch._dynamo.reset()
        recipe, _ = bts._our_recipe("pconv", torch.device("cpu"), image_size=size, batch_size=batch,
                                    layers=bts.PCONV_LAYERS[size], width=64, vgg_weights="hed",
                                    compile=name != "eager")
        if name.endswith("+ loss"):
            recipe.loss = torch.compile(recipe.loss)
        fmt = recipe.memory_format
        images = bts.make_images(batch, size, seed=1).contiguous(memory_format=fmt)
        masks = bts.make_masks(batch, size, seed=2).contiguous(memory_format=fmt)
        with fast_global_flags():
            start = time.perf_counter()
            recipe.train_step(images, masks)
            first = time.perf_counter() - start
            recipe.train_step(images, masks)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                recipe.train_step(images, masks)
                times.append(time.perf_counter() - start)
        step = statistics.median(times)
        rows.append((name, first, step, int(max(0.0, minutes * 60 - first) / step) + 1))
        print(f"  {size} px {name}: first step {first:.1f} s, then {step:.3f} s/step", flush=True)
    return rows


# ----------------------------------------------------------------------------- report


def render(results: dict[int, dict], rounds: int, threads: int) -> str:
    lines = [
        SECTION,
        "",
        f"Our PConv U-Net step (width 64, HED VGG16 loss, {bts.machine_name(torch.device('cpu'))}), measured "
        f"{_dt.date.today().isoformat()} with torch {torch.__version__}, {threads} threads, {rounds} interleaved "
        "rounds (medians). Command: `python bench/profile_train_step.py --write`.",
        "",
        "**By part** (the U-Net with a trivial loss; with the VGG loss of eqs. (8)-(12); the whole step with Adam):",
        "",
        "| px | batch | U-Net fwd+bwd | VGG loss fwd+bwd | Adam + zero_grad | step |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for size, r in results.items():
        p = r["parts"]
        loss, opt = p["U-Net + loss"] - p["U-Net"], p["step"] - p["U-Net + loss"]
        lines.append(f"| {size} | {r['batch']} | {p['U-Net']:.3f} s ({100 * p['U-Net'] / p['step']:.0f} %) | "
                     f"{loss:.3f} s ({100 * loss / p['step']:.0f} %) | {opt:.3f} s ({100 * opt / p['step']:.0f} %) | "
                     f"{p['step']:.3f} s |")
    lines += ["", "**By operator** (self CPU time per step, torch.profiler, 3 steps):", ""]
    sizes = list(results)
    lines.append("| operator | " + " | ".join(f"{s} px ms/step" for s in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    names: list[str] = []
    for size in sizes:
        names += [n for n, _ in results[size]["ops"] if n not in names]
    for name in names:
        cells = []
        for size in sizes:
            ms = dict(results[size]["ops"]).get(name)
            cells.append("" if ms is None else f"{ms:.1f}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "**Ablation** (each change switched off on its own; median s/step; slow-down = time / today's):", ""]
    lines.append("| variant | " + " | ".join(f"{s} px s/step (slow-down)" for s in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    for i, (name, _) in enumerate(results[sizes[0]]["ablation"]):
        cells = []
        for size in sizes:
            rows = results[size]["ablation"]
            cells.append(f"{rows[i][1]:.3f} ({rows[i][1] / rows[0][1]:.2f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "**torch.compile** (cold compile: inductor's caches off; steps in a 10-minute run, compile included):", ""]
    lines.append("| px | variant | first step (s) | s/step after | steps in 10 min |")
    lines.append("|---|---|---:|---:|---:|")
    for size in sizes:
        for name, first, step, steps in results[size]["compile"]:
            lines.append(f"| {size} | {name} | {first:.1f} | {step:.3f} | {steps:,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="128,256", help="image sizes, comma-separated (default 128,256)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--write", action="store_true", help="replace the section in bench/RESULTS.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bts.ensure_vgg_weights()
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        batch = bts.DEFAULT_PCONV_BATCH[size]
        torch.manual_seed(0)
        results[size] = {"batch": batch, "parts": by_part(size, batch, args.rounds), "ops": by_operator(size, batch),
                         "ablation": ablation(size, batch, args.rounds),
                         "compile": compile_effect(size, batch, args.rounds)}
    text = render(results, args.rounds, torch.get_num_threads())
    print(text)
    if args.write:
        replace_section(SECTION, text)
        print(f"wrote {bts.RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
