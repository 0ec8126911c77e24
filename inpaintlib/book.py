"""Execute the book's chapters with papermill and clean them for committing.

``python -m inpaintlib book run [--profile cpu|gpu] [--chapters 01,02] [--train]`` runs every chapter
notebook of ``book/`` *in place* (so the stored outputs are the ones of this run), with the chapter
folder as working directory and the papermill parameters ``profile`` and ``train``. Each executed
notebook is then cleaned: papermill's metadata and timings, per-cell execution metadata and the
injected-parameters cell go (the chapter's own ``parameters`` cell with its defaults stays), execution
counts are renumbered, and the outputs are checked for machine paths (this repository's folder, the
temp folder, home directories and other common roots), which would make the committed notebooks depend
on the machine that ran them.

``python -m inpaintlib book clean FILE...`` applies only the cleaning step.

``python -m inpaintlib book sync [--check]`` regenerates the Colab badges and setup cells, the README's
image URLs, ``project.urls`` and the pinned table of stored runs from ``_config.yml`` (:mod:`inpaintlib.booksync`).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

from inpaintlib.cliname import program
from inpaintlib.errors import exits_cleanly
from inpaintlib.paths import book_dir

__all__ = [
    "CHAPTERS",
    "PROFILES",
    "book_dir",
    "stable_widget_ids",
    "resolve_chapters",
    "clean_notebook",
    "clean_file",
    "find_machine_paths",
    "run_chapter",
    "cli",
]

CHAPTERS: tuple[str, ...] = (
    "01_ml_background",
    "02_partial_convolution",
    "03_context_encoder",
    "04_pconv_unet",
    "05_training_evaluation",
    "06_beyond_the_report",
)
PROFILES: tuple[str, ...] = ("cpu", "gpu")

# Absolute paths that would tie a committed notebook to one machine. The look-behind keeps relative
# paths such as ``data/runs/ce`` or ``book/tmp`` from matching.
_MACHINE_PATH = re.compile(
    r"(?<![\w.~-])(?:/(?:work|tmp|root|home|Users|private|var/folders|mnt|opt/conda|usr/local/lib)"
    r"(?:/[\w.@+-]+)*|[A-Za-z]:\\\\?(?:Users|Windows)[\w\\. -]*)"
)


def resolve_chapters(chapters: list[str] | str | None, root: Path | None = None) -> list[Path]:
    """Map chapter selectors (``"01"``, ``"2"``, ``"03_context_encoder"``, a file name) to notebook paths.

    ``None`` or an empty selection means every chapter, in book order.
    """
    root = book_dir() if root is None else Path(root)
    if chapters is None or chapters == "" or chapters == []:
        wanted = list(CHAPTERS)
    else:
        items = chapters.split(",") if isinstance(chapters, str) else list(chapters)
        wanted = []
        for item in (s.strip() for s in items):
            if not item:
                continue
            stem = Path(item).name.removesuffix(".ipynb")
            matches = [c for c in CHAPTERS if c == stem or (stem.isdigit() and int(c[:2]) == int(stem))]
            if not matches:
                raise ValueError(
                    f"unknown chapter {item!r}: expected a number 1-{len(CHAPTERS)} or one of {', '.join(CHAPTERS)}"
                )
            wanted.extend(m for m in matches if m not in wanted)
        if not wanted:  # e.g. "--chapters ,": a selection that names nothing is a mistake, not "run nothing"
            raise ValueError(f"--chapters {chapters!r} names no chapter: give numbers such as 01,02, or leave it out for all")
    paths = [root / f"{name}.ipynb" for name in wanted]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"chapter notebook(s) not found: {', '.join(missing)}")
    return paths


def _iter_output_text(nb: nbformat.NotebookNode):
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            texts: list[str] = []
            if "text" in output:
                texts.append(_as_text(output["text"]))
            for key in ("ename", "evalue"):
                if key in output:
                    texts.append(str(output[key]))
            texts.extend(_as_text(t) for t in output.get("traceback", []))
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    texts.append(_as_text(value))
            for text in texts:
                yield index, text


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


@functools.lru_cache(maxsize=1)
def _this_machine_paths() -> re.Pattern[str]:
    """This machine's own folders (repository, temp folder, home), wherever they are."""
    roots = {str(book_dir().parent), tempfile.gettempdir(), str(Path.home())}
    roots = sorted((r.rstrip("/") for r in roots if len(r.strip("/")) > 0), key=len, reverse=True)
    return re.compile(r"(?<![\w.~-])(?:" + "|".join(map(re.escape, roots)) + r")(?:/[\w.@+-]+)*")


