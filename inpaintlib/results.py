"""The tables of an evaluation: per-pair rows, means per method and hole-ratio bucket, comparisons.

:func:`inpaintlib.evaluate.evaluate` scores one row per image x mask x method (:data:`ROW_FIELDS`);
this module averages them per method and bucket (:func:`summarize`), writes and reads them as
``metrics.csv`` / ``summary.csv`` / ``summary.md`` (the stored ``data/runs/*/evaluation`` folders), and
answers the question of chapter 5 -- does a network beat the classical methods, bucket by
bucket (:func:`against_classical`), and by how much pair by pair (:func:`paired_margin`)?
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from inpaintlib.inpainters import LABELS
from inpaintlib.masks import bucket_sort_key
from inpaintlib.metrics import METRICS
from inpaintlib.rundir import LOCK_NAME, check_not_dangling, write_text, writer_lock

__all__ = [
    "ROW_FIELDS",
    "summarize",
    "read_summary",
    "read_metrics",
    "against_classical",
    "paired_margin",
    "format_against_classical",
    "lead_margins",
    "describe_margins",
    "format_steps",
    "summary_markdown",
    "write_metrics_csv",
    "write_summary",
    "EVALUATION_MARKER",
    "OUTPUT_NAMES",
    "claimed_output_folder",
]

ROW_FIELDS = ("file", "mask", "hole_ratio", "bucket", "method", "psnr", "ssim", "l1_hole", "seconds")


def summarize(rows: Sequence[Mapping]) -> list[dict]:
    """Mean of each metric (and of seconds per image) per method x bucket, then per method over "all".

    Each summary row: method, bucket, n, hole_ratio (mean), psnr, ssim, l1_hole, [lpips], seconds.
    Methods keep their first-seen order; buckets follow the order of :data:`masks.BUCKETS`.
    """
    if not rows:
        return []
    metrics = [k for k in (*METRICS, "lpips") if k in rows[0]]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    buckets = sorted({r["bucket"] for r in rows}, key=bucket_sort_key)
    out = []
    for method in methods:
        for bucket in [*buckets, "all"]:
            sel = [r for r in rows if r["method"] == method and (bucket == "all" or r["bucket"] == bucket)]
            if not sel:
                continue
            entry = {"method": method, "bucket": bucket, "n": len(sel)}
            for key in ("hole_ratio", *metrics, "seconds"):
                entry[key] = sum(float(r[key]) for r in sel) / len(sel)
            out.append(entry)
    return out


def read_summary(path: str | Path) -> list[dict]:
    """The rows of a summary.csv written by :func:`write_summary`, numbers as numbers."""
    return _read_table(path, "evaluation summary", text_fields=("method", "bucket"))


def _read_table(path: str | Path, what: str, text_fields: Sequence[str]) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}; write one with python -m inpaintlib evaluate ... --out")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k not in text_fields:
                r[k] = int(v) if k == "n" else float(v)
    return rows


ARTEFACT_KINDS = ("checkerboard", "laplacian")


def read_artefacts(path: str | Path) -> list[dict]:
    """The rows of an ``evaluation/artefacts.csv`` (``bench/artefact_peaks.py --write``): per pair, the
    worst square's artefact ratios (:func:`inpaintlib.metrics.artefact_peaks`); NaN where no square qualifies."""
    return _read_table(path, "artefact table", text_fields=("file", "mask", "bucket", "method"))


