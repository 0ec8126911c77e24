"""Time one training sample from the embedded photos: decoded from disk vs from PhotoFolder's cache.

Usage: python bench/bench_data.py [--size 128] [--samples 300] [--write]

The Context Encoder run on an H100 (data/runs/ce/RUN.md) waited on its DataLoader ~30 % of the
time at ~2,200 images/s with 9 workers: each worker must deliver a sample every ~4 ms. This measures
what one worker spends per sample (one thread, as in a DataLoader worker), interleaving the two
cases over rounds so a slow phase of the machine hits both alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import time
from pathlib import Path

import torch

from inpaintlib.data import PhotoFolder, photo_dir

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## Data loading"


def per_sample_ms(dataset: PhotoFolder, indices: list[int]) -> float:
    start = time.perf_counter()
    for i in indices:
        dataset[i]
    return 1000 * (time.perf_counter() - start) / len(indices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="crop side (128: the Context Encoder's)")
    parser.add_argument("--samples", type=int, default=300, help="samples per round and case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help=f"replace the '{HEADING}' section of RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    start = time.perf_counter()
    cached = PhotoFolder(photo_dir("train"), args.size, train=True, cache=True)
    fill_s = time.perf_counter() - start
    disk = PhotoFolder(photo_dir("train"), args.size, train=True, cache=False)
    megabytes = sum(p.nbytes for p in cached._pixels) / 2**20
    indices = torch.randint(len(disk), (args.samples,)).tolist()
    times: dict[str, list[float]] = {"from disk (decode each time)": [], "cached decoded photos": []}
    for _ in range(args.rounds):
        times["from disk (decode each time)"].append(per_sample_ms(disk, indices))
        times["cached decoded photos"].append(per_sample_ms(cached, indices))

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    lines = [
        HEADING,
        "",
        f"One training sample ({args.size} px random crop + flip of an embedded photo, one thread as in a DataLoader "
        f"worker), {args.rounds} interleaved rounds of {args.samples} samples. Measured {dt.date.today()} on {cpu}, "
        f"torch {torch.__version__}. Command: `python bench/bench_data.py --write`.",
        "",
        "| case | median ms/sample | min ms/sample | samples/s per worker |",
        "|---|---:|---:|---:|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.2f} | {min(values):.2f} | {1000 / median:,.0f} |")
    speedup = statistics.median(times["from disk (decode each time)"]) / statistics.median(times["cached decoded photos"])
    lines += [
        "",
        f"Cache: {len(cached)} photos, {megabytes:.0f} MiB decoded, filled in {fill_s:.1f} s; speed-up {speedup:.1f}x per "
        "sample. The engine caches automatically (`PhotoFolder(cache=\"auto\")`, up to 2 GiB) where workers are forked.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        old = RESULTS.read_text()
        if HEADING in old:
            head, rest = old.split(HEADING, 1)
            tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
            old = head + tail.lstrip("\n")
        RESULTS.write_text(old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
