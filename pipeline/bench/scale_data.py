"""A large ILSVRC-layout dataset made of a few real photos, for scale benchmarks (issue 11.7).

``build_scaled(source, cache_dir, n)`` writes ``<cache_dir>/ilsvrc-<n>/`` in the
``ilsvrc`` layout: ``images/ILSVRC2012_val_<8 digits>.JPEG`` and one bbox XML per
image in ``bbox/``, image ``i`` being photo ``(i - 1) % P`` of the ``P`` photos
of ``source`` (itself an ilsvrc layout with ``images/`` and ``bbox/``), with
that photo's wnid and boxes and its own ``<filename>``.

Images are hard links (no re-encoding, no extra bytes) to copies of the source
photos kept in ``source/`` inside the new root; where the file system refuses
hard links they are relative symbolic links to those copies. Either way every
image resolves inside the dataset root, which the manifest requires (it never
reads outside ``dataset.root``). The dataset is built under a temporary name
and renamed when complete, so a cached one is always whole; it is reused while
its marker says it has ``n`` images of the same source photos.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.probe import is_image_file

MARKER = ".scale-dataset.json"


@dataclass(frozen=True)
class ScaledDataset:
    root: Path
    n_images: int
    n_photos: int
    seconds: float  # build time (0 when reused)
    cached: bool
    link: str  # "hardlink" | "symlink"


def image_id(index: int) -> str:
    """``ILSVRC2012_val_<index, 8 digits>`` (1-based, as the devkit numbers them)."""
    return f"ILSVRC2012_val_{index:08d}"


def _photos(source: Path) -> list[tuple[Path, ET.Element]]:
    """Each image of ``source/images`` with the root of its ``source/bbox/<stem>.xml``."""
    images = sorted(p for p in (source / "images").iterdir() if is_image_file(p))
    if not images:
        raise ValueError(f"{source}/images has no photos; pass an ilsvrc-layout --source")
    out = []
    for path in images:
        xml = source / "bbox" / f"{path.stem}.xml"
        if not xml.is_file():
            raise ValueError(f"{xml} is missing: every source photo needs its bbox XML")
        out.append((path, ET.parse(xml).getroot()))
    return out


def _fingerprint(photos: list[tuple[Path, ET.Element]]) -> list[list[object]]:
    return [[p.name, p.stat().st_size] for p, _ in photos]


def _link(target: Path, link: Path) -> str:
    try:
        os.link(target, link)
        return "hardlink"
    except OSError:
        link.symlink_to(os.path.relpath(target, link.parent))
        return "symlink"


def _write_xml(root: ET.Element, stem: str, path: Path) -> None:
    for tag, text in (("folder", "images"), ("filename", stem)):
        node = root.find(tag)
        if node is None:
            node = ET.SubElement(root, tag)
        node.text = text
    path.write_bytes(ET.tostring(root, encoding="utf-8"))


def build_scaled(source: Path, cache_dir: Path, n: int) -> ScaledDataset:
    """``<cache_dir>/ilsvrc-<n>``: reused when its marker matches, else built (atomically)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    photos = _photos(source)
    root = cache_dir / f"ilsvrc-{n}"
    want = {"n_images": n, "source": str(source.resolve()), "photos": _fingerprint(photos)}
    marker = root / MARKER
    if marker.is_file():
        have = json.loads(marker.read_text())
        if {k: have.get(k) for k in want} == want:
            return ScaledDataset(root, n, len(photos), 0.0, True, str(have.get("link")))
    start = time.perf_counter()
    tmp = cache_dir / f".ilsvrc-{n}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("source", "images", "bbox"):
        (tmp / sub).mkdir(parents=True)
    copies = [Path(shutil.copy2(p, tmp / "source" / p.name)) for p, _ in photos]
    kinds = set()
    for i in range(1, n + 1):
        k = (i - 1) % len(photos)
        stem = image_id(i)
        kinds.add(_link(copies[k], tmp / "images" / f"{stem}{copies[k].suffix}"))
        _write_xml(photos[k][1], stem, tmp / "bbox" / f"{stem}.xml")
    link = "symlink" if "symlink" in kinds else "hardlink"
    (tmp / MARKER).write_text(json.dumps({**want, "link": link}))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return ScaledDataset(root, n, len(photos), time.perf_counter() - start, False, link)