def artefact_peak_table(rows: Sequence[Mapping], kind: str = "checkerboard", above: float = 2.0) -> str:
    """Markdown: per method and bucket, the median ``<kind>_peak`` over pairs and how many pairs exceed ``above``."""
    buckets = sorted({r["bucket"] for r in rows}, key=bucket_sort_key)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["| method | " + " | ".join(buckets) + " |", "|---|" + "---:|" * len(buckets)]
    for m in methods:
        cells = []
        for b in buckets:
            vals = [float(r[f"{kind}_peak"]) for r in rows if r["method"] == m and r["bucket"] == b]
            vals = [v for v in vals if v == v]  # NaN: the hole fills no square by half
            cells.append(f"{float(np.median(vals)):.2f} ({sum(v > above for v in vals)}/{len(vals)})" if vals else "–")
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def median_peak_by_step(rows: Sequence[Mapping], kind: str = "checkerboard") -> dict[int, float]:
    """Training step -> median ``<kind>_peak`` over the sample rows of ``artefacts_over_training.csv``."""
    steps = sorted({int(r["step"]) for r in rows})
    return {s: float(np.nanmedian([float(r[f"{kind}_peak"]) for r in rows if int(r["step"]) == s])) for s in steps}


def against_classical(
    summary: Sequence[Mapping], method: str = "pconv", others: Sequence[str] = ("telea", "ns", "biharmonic")
) -> list[dict]:
    """Per bucket: does ``method`` beat every one of ``others`` on mean PSNR and on mean hole L1?

    Each row: bucket, psnr, best_psnr (value, method), beats_psnr, l1_hole, best_l1 (value, method),
    beats_l1 -- "best" among ``others``. Buckets where ``method`` or any of ``others`` is missing are left out.
    """
    cell = {(s["method"], s["bucket"]): s for s in summary}
    out = []
    for bucket in dict.fromkeys(s["bucket"] for s in summary):
        if (method, bucket) not in cell or any((o, bucket) not in cell for o in others):
            continue
        ours, rivals = cell[(method, bucket)], [cell[(o, bucket)] for o in others]
        top_psnr = max(rivals, key=lambda r: r["psnr"])
        top_l1 = min(rivals, key=lambda r: r["l1_hole"])
        out.append({
            "bucket": bucket,
            "psnr": ours["psnr"], "best_psnr": (top_psnr["psnr"], top_psnr["method"]),
            "beats_psnr": ours["psnr"] > top_psnr["psnr"],
            "l1_hole": ours["l1_hole"], "best_l1": (top_l1["l1_hole"], top_l1["method"]),
            "beats_l1": ours["l1_hole"] < top_l1["l1_hole"],
        })  # fmt: skip
    return out


def read_metrics(path: str | Path) -> list[dict]:
    """The per-pair rows of a metrics.csv written by :func:`write_metrics_csv`, numbers as numbers."""
    return _read_table(path, "per-pair metrics", text_fields=("file", "mask", "bucket", "method"))


def paired_margin(rows: Sequence[Mapping], bucket: str, metric: str, method: str, rival: str) -> dict:
    """How far ``method`` leads ``rival`` on one bucket, pair by pair (the same photo and mask for both).

    Returns ``{"mean", "se", "better", "n"}``: the mean of the per-pair differences (method - rival for
    PSNR and SSIM, rival - method for hole L1, so positive always means ``method`` is better), its
    standard error, and on how many of the ``n`` pairs ``method`` is better. A mean lead smaller than
    about two standard errors is a tie on this many photos.
    """
    values = {m: {(r["file"], r["mask"]): float(r[metric]) for r in rows if r["bucket"] == bucket and r["method"] == m}
              for m in (method, rival)}
    keys = sorted(values[method].keys() & values[rival].keys())
    if len(keys) < 2:
        raise ValueError(f"bucket {bucket!r} has {len(keys)} pair(s) scored by both {method!r} and {rival!r}; need 2")
    sign = -1.0 if metric == "l1_hole" else 1.0
    d = sign * np.array([values[method][k] - values[rival][k] for k in keys])
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "better": int((d > 0).sum()),
            "n": len(d)}


