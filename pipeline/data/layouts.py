"""Dataset layouts: each finds the images of a root and what they are labelled.

A layout yields :class:`Candidate` images (checked later, in one place, by
:func:`pipeline.data.manifest.build_manifest`) and :class:`BadRow` records for
problems only the layout can see (an annotation without an image, an image
without an annotation, a malformed annotation). Whole-dataset problems (no
root, no annotation files at all) raise :class:`ManifestError`.

Nothing outside the dataset root is read, and nothing that is not a regular
file is opened (a FIFO named like an annotation would block forever; it is a
bad row). An annotation file that resolves outside the root is a bad row (or, for a whole-dataset file, a ManifestError), and a
Kaggle ``ImageId`` must be a plain file name, never a path.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.config.benchmark import ConfigError
from pipeline.config.error import excerpt
from pipeline.data.annotations import AnnotationError, parse_prediction_string, read_bbox_xml
from pipeline.data.classes import wnids
from pipeline.data.layout_help import GROUND_TRUTH, KAGGLE_CSV, KAGGLE_IMAGE_DIRS, explain
from pipeline.data.probe import folders_inside, named_like_image, not_a_file, outside_root
from pipeline.data.sample_set import SAMPLE_PHOTOS
from pipeline.data.schema import BadRow, Box, Candidate, printable
from tasks.registry import Registry

Found = Iterator[Candidate | BadRow]
Layout = Callable[[Path | None], Found]

LAYOUTS: Registry[Layout] = Registry("dataset layout")


class ManifestError(ConfigError):
    """The dataset as a whole cannot be read; the message says how to fix it."""

    label = "dataset error"


def _require_root(root: Path | None, layout: str) -> Path:
    if root is None:
        raise ManifestError(f"layout {layout!r} needs dataset.root (the dataset directory)")
    if not root.is_dir():
        raise ManifestError(f"dataset root {root} is not a directory; fix dataset.root")
    return root


def _readable(path: Path, root: Path) -> Path:
    """``path`` for a whole-dataset file (ground truth, CSV...), if it lies inside ``root``."""
    where = outside_root(path, root)
    if where is not None:
        raise ManifestError(
            f"{path} resolves to {where}, outside the dataset root {root}; foveabench reads "
            "nothing outside dataset.root: copy the file into the root"
        )
    return path


def _listable(directory: Path, root: Path) -> Path:
    """``directory`` (images/, bbox/, val/...) if it lies inside ``root`` once links are
    resolved: a folder that a link leads out of the root is never listed."""
    where = outside_root(directory, root)
    if where is not None:
        raise ManifestError(
            f"{directory} resolves to {where}, outside the dataset root {root}; foveabench "
            "lists nothing outside dataset.root: move the folder into the root, or point "
            "dataset.root at the folder that holds it"
        )
    return directory


def _images_in(directory: Path) -> dict[str, Path]:
    """Entries named like images directly in ``directory``, by file stem (one that is not a
    regular file becomes a bad row when it is probed, never silently skipped)."""
    return {p.stem: p for p in sorted(directory.iterdir()) if named_like_image(p)}


# --- sample -------------------------------------------------------------------------
@LAYOUTS.register("sample")
def sample(root: Path | None) -> Found:
    """The embedded photos of :mod:`pipeline.data.sample_set` (``root`` is ignored)."""
    for photo in SAMPLE_PHOTOS:
        boxes = tuple(Box(*b, raw=f"sample_set.py {photo.name}") for b in photo.boxes)
        yield Candidate(
            photo.name, photo.path(), photo.wnid, boxes, Path(__file__).parent / "sample_set.py"
        )


# --- ilsvrc -------------------------------------------------------------------------
_VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d+)$")


def _find(root: Path, name: str) -> Path | None:
    """``root/name`` or ``root/<devkit>/data/name`` (as the devkit tarball extracts); a
    folder that a link leads out of the root is not looked into."""
    hits = [root / name, *(folder / "data" / name for folder in folders_inside(root))]
    return next((p for p in hits if p.is_file()), None)


def _ilsvrc_id_to_wnid(root: Path) -> list[str]:
    """Devkit ILSVRC2012_ID -> wnid (index 0 is ID 1).

    From ``meta.mat`` (the devkit's synsets table, read with scipy) when present;
    otherwise from ``wnids.txt``, one wnid per line in ILSVRC2012_ID order.
    """
    meta = _find(root, "meta.mat")
    if meta is not None:
        return _meta_mat(_readable(meta, root))
    listing = _find(root, "wnids.txt")
    if listing is None:
        raise ManifestError(
            f"{root}: {GROUND_TRUTH} needs the devkit's meta.mat or a wnids.txt (one wnid per "
            "line in ILSVRC2012_ID order) to turn IDs into wnids; the devkit IDs are NOT "
            "sorted-wnid order, so they cannot be guessed"
        )
    lines = _readable(listing, root).read_text().splitlines()
    return [line.strip() for line in lines if line.strip()]


def _meta_mat(meta: Path) -> list[str]:
    """The devkit's synsets table; a file that is not that table is a ManifestError (the
    whole dataset's labels depend on it), never a traceback."""
    from scipy.io import loadmat

    try:
        synsets = loadmat(meta, squeeze_me=True)["synsets"]
        by_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
        return [by_id[i] for i in range(1, len(wnids()) + 1)]
    except Exception as exc:  # scipy raises MatReadError, ValueError, KeyError... by damage
        raise ManifestError(
            f"{meta}: not the devkit's synsets table ({type(exc).__name__}: {exc}); "
            "re-extract meta.mat from ILSVRC2012_devkit_t12.tar.gz, or remove it and add a "
            "wnids.txt (one wnid per line in ILSVRC2012_ID order)"
        ) from None


def _ground_truth(root: Path) -> tuple[Path, dict[str, tuple[str, int]]] | None:
    """image_id -> (wnid, line) from the devkit ground truth, if there is one.

    Line ``n`` of the file labels ``ILSVRC2012_val_<n, 8 digits>``; an ID outside
    the class table, or a line that is not a whole number (``abc``, ``2.0``, bytes
    that are not UTF-8), gives a placeholder wnid naming it (an unknown wnid bad
    row downstream, with the line), never an error for the whole dataset.
    """
    path = _find(root, GROUND_TRUTH)
    if path is None:
        return None
    _readable(path, root)
    table = _ilsvrc_id_to_wnid(root)
    labels = {}
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            k = int(line) if line.strip().isascii() and line.strip().isdigit() else None
            if k is None:
                wnid = f"{printable(excerpt(line.strip(), 40))} (not an ILSVRC2012_ID)"
            else:
                wnid = table[k - 1] if 1 <= k <= len(table) else f"ILSVRC2012_ID={k}"
            labels[f"ILSVRC2012_val_{n:08d}"] = (wnid, n)
    return path, labels


@LAYOUTS.register("ilsvrc")
def ilsvrc(root: Path | None) -> Found:
    """ILSVRC-2012 val: JPEGs in ``images/`` (or the root), labels from ``bbox/*.xml``
    (per-image ILSVRC bbox XML, the wnid of its objects is the label) and/or the
    devkit ground truth. With a ``bbox/`` folder every image needs its XML.
    """
    root = _require_root(root, "ilsvrc")
    image_dir = _listable(root / "images", root) if (root / "images").is_dir() else root
    images = _images_in(image_dir)
    bbox_dir = root / "bbox"
    truth = _ground_truth(root)
    if not bbox_dir.is_dir() and truth is None:
        raise ManifestError(
            explain("ilsvrc", root, f"{root}: no bbox/ folder and no {GROUND_TRUTH}")
        )
    if bbox_dir.is_dir():
        yield from _from_xml(images, image_dir, _listable(bbox_dir, root), root)
        return
    assert truth is not None
    gt_path, labels = truth
    for image_id, path in images.items():
        if image_id in labels:
            wnid, line = labels[image_id]
            yield Candidate(image_id, path, wnid, (), gt_path, line)
        else:
            yield BadRow(
                image_id,
                path,
                "missing_annotation",
                f"no line of {gt_path.name} labels {image_id} (line n labels "
                "ILSVRC2012_val_<n, 8 digits>); rename the image or add its label",
            )


def _from_xml(images: dict[str, Path], image_dir: Path, bbox_dir: Path, root: Path) -> Found:
    xmls = {p.stem: p for p in sorted(bbox_dir.glob("*.xml"))}
    for image_id, path in images.items():
        if image_id not in xmls:
            yield BadRow(
                image_id,
                path,
                "missing_annotation",
                f"no {bbox_dir / (image_id + '.xml')}; add the image's bbox XML or remove the image",
            )
    for image_id, xml in xmls.items():
        if image_id not in images:
            yield BadRow(
                image_id,
                xml,
                "missing_image",
                f"annotation has no image {image_id}.JPEG in {image_dir}; add the image or remove the XML",
            )
            continue
        where = outside_root(xml, root)
        if where is not None:
            reason = (
                f"annotation resolves to {where}, outside the dataset root {root}; it is not "
                "read: copy the XML into the root"
            )
            yield BadRow(image_id, xml, "outside_root", reason)
            continue
        special = not_a_file(xml)
        if special is not None:
            yield BadRow(image_id, xml, "not_a_file", special)
            continue
        try:
            objects = read_bbox_xml(xml)
        except AnnotationError as exc:
            yield BadRow(image_id, xml, "bad_annotation", str(exc))
            continue
        yield Candidate(image_id, images[image_id], objects.wnid, objects.boxes, xml)


# --- kaggle -------------------------------------------------------------------------
MAX_CSV_FIELD = 64 * 1024 * 1024  #: bytes of one CSV field; the box limit then judges the row


@LAYOUTS.register("kaggle")
def kaggle(root: Path | None) -> Found:
    """Kaggle ImageNet LOC: ``LOC_val_solution.csv`` (ImageId, PredictionString) with
    images in ``ILSVRC/Data/CLS-LOC/val/`` or ``val/`` next to it. Boxes are read like
    the XML (1-based inclusive), see :mod:`pipeline.data.annotations`.
    """
    root = _require_root(root, "kaggle")
    csv_path = root / KAGGLE_CSV
    if not csv_path.is_file():
        raise ManifestError(explain("kaggle", root, f"{root}: no {KAGGLE_CSV}"))
    _readable(csv_path, root)
    image_dir = next((root / d for d in KAGGLE_IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise ManifestError(
            explain("kaggle", root, f"{root}: no image folder ({' or '.join(KAGGLE_IMAGE_DIRS)})")
        )
    images = _images_in(_listable(image_dir, root))
    seen = set()
    csv.field_size_limit(MAX_CSV_FIELD)  # one image's boxes can exceed csv's 131,072
    # utf-8-sig: a byte-order mark (Excel's CSV export writes one) is not part of "ImageId"
    with csv_path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise ManifestError(f"{csv_path}: header {header}, expected ImageId,PredictionString")
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            image_id = fields[0].strip()
            seen.add(image_id)
            problem = _not_a_file_name(image_id)
            if problem:
                reason = (
                    f"ImageId {image_id!r} {problem}; it must be an image's file name without "
                    "extension (like ILSVRC2012_val_00000001), fix the row"
                )
                yield BadRow(image_id, csv_path, "bad_annotation", reason, line)
                continue
            try:
                objects = parse_prediction_string(
                    fields[1] if len(fields) > 1 else "", f"{csv_path}:{line}"
                )
            except AnnotationError as exc:
                yield BadRow(image_id, csv_path, "bad_annotation", str(exc), line)
                continue
            path = images.get(image_id, image_dir / f"{image_id}.JPEG")
            yield Candidate(image_id, path, objects.wnid, objects.boxes, csv_path, line)
    for image_id, path in images.items():
        if image_id not in seen:
            yield BadRow(
                image_id,
                path,
                "missing_annotation",
                f"no row of {csv_path} for this image; add its row or remove the image",
            )


def _not_a_file_name(image_id: str) -> str | None:
    """Why a Kaggle ImageId cannot name a file in the image folder, or None."""
    if not image_id:
        return "is empty"
    if "/" in image_id or "\\" in image_id or "\0" in image_id:
        return "is a path, not a file name (it contains '/', '\\' or a NUL byte)"
    if image_id in (".", ".."):
        return "names a directory"
    return None


# --- imagefolder ----------------------------------------------------------------------
@LAYOUTS.register("imagefolder")
def imagefolder(root: Path | None) -> Found:
    """``<root>/<wnid>/<file>``: the folder name is the label; no boxes."""
    root = _require_root(root, "imagefolder")
    classes = [(folder, _images_in(folder)) for folder in folders_inside(root)]
    if not any(images for _, images in classes):
        raise ManifestError(explain("imagefolder", root, f"{root}: no folder of images"))
    for folder in sorted(p for p in root.iterdir() if p.is_symlink()):  # only links lead out
        where = outside_root(folder, root)
        if where is not None:
            reason = (
                f"the class folder resolves to {where}, outside the dataset root {root}; it "
                "is not listed: move the folder into the root"
            )
            yield BadRow(folder.name, folder, "outside_root", reason)
    for folder, images in classes:
        for image_id, path in images.items():
            yield Candidate(image_id, path, folder.name)
