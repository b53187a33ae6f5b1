"""A dataset on an object store, read with the local layouts: a shadow tree.

The layouts (ilsvrc, kaggle, imagefolder) walk folders and read annotation
files. For ``dataset.root = s3://...`` the driver lists the prefix once,
downloads only the annotation files (XML, CSV, devkit text) into a temporary
shadow tree and puts an empty placeholder where each image is; the layout then
runs unchanged. Images are never downloaded whole by the driver: their size is
read from the first bytes of the object (the header), and the manifest records
the image's URI, which the actors read directly. A remote image that turns out
not to decode becomes an error row when an actor decodes it.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pipeline.data.probe import IMAGE_SUFFIXES, ImageProblem
from pipeline.results.storage import Location

HEADER_BYTES = 1 << 18  # enough for the size markers of a JPEG or PNG with metadata


@dataclass
class Shadow:
    """The local shadow of a remote root: placeholder path -> the image's URI."""

    root: Path
    images: dict[Path, str] = field(default_factory=dict)

    def uri(self, path: Path) -> str | None:
        return self.images.get(path)


@contextlib.contextmanager
def shadow_tree(root: Location) -> Iterator[Shadow]:
    with tempfile.TemporaryDirectory(prefix="foveabench-dataset-") as tmp:
        shadow = Shadow(Path(tmp).resolve())
        files = root.files()
        if not files:
            raise ImageProblem(
                "missing_image",
                f"{root}: nothing under this prefix (or no permission to list it); check "
                "dataset.root and AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            )
        for loc in files:
            local = shadow.root / loc.relative_to(root).as_posix()
            local.parent.mkdir(parents=True, exist_ok=True)
            if local.suffix.lower() in IMAGE_SUFFIXES:
                local.touch()
                shadow.images[local] = str(loc)
            else:
                local.write_bytes(loc.read_bytes())
        yield shadow


def probe_remote(uri: str) -> tuple[int, int]:
    """``(width, height)`` from the first bytes of a remote image."""
    loc = Location(uri)
    try:
        with loc.fs.open_input_file(loc.path) as f:
            head = f.read(HEADER_BYTES)
        with Image.open(io.BytesIO(head)) as im:
            return im.size
    except FileNotFoundError:
        raise ImageProblem(
            "missing_image", f"{uri} does not exist; add it or fix the path"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(
            "unreadable_image",
            f"{uri}: not a readable image header ({type(exc).__name__}: {exc}); re-upload the file",
        ) from None