def format_leads(rows: Sequence[Mapping], table: Sequence[Mapping], method: str = "pconv") -> str:
    """For each bucket of :func:`against_classical`'s ``table``: ``method``'s lead over the best classical
    method of that bucket, mean ± standard error over the bucket's pairs (:func:`paired_margin` on the
    per-pair ``rows`` of metrics.csv), for PSNR and hole L1, and on how many pairs its hole L1 is better.
    A text table of at most 76 columns; positive always means ``method`` is better."""
    lines = ["lead over the best classical method (mean ± SE over the bucket's pairs):",
             f"{'bucket':>8} | {'PSNR (dB)':<13} {'vs':<10} | {'hole L1 x100':<13} {'vs':<10} | L1 better"]
    for t in table:
        if t["bucket"] == "all":
            continue
        psnr = paired_margin(rows, t["bucket"], "psnr", method, t["best_psnr"][1])
        l1 = paired_margin(rows, t["bucket"], "l1_hole", method, t["best_l1"][1])
        lines.append(f"{t['bucket']:>8} | {psnr['mean']:+.2f} ± {psnr['se']:.2f}  {t['best_psnr'][1]:<10} | "
                     f"{l1['mean']:+.2f} ± {l1['se']:.2f}  {t['best_l1'][1]:<10} | {l1['better']}/{l1['n']}")
    return "\n".join(lines)


def lead_margins(rows: Sequence[Mapping], table: Sequence[Mapping], method: str = "pconv") -> list[dict]:
    """Every lead of :func:`format_leads`, as data: one dict per bucket and metric (psnr, l1_hole) with
    bucket, metric, rival and :func:`paired_margin`'s mean, se, better and n, plus ``ratio`` = mean / se."""
    out = []
    for t in table:
        if t["bucket"] == "all":
            continue
        for metric, best in (("psnr", "best_psnr"), ("l1_hole", "best_l1")):
            m = paired_margin(rows, t["bucket"], metric, method, t[best][1])
            out.append({"bucket": t["bucket"], "metric": metric, "rival": t[best][1], **m,
                        "ratio": m["mean"] / m["se"] if m["se"] > 0 else float("inf")})
    return out


def describe_margins(margins: Sequence[Mapping], name: str = "the network") -> str:
    """One computed sentence on how firm the leads of :func:`lead_margins` are: in how many cells the
    network leads, its weakest cell in standard errors, and which margins are smaller than one standard
    error. The book prints this sentence instead of typing a statement about standard errors (issue 25)."""
    unit = {"psnr": ("PSNR", " dB"), "l1_hole": ("hole L1", "")}

    def cell(m: Mapping) -> str:
        label, suffix = unit[m["metric"]]
        return f"{m['bucket']} {label} {m['mean']:+.2f} ± {m['se']:.2f}{suffix}"

    low = min(margins, key=lambda m: m["ratio"])
    within = [m for m in margins if abs(m["mean"]) < m["se"]]
    ahead = sum(m["mean"] > 0 for m in margins)
    text = f"{name} leads in {ahead} of {len(margins)} bucket x metric cells; "
    if low["mean"] > 0:
        text += f"every lead is at least {low['ratio']:.1f} standard errors (smallest: {cell(low)}); "
    else:
        text += f"its weakest cell is {cell(low)}; "
    text += f"{len(within)} of {len(margins)} margins are smaller than one standard error"
    return text + (" (" + ", ".join(cell(m) for m in within) + ")." if within else ".")


