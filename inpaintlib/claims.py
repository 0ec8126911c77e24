r"""The book's names for its models, and the numbers its prose takes from stored files (issue 25).

:data:`ROLES` says once which stored run plays which part: the report's two networks as this book trained
them, and the book's best models. Chapters, captions, the README and the run cards use these names.

A *claim* is a number typed into a chapter's prose that comes from a run, an evaluation or a study and is
not printed by code when the chapter runs. Every claim is a row of ``book/claims.csv``:

``chapter, id, value, tolerance, source``

The prose marks the sentence with ``<!-- claim:ID -->`` (invisible in the HTML book) and writes ``value``
after the marker, before the next marker or the end of the paragraph. ``source`` names the stored number:

- ``data/runs/pconv/evaluation/summary.csv[method=pconv,bucket=all]:psnr`` -- a CSV row and column;
- ``data/runs/pconv/metrics.json:overall.psnr`` -- a JSON path (``.``-separated keys);
- ``bench/RESULTS.md~biharmonic \| (\d+\.\d+)`` -- the first match of a regular expression's group 1 in
  a text file (for the tables and notes of run cards and benchmarks);
- ``A - B`` -- the difference of two such sources.

:func:`check` compares each value with its source; ``tests/test_claims.py`` runs it for every row.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from pathlib import Path

from inpaintlib.paths import repo_root

__all__ = ["ROLES", "BEST", "REPORT_TRAINING", "role", "training_budget", "read_claims", "source_value", "check",
           "claim_text"]

# Stored run -> the name every page uses for it (the lead's decision in issue 25).
ROLES: dict[str, str] = {
    "pconv": "the report's PConv U-Net",
    "ce": "the report's Context Encoder",
    "pconv-fill-scale": "the book's best model",
    "ce-fill-scale": "the book's best Context Encoder",
}
BEST = "pconv-fill-scale"  # the run the README's first picture and the live demo show

# What the report trained on (its section 4): the Places2 validation split, 36,500 photos less 1,460 held out.
REPORT_TRAINING: dict[str, dict] = {
    "ce": {"epochs": 370, "photos": 35_040, "size": 128},
    "pconv": {"epochs": 40 + 20, "photos": 35_040, "size": 512},
}

_SOURCE = re.compile(r"^(?P<path>[^\[:]+?)(?:\[(?P<where>[^\]]*)\])?:(?P<field>[\w.\-]+)$")
_MARKER = re.compile(r"<!-- claim:([\w.\-]+) -->")


def role(run: str) -> str:
    """The book's name for a stored run, e.g. ``"the book's best model (run `pconv-fill-scale`)"``."""
    if run not in ROLES:
        raise KeyError(f"run {run!r} has no role; known: {', '.join(ROLES)}")
    return f"{ROLES[run]} (run `{run}`)"


def training_budget(run: str | Path, kind: str) -> str:
    """Two lines that set a stored run's training budget beside the report's, from the run's config.json:
    training samples seen (steps x batch), distinct photos and image size. Chapters 3 and 4 print them."""
    from inpaintlib import data, rundir  # chapter helper: the claims file checks need neither

    config, report = rundir.load_config(Path(run)), REPORT_TRAINING[kind]
    steps = config["steps"] + config.get("finetune_steps", 0)
    photos = len(data.PhotoFolder(config["data"] or data.photo_dir("train"), config["image_size"], train=False))
    ours, theirs = steps * config["batch_size"], report["epochs"] * report["photos"]
    return (f"report: {report['epochs']} epochs x {report['photos']:,} photos = {theirs:,} samples at "
            f"{report['size']} px\n"
            f"run {Path(run).name}: {steps:,} steps x batch {config['batch_size']} = {ours:,} samples at "
            f"{config['image_size']} px, {photos} photos\n"
            f"the run saw {theirs / ours:.0f}x fewer samples and {report['photos'] / photos:.0f}x fewer photos")


def read_claims(path: str | Path | None = None) -> list[dict]:
    """The rows of the claims file (default ``book/claims.csv``), ``value`` kept as written in the prose."""
    path = Path(path) if path is not None else repo_root() / "book" / "claims.csv"
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["chapter"] and not r["chapter"].startswith("#")]
    for r in rows:
        r["tolerance"] = float(r["tolerance"])
    return rows


def _one_value(source: str, root: Path) -> float:
    if "~" in source:  # a number in the text of a card or a benchmark table
        name, pattern = source.split("~", 1)
        found = re.search(pattern, (root / name.strip()).read_text())
        if found is None:
            raise ValueError(f"claim source {source!r}: the pattern does not occur in {name.strip()}")
        return float(found.group(1).replace(",", ""))
    match = _SOURCE.match(source.strip())
    if match is None:
        raise ValueError(f"claim source {source!r}: expected FILE[key=value,...]:FIELD or FILE:a.b.c")
    path = root / match["path"].strip()
    if not path.is_file():
        raise FileNotFoundError(f"claim source {source!r}: {path} does not exist")
    if path.suffix == ".json":
        value = json.loads(path.read_text())
        for key in match["field"].split("."):
            value = value[int(key)] if isinstance(value, list) else value[key]
        return float(value)
    wanted = dict(pair.split("=", 1) for pair in (match["where"] or "").split(",") if pair)
    with open(path, newline="") as f:
        hits = [r for r in csv.DictReader(f) if all(r.get(k) == v for k, v in wanted.items())]
    if len(hits) != 1:
        raise ValueError(f"claim source {source!r}: {len(hits)} rows match {wanted}, expected 1")
    return float(hits[0][match["field"]])


def source_value(source: str, root: str | Path | None = None) -> float:
    """The number a claim's ``source`` names (a difference ``A - B`` of two sources is allowed)."""
    root = Path(root) if root is not None else repo_root()
    parts = [source] if "~" in source else source.split(" - ")
    if len(parts) > 2:
        raise ValueError(f"claim source {source!r}: at most one ' - '")
    values = [_one_value(p, root) for p in parts]
    return values[0] - values[1] if len(values) == 2 else values[0]


def claim_text(markdown: str, claim_id: str) -> str | None:
    """The prose a marker ``<!-- claim:ID -->`` governs: from the marker to the next marker or blank line."""
    marker = f"<!-- claim:{claim_id} -->"
    start = markdown.find(marker)
    if start < 0:
        return None
    rest = markdown[start + len(marker):]
    ends = [m.start() for m in (_MARKER.search(rest), re.search(r"\n\s*\n", rest)) if m is not None]
    return rest[: min(ends)] if ends else rest


def check(claim: Mapping, markdown: str, root: str | Path | None = None) -> list[str]:
    """The problems of one claim (empty when it holds): the stored number differs from the written one by
    more than the tolerance, or the chapter's prose does not write the value after the claim's marker."""
    problems = []
    stored = source_value(claim["source"], root)
    written = float(claim["value"].replace(",", "").lstrip("+"))
    if abs(stored - written) > claim["tolerance"]:
        problems.append(f"{claim['chapter']} claim {claim['id']}: prose says {claim['value']}, "
                        f"{claim['source']} holds {stored:.4g} (tolerance {claim['tolerance']:g})")
    text = claim_text(markdown, claim["id"])
    if text is None:
        problems.append(f"{claim['chapter']} claim {claim['id']}: no marker <!-- claim:{claim['id']} --> in the prose")
    elif re.search(rf"(?<![\d.]){re.escape(claim['value'])}(?![\d])", text) is None:
        problems.append(f"{claim['chapter']} claim {claim['id']}: {claim['value']!r} is not written after its marker")
    return problems
