"""How fast one WebAssembly thread convolves: single 3x3 convolutions in onnxruntime-web, run by Node.js.

The live demo's network is almost all convolutions (``bench/bench_live_demo.py``), so the rate of one convolution
on one WebAssembly thread bounds the whole fill: at R GFLOP/s, a network of G GFLOP cannot take less than G / R
seconds. This script exports four 3x3 convolutions the size of the U-Net's skip-connection halves (32 channels at
128x128 down to 256 at 16x16, 0.30 GFLOP each), runs each in the same onnxruntime-web the book ships
(``node_modules/onnxruntime-web``, one thread, SIMD), and prints the median time and rate of 15 runs.

    .venv/bin/python bench/bench_wasm_conv.py      # needs node and `npm ci` (the book's runtime)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(32, 128), (64, 64), (128, 32), (256, 16)]  # (channels in = out, side)

RUNNER = """
import * as ort from %(ort)s;
import fs from 'fs';
ort.env.wasm.numThreads = 1;
const out = [];
for (const [path, c, side] of %(cases)s) {
  const s = await ort.InferenceSession.create(fs.readFileSync(path), {executionProviders: ['wasm']});
  const x = new ort.Tensor('float32', new Float32Array(c * side * side).fill(0.5), [1, c, side, side]);
  for (let i = 0; i < 3; i++) await s.run({x});
  const t = [];
  for (let i = 0; i < 15; i++) { const t0 = performance.now(); await s.run({x}); t.push(performance.now() - t0); }
  t.sort((a, b) => a - b);
  out.push(t[7]);
}
console.log(JSON.stringify(out));
"""


class _Conv(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(channels, channels, 3, 3) * 0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=1)


def main() -> int:
    runtime = REPO / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.mjs"
    if shutil.which("node") is None or not runtime.is_file():
        sys.exit("needs node and onnxruntime-web: run `npm ci --ignore-scripts` in the repository")
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for channels, side in SHAPES:
            path = Path(tmp) / f"conv_{channels}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(_Conv(channels), (torch.rand(1, channels, side, side),), str(path), dynamo=True,
                                  opset_version=20, input_names=["x"], external_data=False, verbose=False)
            cases.append([str(path), channels, side])
        script = Path(tmp) / "run.mjs"
        script.write_text(RUNNER % {"ort": json.dumps(str(runtime)), "cases": json.dumps(cases)}, encoding="utf-8")
        times = json.loads(subprocess.run(["node", str(script)], capture_output=True, text=True, check=True).stdout)
    print("| convolution (3x3, C -> C) | GFLOP | ms, median of 15 | GFLOP/s |")
    print("|---|---:|---:|---:|")
    for (channels, side), ms in zip(SHAPES, times):
        gflop = 2 * channels * channels * 9 * side * side / 1e9
        print(f"| {channels} channels at {side}x{side} | {gflop:.2f} | {ms:.1f} | {gflop / ms * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
