"""The help in a dataset error: the structure a layout expects, what the root holds, and
which layout (or which move) fits it.

A user who points ``layout: ilsvrc`` at a flat folder of JPEGs should not have to find
the expected tree in a docstring: the error shows it in two lines with their own root,
says what was found there and suggests the layout that reads it. Only called once a
layout has failed, so looking around the root costs nothing on a good run; nothing is
opened, only listed (one level below the root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.data.classes import wnid_to_index
from pipeline.data.probe import folders_inside, named_like_image

GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_CSV = "LOC_val_solution.csv"
KAGGLE_IMAGE_DIRS = ("ILSVRC/Data/CLS-LOC/val", "val")

#: Each layout's structure, two lines (``{root}`` is the dataset root).
TREES: dict[str, tuple[str, str]] = {
    "ilsvrc": (
        "{root}/images/ILSVRC2012_val_00000001.JPEG   (the images; or directly in {root})",
        f"{{root}}/bbox/ILSVRC2012_val_00000001.xml   (or {{root}}/{GROUND_TRUTH} + "
        "meta.mat or wnids.txt)",
    ),
    "kaggle": (
        f"{{root}}/{KAGGLE_CSV}   (ImageId,PredictionString)",
        "{root}/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG   (or {root}/val/...)",
    ),
    "imagefolder": (
        "{root}/n01440764/any_name.JPEG   (one folder per class, named by its wnid)",
        "{root}/n01443537/another.JPEG",
    ),
}


@dataclass(frozen=True)
class Found:
    """What a dataset root holds, as far as telling the layouts apart needs."""

    root: Path
    flat_images: int  # named like images, directly in the root
    images_dir: int  # in <root>/images/
    wnid_folders: int  # folders named like an ImageNet class that hold images
    other_folders: int  # other folders that hold images
    bbox: bool
    ground_truth: bool
    kaggle_csv: bool

    def describe(self) -> str:
        """``found: 12 images directly in /x, no annotations`` and the like."""
        parts = []
        if self.flat_images:
            parts.append(f"{self.flat_images} image(s) directly in {self.root}")
        if self.images_dir:
            parts.append(f"{self.images_dir} image(s) in {self.root / 'images'}")
        if self.wnid_folders:
            parts.append(f"{self.wnid_folders} class folder(s) named by wnid with images")
        if self.other_folders:
            parts.append(f"{self.other_folders} folder(s) of images not named by a wnid")
        notes = [
            name
            for name, present in (
                ("bbox/", self.bbox),
                (GROUND_TRUTH, self.ground_truth),
                (KAGGLE_CSV, self.kaggle_csv),
            )
            if present
        ]
        parts.append(", ".join(notes) if notes else "no annotation files")
        if not (self.flat_images or self.images_dir or self.wnid_folders or self.other_folders):
            parts.insert(0, "no image files")
        return "found: " + ", ".join(parts)


def _images(directory: Path) -> int:
    try:
        return sum(1 for p in directory.iterdir() if named_like_image(p))
    except OSError:
        return 0


def look(root: Path) -> Found:
    """What ``root`` holds (names only, one level below it)."""
    classes = wnid_to_index()
    wnid_folders = other = 0
    try:
        folders = folders_inside(root)  # a link out of the root is not looked into
    except OSError:
        folders = []
    for folder in folders:
        if folder.name in ("images", "bbox") or not _images(folder):
            continue
        if folder.name in classes:
            wnid_folders += 1
        else:
            other += 1
    return Found(
        root=root,
        flat_images=_images(root),
        images_dir=_images(root / "images") if root / "images" in folders else 0,
        wnid_folders=wnid_folders,
        other_folders=other,
        bbox=(root / "bbox").is_dir(),
        ground_truth=any(
            (p / GROUND_TRUTH).is_file() for p in (root, *(f / "data" for f in folders))
        ),
        kaggle_csv=(root / KAGGLE_CSV).is_file(),
    )


def suggest(layout: str, found: Found) -> str:
    """The layout that reads what was found, or what to move where."""
    if found.kaggle_csv and layout != "kaggle":
        return f"{KAGGLE_CSV} is here: use layout: kaggle"
    if (found.bbox or found.ground_truth) and layout != "ilsvrc":
        return "ILSVRC annotations are here: use layout: ilsvrc"
    if found.wnid_folders and layout != "imagefolder":
        return "the images are sorted into wnid folders: use layout: imagefolder"
    if found.images_dir and layout == "ilsvrc":
        return f"add their labels beside images/: bbox/ (one XML per image) or {GROUND_TRUTH}"
    if found.flat_images or found.images_dir or found.other_folders:
        return (
            "the images have no labels yet: for layout: ilsvrc put them in images/ beside "
            f"bbox/ or {GROUND_TRUTH}; for layout: imagefolder sort them into one folder "
            "per class named by its wnid (e.g. n01440764/)"
        )
    return "point dataset.root at the folder that holds the images"


def explain(layout: str, root: Path, problem: str) -> str:
    """A dataset error's text: the problem, the expected tree (two lines), what was found
    and the suggestion."""
    found = look(root)
    tree = "\n".join(f"    {line.format(root=root)}" for line in TREES[layout])
    return (
        f"{problem}; layout {layout!r} expects:\n{tree}\n"
        f"  {found.describe()}; {suggest(layout, found)}"
    )
