"""The ``sample`` dataset: real photos shipped inside installed packages.

It is the embedded default, so it must work offline: only files that the
scikit-image and matplotlib wheels install on disk are used (skimage's
pooch-fetched images are not). Labels are what a person would name the photo
among the ILSVRC-2012 classes; boxes were drawn by eye on the photos, in
0-based pixel-edge coordinates of the original image (pixel column ``i`` is
inside iff ``xmin <= i < xmax``), like the rest of the manifest.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

# Where each package keeps its bundled photos, relative to the package directory.
_DATA_DIRS = {
    "skimage": Path("data"),
    "matplotlib": Path("mpl-data/sample_data"),
}


@dataclass(frozen=True)
class SamplePhoto:
    """One photo: where it ships, its label and its hand-drawn object boxes."""

    name: str  # image_id
    package: str
    filename: str
    wnid: str
    boxes: tuple[tuple[float, float, float, float], ...]  # (xmin, ymin, xmax, ymax)
    note: str = ""

    def path(self) -> Path:
        """The file inside the installed package (may not exist if the package changed)."""
        module = importlib.import_module(self.package)
        return Path(next(iter(module.__path__))) / _DATA_DIRS[self.package] / self.filename


SAMPLE_PHOTOS: tuple[SamplePhoto, ...] = (
    SamplePhoto(
        "camera",
        "skimage",
        "camera.png",
        "n04485082",
        ((228, 182, 410, 512),),
        "cameraman (grayscale); the tripod from its head down, the camcorder left out",
    ),
    SamplePhoto(
        "chelsea",
        "skimage",
        "chelsea.png",
        "n02123045",
        ((0, 0, 395, 300),),
        "tabby cat, close-up of the head",
    ),
    SamplePhoto(
        "coffee",
        "skimage",
        "coffee.png",
        "n07920052",
        ((170, 14, 425, 292),),
        "espresso cup with the spoon; the saucer is left out",
    ),
    SamplePhoto(
        "grace_hopper",
        "matplotlib",
        "grace_hopper.jpg",
        "n03763968",
        ((20, 312, 512, 600),),
        "navy dress uniform (jacket); the cap is left out",
    ),
    SamplePhoto(
        "motorcycle_left",
        "skimage",
        "motorcycle_left.png",
        "n03785016",
        ((92, 110, 686, 452),),
        "motorcycle; ImageNet has no motorcycle class, moped is the nearest",
    ),
    SamplePhoto(
        "motorcycle_right",
        "skimage",
        "motorcycle_right.png",
        "n03785016",
        ((46, 100, 630, 452),),
        "same motorcycle from the right camera of the stereo pair",
    ),
    SamplePhoto(
        "rocket",
        "skimage",
        "rocket.jpg",
        "n03773504",
        ((303, 125, 342, 400),),
        "Falcon 9 on the pad; ImageNet's class for rockets is missile",
    ),
)