def format_steps(steps: Sequence[Mapping], sets: Mapping[str, str],
                 others: Sequence[str] = ("telea", "ns", "biharmonic")) -> str:
    """What each step of a line of runs bought, as a text table of at most 76 columns.

    ``steps``: dicts with ``label``, ``run`` (a run folder), ``method`` (its name in the summaries) and
    optionally ``folders`` ({set: evaluation folder} where it differs from ``sets``). ``sets``: {set label:
    evaluation folder}. For every step and set: mean PSNR and hole L1 over all buckets, and the change
    from the step before (a blank where either is not stored); a last line per set gives the best of
    ``others`` on the same photos and masks.
    """
    lines = [f"{'step':<22} {'set':<11} | {'PSNR':>6} {'gain':>6} | {'L1':>5} {'gain':>6}"]
    best: dict[str, tuple[float, str, float, str]] = {}
    previous: dict[str, dict] = {}
    for step in steps:
        for name, folder in sets.items():
            path = Path(step["run"]) / step.get("folders", {}).get(name, folder) / "summary.csv"
            if not path.is_file():
                lines.append(f"{step['label']:<22} {name:<11} | {'not stored':>13} |")
                previous.pop(name, None)
                continue
            cell = {s["method"]: s for s in read_summary(path) if s["bucket"] == "all"}
            ours, last = cell[step["method"]], previous.get(name)
            gain = ("", "")
            if last:
                gain = (f"{ours['psnr'] - last['psnr']:+6.2f}", f"{last['l1_hole'] - ours['l1_hole']:+6.2f}")
            lines.append(f"{step['label']:<22} {name:<11} | {ours['psnr']:6.2f} {gain[0]:>6} | "
                         f"{ours['l1_hole']:5.2f} {gain[1]:>6}")
            previous[name] = ours
            rivals = [cell[o] for o in others if o in cell]
            if rivals:
                p, l1 = max(rivals, key=lambda r: r["psnr"]), min(rivals, key=lambda r: r["l1_hole"])
                best[name] = (p["psnr"], p["method"], l1["l1_hole"], l1["method"])
    for name, (p, pm, l1, lm) in best.items():
        lines.append(f"{'best classical':<22} {name:<11} | {p:6.2f} {pm[:6]:>6} | {l1:5.2f} {lm[:6]:>6}")
    return "\n".join(lines)


def format_against_classical(table: Sequence[Mapping], name: str = "model") -> str:
    """:func:`against_classical`'s rows as a text table (76 columns): a title line, then one line per bucket."""
    lines = [f"{name}: PSNR in dB, hole L1 x100",
             f"{'bucket':>8} | {'PSNR':>6} | {'best classical':>17} | win | {'L1':>5} | {'best classical':>16} | win"]
    for t in table:
        (bp, mp), (bl, ml) = t["best_psnr"], t["best_l1"]
        lines.append(f"{t['bucket']:>8} | {t['psnr']:6.2f} | {mp:>10} {bp:6.2f} | {'yes' if t['beats_psnr'] else 'no':>3} | "
                     f"{t['l1_hole']:5.2f} | {ml:>10} {bl:5.2f} | {'yes' if t['beats_l1'] else 'no':>3}")
    return "\n".join(lines)


def write_metrics_csv(rows: Sequence[Mapping], path: str | Path) -> Path:
    """metrics.csv: one line per image x mask x method with :data:`ROW_FIELDS` (+ lpips when present)."""
    fields = list(ROW_FIELDS) + (["lpips"] if rows and "lpips" in rows[0] else [])
    return _write_table(rows, fields, path)


def _write_table(rows: Sequence[Mapping], fields: Sequence[str], path: str | Path) -> Path:
    """A CSV with the columns ``fields``, floats to 6 significant digits (read back by :func:`_read_table`)."""
    path, buf = Path(path), io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in fields})
    write_text(path, buf.getvalue())  # atomic: a full disk never leaves half a table
    return path