def find_machine_paths(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """Return ``(cell index, path)`` for every absolute machine path in outputs or metadata.

    Cell sources are checked too: a chapter should never hard-code such a path.  A path counts when it
    starts at a common machine root (``_MACHINE_PATH``) or at one of this machine's own folders.
    """
    patterns = (_this_machine_paths(), _MACHINE_PATH)

    def found(index: int, text: str) -> list[tuple[int, str]]:
        spans: dict[int, str] = {}
        for pattern in patterns:
            for m in pattern.finditer(text):
                if not any(start <= m.start() < start + len(p) for start, p in spans.items()):
                    spans[m.start()] = m.group(0)
        return [(index, spans[start]) for start in sorted(spans)]

    hits: list[tuple[int, str]] = []
    for index, text in _iter_output_text(nb):
        hits.extend(found(index, text))
    for index, cell in enumerate(nb.cells):
        hits.extend(found(index, _as_text(cell.get("source", ""))))
        hits.extend(found(index, str(cell.get("metadata", {}))))
    hits.extend(found(-1, str(nb.get("metadata", {}))))
    return hits


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip what a papermill run adds and keep what the reader needs (modifies ``nb`` and returns it).

    Removed: ``metadata.papermill``, every cell's ``metadata.papermill`` and ``metadata.execution``
    (timings), cells tagged ``injected-parameters`` or ``papermill-error-cell-tag``, empty ``tags`` lists, and the interpreter version
    in ``language_info`` beyond major.minor. Kept: outputs, the chapter's ``parameters`` cell, the
    stored widget state. Execution counts are renumbered 1, 2, ... over the executed code cells, and the
    widgets' random model ids become stable ones (:func:`stable_widget_ids`), so a re-run that changes
    nothing leaves the file byte-identical.
    """
    nb.metadata.pop("papermill", None)
    language_info = nb.metadata.get("language_info")
    if isinstance(language_info, dict) and "version" in language_info:
        language_info["version"] = ".".join(str(language_info["version"]).split(".")[:2])
    kept = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        meta = cell.setdefault("metadata", {})
        meta.pop("papermill", None)
        meta.pop("execution", None)
        if "tags" in meta and not meta["tags"]:
            del meta["tags"]
        kept.append(cell)
    nb.cells = kept
    count = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        if cell.get("execution_count") is None:
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output["execution_count"] = None
            continue
        count += 1
        cell["execution_count"] = count
        for output in cell.get("outputs", []):
            if output.get("output_type") == "execute_result":
                output["execution_count"] = count
    return stable_widget_ids(nb)


_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def stable_widget_ids(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace the widgets' random model ids (uuid4 hex) by ids numbered in a fixed order, everywhere they
    appear (the stored state, references between models, the outputs that display them).

    The order does not depend on the random ids: the widgets the outputs display, cell by cell, each followed
    by the models it refers to (depth first, in sorted key order); then any model left, by its content.
    """
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    if not state:
        return nb
    order: list[str] = []

    def visit(model_id: str | None) -> None:
        if model_id in state and model_id not in order:
            order.append(model_id)
            for ref in re.findall(r"IPY_MODEL_([0-9a-f]{32})", json.dumps(state[model_id], sort_keys=True)):
                visit(ref)

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            visit(output.get("data", {}).get("application/vnd.jupyter.widget-view+json", {}).get("model_id"))
    ids = re.compile("|".join(re.escape(m) for m in state))
    for model_id in sorted(state, key=lambda m: ids.sub("", json.dumps(state[m], sort_keys=True))):
        visit(model_id)
    new_id = {old: f"{number:032x}" for number, old in enumerate(order)}
    text = ids.sub(lambda match: new_id[match.group(0)], nbformat.writes(nb))
    stable = nbformat.reads(text, as_version=4)
    widgets = stable.metadata["widgets"][_WIDGET_STATE]
    widgets["state"] = dict(sorted(widgets["state"].items()))
    nb.clear()
    nb.update(stable)
    return nb



def clean_file(path: str | Path) -> list[tuple[int, str]]:
    """Clean one notebook file in place; return the machine paths still found in it (should be empty)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook, an unknown nbformat: nbformat's errors vary
        raise ValueError(f"{path} is not a Jupyter notebook ({type(error).__name__}: {error})") from None
    clean_notebook(nb)
    nbformat.write(nb, path)
    return find_machine_paths(nb)


def run_chapter(
    path: str | Path,
    profile: str = "cpu",
    train: bool = False,
    kernel: str = "python3",
    timeout: int | None = None,
    log_output: bool = False,
) -> float:
    """Execute one chapter in place with papermill, clean it, and return the wall time in seconds.

    Raises ``RuntimeError`` listing the offending strings when the executed notebook mentions an
    absolute machine path (the notebook is still written, so the cell can be inspected and fixed).
    """
    import papermill as pm  # imported here: the library does not need papermill to train or infer

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"chapter notebook not found: {path}")
    # Execute into a scratch copy and replace the chapter only when every cell ran: a failing run
    # leaves the committed notebook untouched and the failed copy where the error message says.
    scratch = Path(tempfile.mkdtemp(prefix="inpaint-book-")) / path.name
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(scratch),
            parameters={"profile": profile, "train": bool(train)},
            kernel_name=kernel,
            cwd=str(path.parent),
            progress_bar=False,
            log_output=log_output,
            execution_timeout=timeout,
        )
    except Exception as err:
        raise RuntimeError(f"{path.name} failed ({type(err).__name__}); the executed copy is {scratch}") from err
    seconds = time.perf_counter() - start
    leftovers = clean_file(scratch)
    shutil.copyfile(scratch, path)
    shutil.rmtree(scratch.parent, ignore_errors=True)
    if leftovers:
        shown = "; ".join(f"cell {i}: {p}" for i, p in leftovers[:10])
        raise RuntimeError(f"{path.name} contains machine-specific paths after execution: {shown}")
    return seconds


@exits_cleanly
def cli(argv: list[str] | None = None) -> int:
    """``python -m inpaintlib book {run,clean}``; returns the process exit status."""
    parser = argparse.ArgumentParser(prog=f"{program()} book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute chapters in place with papermill, then clean them")
    run.add_argument("--profile", choices=PROFILES, default="cpu", help="training profile (default: cpu)")
    run.add_argument("--chapters", default=None, help="comma-separated chapters, e.g. 01,02 (default: all)")
    run.add_argument("--train", action="store_true", help="train new runs instead of loading data/runs/")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    run.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (default: none)")
    run.add_argument("--log-output", action="store_true", help="echo the notebooks' output while running")
    clean = sub.add_parser("clean", help="strip papermill metadata and timings from notebooks")
    clean.add_argument("files", nargs="+", type=Path)
    sync = sub.add_parser("sync", help="regenerate every link to the repository from _config.yml (booksync)")
    sync.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is out of date")
    args = parser.parse_args(argv)

    if args.command == "sync":
        from inpaintlib.booksync import sync as sync_files  # reads YAML; only this subcommand needs it

        changed = sync_files(book_dir().parent, check=args.check)
        for path in changed:
            print(f"{'out of date' if args.check else 'wrote'}: {path.relative_to(book_dir().parent)}")
        return 1 if args.check and changed else 0

    if args.command == "clean":
        status = 0
        for file in args.files:
            leftovers = clean_file(file)
            for index, found in leftovers:
                print(f"{file}: cell {index}: machine path {found}", file=sys.stderr)
                status = 1
        return status

    try:
        paths = resolve_chapters(args.chapters)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = 0.0
    status = 0
    for path in paths:
        print(f"[book] {path.name}: profile={args.profile} train={args.train} ...", flush=True)
        try:
            seconds = run_chapter(
                path, args.profile, args.train, kernel=args.kernel, timeout=args.timeout, log_output=args.log_output
            )
        except Exception as err:  # report every chapter, fail at the end
            print(f"[book] {path.name}: FAILED: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            status = 1
            continue
        total += seconds
        print(f"[book] {path.name}: {seconds:.0f} s", flush=True)
    print(f"[book] done in {total:.0f} s" + (" (with failures)" if status else ""), flush=True)
    return status
