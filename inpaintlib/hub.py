"""Stored training runs by name: ``pretrained("pconv")`` works in a checkout and in a pip install.

In a checkout of the repository a name is the folder ``data/runs/NAME``. Elsewhere (a wheel from pip, Colab
without a clone) the run's ``weights.pt``, ``config.json`` and ``RUN.md`` are downloaded from the
repository at the pinned ref (raw file URLs derived from ``_config.yml``'s ``repository.url`` and ``branch``),
each checked against the sha256 pinned in ``stored_runs.json`` (written by ``python -m inpaintlib book sync``
from ``data/runs``), and kept in the user cache folder (``$XDG_CACHE_HOME/inpaintlib`` or
``~/.cache/inpaintlib``). A file whose hash does not match stops with an error and nothing is cached.

Environment variables: ``INPAINTLIB_REPO_URL`` / ``INPAINTLIB_REPO_REF`` replace the repository address and
ref, ``INPAINTLIB_RAW_URL`` the base of the raw file URLs (``{base}/data/runs/NAME/FILE``; used by the tests
with a loopback server), ``XDG_CACHE_HOME`` the cache root. Only the standard library is used here.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from inpaintlib.paths import stored_runs_dir, studies_dir

__all__ = [
    "RUN_FILES",
    "TABLE",
    "StoredRunError",
    "cache_dir",
    "pin_runs",
    "pretrained",
    "raw_base",
    "raw_url",
    "repository",
    "resolve_checkpoint",
    "sha256_file",
    "stored_run_names",
]

TABLE = Path(__file__).with_name("stored_runs.json")
"""The pinned table: repository address and ref, and per stored run the sha256 and size of RUN_FILES."""
RUN_FILES = ("weights.pt", "config.json", "RUN.md")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_GITHUB = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?")


class StoredRunError(ValueError):
    """A stored run could not be obtained: unknown name, download failure or a file that fails its hash."""


def _table() -> dict:
    return json.loads(TABLE.read_text())


def repository() -> tuple[str, str]:
    """``(url, ref)`` of the repository: the pinned ones, or INPAINTLIB_REPO_URL / INPAINTLIB_REPO_REF."""
    table = _table()
    return (os.environ.get("INPAINTLIB_REPO_URL") or table["repository"],
            os.environ.get("INPAINTLIB_REPO_REF") or table["ref"])


def raw_url(url: str, ref: str) -> str:
    """Base URL of the repository's files at ``ref``: ``https://raw.githubusercontent.com/OWNER/REPO/REF``."""
    match = _GITHUB.fullmatch(url)
    if match is None:
        raise StoredRunError(f"raw file URLs are known for GitHub repositories only, not {url}; "
                             "set INPAINTLIB_RAW_URL to the base URL of the repository's files")
    return f"https://raw.githubusercontent.com/{match[1]}/{match[2]}/{ref}"


def raw_base() -> str:
    """Where stored runs are downloaded from: INPAINTLIB_RAW_URL (an http or https URL), else :func:`raw_url`
    of :func:`repository`."""
    given = os.environ.get("INPAINTLIB_RAW_URL")
    if given and urllib.parse.urlsplit(given).scheme not in ("http", "https"):
        raise StoredRunError(f"INPAINTLIB_RAW_URL={given!r} is not an http:// or https:// URL; unset it to download "
                             "from the repository, or give the base URL of its files")
    return (given or raw_url(*repository())).rstrip("/")


def cache_dir() -> Path:
    """The user cache folder of inpaintlib: ``$XDG_CACHE_HOME/inpaintlib``, else ``~/.cache/inpaintlib``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG specification says (it would put the cache under
    whatever folder the command runs in)."""
    root = os.environ.get("XDG_CACHE_HOME") or ""
    return (Path(root) if os.path.isabs(root) else Path.home() / ".cache") / "inpaintlib"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pin_runs(runs_dir: str | Path) -> dict[str, dict[str, dict]]:
    """``{name: {file: {"sha256", "bytes"}}}`` of every run in ``runs_dir`` that has a ``weights.pt``."""
    runs_dir = Path(runs_dir)
    pins = {}
    for run in sorted(p for p in runs_dir.iterdir() if (p / "weights.pt").is_file()):
        missing = [f for f in RUN_FILES if not (run / f).is_file()]
        if missing:
            raise FileNotFoundError(f"stored run {run} lacks {', '.join(missing)}")
        pins[run.name] = {f: {"sha256": sha256_file(run / f), "bytes": (run / f).stat().st_size} for f in RUN_FILES}
    return pins


def stored_run_names() -> list[str]:
    """Names of the runs pinned in this package (``ce``, ``pconv``, ``pconv-fill-scale``, ...)."""
    return sorted(_table()["runs"])


def _verified(folder: Path, pins: dict[str, dict]) -> bool:
    return all((folder / f).is_file() and sha256_file(folder / f) == pin["sha256"] for f, pin in pins.items())


def _source(url: str) -> str:
    """``url``, and where its base came from when that was INPAINTLIB_RAW_URL (errors name the variable)."""
    return f"{url} (from INPAINTLIB_RAW_URL)" if os.environ.get("INPAINTLIB_RAW_URL") else url


