"""Read an image's size and prove the whole file decodes, cheaply.

``Image.open`` only parses the header and ``verify()`` does not decode JPEG
data, so a JPEG cut in half passes both. We therefore decode the file, but a
JPEG in draft mode: libjpeg then scales the DCT to 1/8 size, which still reads
every entropy-coded byte (so truncation raises "image file is truncated") at
about half the cost of a full decode (~1 ms for a 500x375 ILSVRC photo).
Other formats are decoded fully (PNG/others have no cheaper complete check).

Before any of that, checks that read no image data: the file must lie
inside the dataset root once links are resolved (nothing outside the root is
ever read), it must be a regular file (a FIFO, device or directory named like
an image is never opened: opening a FIFO blocks forever), and a header that claims more pixels than PIL's decompression-bomb
limit is refused, not decoded. Each failure is an :class:`ImageProblem`,
which the manifest turns into one bad row.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from PIL import Image

from pipeline.data.limits import current

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".webp"})


class ImageProblem(Exception):
    """The file is missing or does not decode; ``kind`` is a bad-row kind."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _oversized(claim: str) -> ImageProblem:
    limit = Image.MAX_IMAGE_PIXELS or 0
    return ImageProblem(
        "oversized_image",
        f"the image header claims too many pixels ({claim}; the decompression-bomb limit is "
        f"{limit} pixels); the file is skipped without being decoded (an ImageNet photo has "
        "~0.2 Mpixel): downscale it or remove it",
    )


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def named_like_image(path: Path) -> bool:
    """An image's name, whatever the entry is: a non-file is then a bad row, not skipped."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def not_a_file(path: Path) -> str | None:
    """Why ``path`` (links resolved, nothing opened) is not a regular file, or None when it
    is one or does not exist."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    what = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else None
    what = what or ("a socket" if stat.S_ISSOCK(mode) else "a device or other special file")
    return (
        f"{path} is {what}, not a regular file; it is not opened (reading a FIFO or device "
        "can block forever): replace it with the file itself or remove it"
    )


def outside_root(path: Path, root: Path) -> str | None:
    """Where ``path`` really points when that is outside ``root`` (resolved), else None."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop
        return f"an unresolvable link ({exc})"
    return None if real.is_relative_to(root) else str(real)


def folders_inside(root: Path) -> list[Path]:
    """The folders directly in ``root`` that stay inside it once links are resolved, sorted:
    a link to ``..`` or ``/usr`` is neither listed nor looked into. Only folders and links
    are resolved (a flat root of 50,000 images costs one listing)."""
    with os.scandir(root) as entries:
        names = [e.name for e in entries if e.is_symlink() or e.is_dir(follow_symlinks=False)]
    found = (root / name for name in sorted(names))
    return [p for p in found if outside_root(p, root) is None and p.is_dir()]


def probe_image(path: Path, root: Path | None = None) -> tuple[int, int]:
    """``(width, height)`` of ``path`` after checking the file decodes completely.

    With ``root``, a path that resolves outside it (a ``..`` in an annotation, a
    symbolic link) is refused before the file is opened.
    """
    where = outside_root(path, root) if root is not None else None
    if where is not None:
        raise ImageProblem(
            "outside_root",
            f"{path} resolves to {where}, outside the dataset root {root}; foveabench reads "
            "nothing outside dataset.root: copy the file into the root (or point dataset.root "
            "at the directory the links lead to) and fix the annotation",
        )
    special = not_a_file(path)
    if special is not None:
        raise ImageProblem("not_a_file", special)
    if not path.is_file():
        raise ImageProblem(
            "missing_image", f"image file {path} does not exist; add it or fix the path"
        )
    try:
        with Image.open(path) as im:  # parses the header only
            size = im.size
            limit = Image.MAX_IMAGE_PIXELS  # None: the user switched PIL's check off
            if limit is not None and size[0] * size[1] > limit:  # PIL only warns below 2x
                raise _oversized(f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels")
            aspect = current().max_aspect  # an ImageNet photo is under 6:1
            if max(size) > aspect * max(1, min(size)):
                raise ImageProblem(
                    "oversized_image",
                    f"the image is {size[0]}x{size[1]}, more than {aspect:g}:1; resizing its "
                    "short side to a network's input would make a huge image, so it is skipped "
                    "without being decoded: crop it or remove it (dataset.max_aspect raises "
                    "the limit)",
                )
            im.draft(im.mode, (1, 1))  # no-op except for JPEG
            im.load()
    except Image.DecompressionBombError as exc:  # PIL refuses to even open it
        raise _oversized(str(exc).split(",")[0]) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(
            "unreadable_image",
            f"unreadable or truncated image ({type(exc).__name__}: {exc}); "
            "re-download or re-extract the file",
        ) from None
    return size
