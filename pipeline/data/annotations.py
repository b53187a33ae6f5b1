"""Parsers for annotation files, and the box checks shared by all layouts.

Both ILSVRC-2012 sources write boxes as 1-based *inclusive* pixel corners:
the bbox XML (documented in the devkit), and Kaggle's ``LOC_val_solution.csv``,
whose numbers are the XML values copied verbatim (same integers for the same
image). We store 0-based pixel *edges*: ``(xmin - 1, ymin - 1, xmax, ymax)``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.limits import current
from pipeline.data.schema import Box

_COORDS = ("xmin", "ymin", "xmax", "ymax")
#: Boxes per image and bytes per XML are bounded by the run's limits (pipeline/data/
#: limits.py): ILSVRC-2012 val images have at most a few dozen boxes and XML under 5 KB,
#: and a file with hundreds of thousands of boxes would hold gigabytes before any check.


class AnnotationError(ValueError):
    """A malformed annotation; the message says what and where."""


@dataclass(frozen=True)
class Objects:
    """The labelled objects of one image: a single wnid and its boxes."""

    wnid: str
    boxes: tuple[Box, ...]


def _too_many_boxes() -> str:
    return (
        f"more than {current().max_boxes} boxes for one image (an ILSVRC image has a few "
        "dozen at most); the image is skipped (dataset.max_boxes raises the limit)"
    )


def box_from_inclusive(xmin: float, ymin: float, xmax: float, ymax: float) -> Box:
    """1-based inclusive corners (ILSVRC) -> 0-based pixel edges."""
    raw = f"xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g} (1-based, inclusive)"
    return Box(xmin - 1, ymin - 1, xmax, ymax, raw=raw)


def box_problem(box: Box, width: int, height: int) -> str | None:
    """Why ``box`` does not lie inside a ``width`` x ``height`` image, or None."""
    checks = [
        (box.xmin < 0, f"xmin={box.xmin:g} < 0"),
        (box.ymin < 0, f"ymin={box.ymin:g} < 0"),
        (box.xmax > width, f"xmax={box.xmax:g} > width {width}"),
        (box.ymax > height, f"ymax={box.ymax:g} > height {height}"),
        (box.xmax <= box.xmin, f"empty box: xmax={box.xmax:g} <= xmin={box.xmin:g}"),
        (box.ymax <= box.ymin, f"empty box: ymax={box.ymax:g} <= ymin={box.ymin:g}"),
    ]
    failed = [text for bad, text in checks if bad]
    if not failed:
        return None
    written = f" (written as {box.raw})" if box.raw else ""
    return (
        f"box {box.xmin:g},{box.ymin:g},{box.xmax:g},{box.ymax:g} in 0-based pixel edges"
        f"{written} is outside the {width}x{height} image: {'; '.join(failed)}. "
        "The image is skipped; fix the annotation so the box lies inside the image"
    )


def _single_class(pairs: list[tuple[str, Box]], where: str) -> Objects:
    if not pairs:
        raise AnnotationError(f"{where}: no objects; add at least one labelled box")
    names = sorted({wnid for wnid, _ in pairs})
    if len(names) > 1:
        raise AnnotationError(
            f"{where}: objects of several classes {names}; ILSVRC-2012 val images have one "
            "class each, keep only the boxes of the image's label"
        )
    return Objects(wnid=names[0], boxes=tuple(box for _, box in pairs))


def read_bbox_xml(path: Path) -> Objects:
    """Objects of an ILSVRC bbox XML file (``<object><name>wnid</name><bndbox>...``)."""
    size, most = path.stat().st_size, current().max_xml_bytes
    if size > most:
        raise AnnotationError(
            f"{path}: {size} bytes, more than {most} (a bbox XML is a few KB); it is not "
            "parsed: fix or regenerate the XML (dataset.max_xml_bytes raises the limit)"
        )
    try:
        root = ET.parse(path).getroot()
        pairs: list[tuple[str, Box]] = []
        for obj in root.iter("object"):
            if len(pairs) == current().max_boxes:
                raise AnnotationError(_too_many_boxes())
            name = (obj.findtext("name") or "").strip()
            bndbox = obj.find("bndbox")
            if bndbox is None:
                raise AnnotationError(f"object {name!r} has no <bndbox>")
            values = [float(bndbox.findtext(c) or "nan") for c in _COORDS]
            if any(v != v for v in values):
                raise AnnotationError(f"object {name!r} lacks one of <{'>, <'.join(_COORDS)}>")
            pairs.append((name, box_from_inclusive(*values)))
    except (ET.ParseError, ValueError) as exc:
        raise AnnotationError(f"{path}: {exc}; fix or regenerate the XML") from None
    except LookupError as exc:  # <?xml encoding="x-bogus"?>: Python knows no such codec
        raise AnnotationError(
            f"{path}: the XML declares an encoding Python does not know ({exc}); write it as "
            'UTF-8 (encoding="utf-8" or no declaration)'
        ) from None
    return _single_class(pairs, str(path))


def parse_prediction_string(text: str, where: str) -> Objects:
    """Kaggle ``PredictionString``: repeated ``wnid xmin ymin xmax ymax``."""
    tokens = text.split()
    if len(tokens) > 5 * current().max_boxes:
        raise AnnotationError(f"{where}: {_too_many_boxes()}; fix the row")
    if not tokens or len(tokens) % 5:
        raise AnnotationError(
            f"{where}: PredictionString has {len(tokens)} tokens, expected groups of 5 "
            "'wnid xmin ymin xmax ymax'; fix the row"
        )
    pairs = []
    for k in range(0, len(tokens), 5):
        try:
            values = [float(t) for t in tokens[k + 1 : k + 5]]
        except ValueError:
            raise AnnotationError(
                f"{where}: non-numeric box {' '.join(tokens[k : k + 5])!r}; fix the row"
            ) from None
        pairs.append((tokens[k], box_from_inclusive(*values)))
    return _single_class(pairs, where)