def _download(url: str, target: Path, pin: dict) -> None:
    """Stream ``url`` into ``target``, reading at most the pinned size plus one byte, and check its length and
    sha256 against ``pin``; StoredRunError otherwise. A server that sends more is cut off at once (a 12 kB
    file is never allowed to fill the disk); one that sends less is a cut-short download, not a changed file."""
    digest, size, cap = hashlib.sha256(), 0, int(pin["bytes"])
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            while size <= cap:
                block = response.read(min(1 << 20, cap + 1 - size))
                if not block:
                    break
                size += len(block)
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
        raise StoredRunError(f"could not download {_source(url)} ({err}); work in a checkout of the repository, "
                             "or check the network") from err
    if size > cap:
        raise StoredRunError(f"{_source(url)} sends more than the pinned {cap} bytes: stopped reading there; not "
                             "the stored file (a wrong INPAINTLIB_RAW_URL or repository?); nothing was cached")
    if size < cap:
        raise StoredRunError(f"the download of {url} ended after {size} of {cap} bytes (cut short: the "
                             "connection dropped?); nothing was cached -- try again")
    if digest.hexdigest() != pin["sha256"]:
        raise StoredRunError(f"{url} has sha256 {digest.hexdigest()}, not the pinned {pin['sha256']}: the "
                             "file changed since this inpaintlib was built (or the download was altered); "
                             "nothing was cached")


_STAGING = re.compile(r"\.(?P<name>.+)-(?P<pid>\d+)-[^-]+")


def _remove_stale_staging(folder: Path) -> None:
    """Remove the staging folders of downloads whose process is gone (killed mid-download: its ``finally``
    never ran), so that they do not stay in the cache for ever."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _STAGING.fullmatch(entry.name)
        if match is None or not entry.is_dir():
            continue
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def pretrained(name: str, download: bool = True) -> Path:
    """The run directory of the stored run ``name`` (``"ce"``, ``"pconv"``, ``"pconv-fill-scale"``).

    In a checkout: ``data/runs/NAME``. Elsewhere: a folder of the user cache holding the run's
    ``weights.pt``, ``config.json`` and ``RUN.md``, downloaded on first use (``download=False`` refuses to)
    and checked against the sha256 pinned in the package. Load the model with
    ``inpaintlib.rundir.load_model(pretrained("pconv-fill-scale"))``.

    Raises:
        StoredRunError (a ValueError): unknown name, download impossible, or a hash mismatch (then
            nothing is written to the cache).
    """
    local = stored_runs_dir() / str(name)
    if (local / "weights.pt").is_file():
        return local
    runs = _table()["runs"]
    if name not in runs:
        study = " (a study kept without its weights, data/studies)" if (studies_dir() / str(name)).is_dir() else ""
        raise StoredRunError(f"unknown stored run {name!r}{study}; known: {', '.join(sorted(runs))}")
    pins = runs[name]
    folder = cache_dir() / "runs" / f"{name}-{pins['weights.pt']['sha256'][:12]}"
    if _verified(folder, pins):
        return folder
    if not download:
        raise StoredRunError(f"stored run {name!r} is not in the cache {folder} and download=False")
    base = raw_base()
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(folder.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=folder.parent))
    try:
        for file, pin in pins.items():
            _download(f"{base}/data/runs/{name}/{file}", staging / file, pin)
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete or altered earlier copy
        try:
            os.replace(staging, folder)  # atomic: the folder appears complete or not at all
        except OSError:
            if not _verified(folder, pins):  # another process did not win the race either
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def resolve_checkpoint(checkpoint):
    """What the CLIs' ``--checkpoint`` / ``--init-from`` mean: an existing path as it is, else a stored run name.

    A name (no slash) that is neither a file or folder nor a stored run raises FileNotFoundError saying so, and
    so does a run of ``data/studies`` asked for by name or folder (here or at its old ``data/runs`` place);
    anything else (None, a model, a path with a slash) is returned unchanged for the loader to judge.
    """
    if not isinstance(checkpoint, (str, Path)):
        return checkpoint
    if _is_study(Path(checkpoint)):
        name = Path(checkpoint).name
        raise FileNotFoundError(f"{name} is a study kept without its weights (data/studies/{name}; its RUN.md has "
                                "the command that re-creates them); stored runs with weights: "
                                + ", ".join(stored_run_names()))
    if Path(checkpoint).exists():
        return checkpoint
    name = str(checkpoint)
    if not _NAME.fullmatch(name):
        return checkpoint
    if (stored_runs_dir() / name / "weights.pt").is_file() or name in _table()["runs"]:
        return pretrained(name)
    raise FileNotFoundError(f"{name} is neither a run directory, a weights file nor a stored run "
                            f"({', '.join(stored_run_names())})")


def _is_study(path: Path) -> bool:
    """Whether ``path`` asks for a run of ``data/studies`` (issue 26): its name, its folder there, or its old
    folder ``data/runs/NAME``, with no weights of its own to load."""
    study = studies_dir() / path.name
    if path.is_file() or (path / "weights.pt").is_file() or (path / "checkpoint.pt").is_file():
        return False
    if not (study / "config.json").is_file():
        return False
    return len(path.parts) == 1 or path.resolve() in (study.resolve(), (stored_runs_dir() / path.name).resolve())