def summary_markdown(
    summary: Sequence[Mapping], notes: Sequence[str] = (), skipped: Sequence[tuple[str, str]] = ()
) -> str:
    """Markdown tables (one per metric; methods as rows, buckets as columns, best in bold) for a run card."""
    if not summary:
        return "_no results_\n"
    methods = list(dict.fromkeys(s["method"] for s in summary))
    buckets = list(dict.fromkeys(s["bucket"] for s in summary if s["bucket"] != "all")) + ["all"]
    cell = {(s["method"], s["bucket"]): s for s in summary}
    specs = [("psnr", "PSNR (dB, higher is better)", max, "{:.2f}"),
             ("ssim", "SSIM (higher is better)", max, "{:.4f}"),
             ("l1_hole", "L1 over the hole x100 (lower is better)", min, "{:.2f}")]
    if "lpips" in summary[0]:
        specs.append(("lpips", "LPIPS AlexNet (lower is better)", min, "{:.4f}"))
    lines = []
    for key, title, best_of, fmt in specs:
        lines += [f"**{title}**", "", "| method | " + " | ".join(buckets) + " |",
                  "|---|" + "---:|" * len(buckets)]
        best = {b: best_of((cell[(m, b)][key] for m in methods if (m, b) in cell), default=None) for b in buckets}
        for m in methods:
            cells = []
            for b in buckets:
                if (m, b) not in cell:
                    cells.append("-")
                    continue
                v = cell[(m, b)][key]
                text = fmt.format(v)
                cells.append(f"**{text}**" if len(methods) > 1 and v == best[b] else text)
            lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
        lines.append("")
    counts = " | ".join(str(cell[(methods[0], b)]["n"]) if (methods[0], b) in cell else "0" for b in buckets)
    lines += ["**Pairs per bucket and time per image**", "",
              "| | " + " | ".join(buckets) + " |", "|---|" + "---:|" * len(buckets),
              f"| pairs | {counts} |"]
    for m in methods:
        secs = " | ".join(f"{cell[(m, b)]['seconds']:.3f} s" if (m, b) in cell else "-" for b in buckets)
        lines.append(f"| {LABELS.get(m, m)} | {secs} |")
    lines.append("")
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    if skipped:
        lines += [f"Skipped ({len(skipped)}):", ""] + [f"- `{n}`: {r}" for n, r in skipped] + [""]
    return "\n".join(lines)


def write_summary(
    summary: Sequence[Mapping],
    csv_path: str | Path,
    md_path: str | Path,
    notes: Sequence[str] = (),
    skipped: Sequence[tuple[str, str]] = (),
) -> tuple[Path, Path]:
    """summary.csv (one line per method x bucket, "all" last) and summary.md (:func:`summary_markdown`)."""
    csv_path, md_path = Path(csv_path), Path(md_path)
    _write_table(summary, list(summary[0].keys()) if summary else ["method", "bucket", "n"], csv_path)
    write_text(md_path, summary_markdown(summary, notes, skipped))
    return csv_path, md_path


EVALUATION_MARKER = ".inpaintlib-evaluation"
"""Written into every evaluation folder: photos are never listed from such a folder (``data.PROJECT_MARKERS``)."""
OUTPUT_NAMES = ("metrics.csv", "summary.csv", "summary.md", "settings.json", "metrics_by_hole_ratio.png",
                "examples.png")
"""The files an evaluation writes; an ``--overwrite`` removes the ones the new evaluation does not write."""


def check_output_folder(out_dir: str | Path) -> None:
    """Refuse an output folder that already holds files (they would be overwritten)."""
    out = Path(out_dir)
    check_not_dangling(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) if out.is_dir() else []
    if entries:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise ValueError(f"{out} already holds files ({shown}); choose an empty folder, or pass --overwrite "
                         "(overwrite=True) to replace what an earlier evaluation wrote there")


@contextlib.contextmanager
def claimed_output_folder(out_dir: str | Path, overwrite: bool) -> Iterator[Path]:
    """Hold ``out_dir`` for one evaluation from its first check to its last write: a lock file created
    atomically (two evaluations started together: the second is refused, never mixed with the first),
    and, unless ``overwrite``, the check that it holds nothing. The caller writes with
    :func:`inpaintlib.rundir.staged_files`, so a failure leaves the previous files as they were."""
    out = Path(out_dir)
    check_not_dangling(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    with writer_lock(out, what="evaluation", reentrant=False):
        for stale in out.glob(".staging-*"):  # left by a killed evaluation: no one else writes here now
            shutil.rmtree(stale, ignore_errors=True)
        if not overwrite:
            check_output_folder(out)  # again, now that no one else can write there
        yield out
