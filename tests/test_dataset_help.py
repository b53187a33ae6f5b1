"""Issue 27.4: a dataset mistake says what the layout expects (a two-line tree), what was
found and which layout fits it; a dataset with no usable image is one line saying why.

The CLI runs in this process (tests/ops_helpers.foveabench_here); every mistake stops
before Ray or MLflow, on real JPEGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.ops_helpers import foveabench_here
from tests.test_manifest import jpeg

pytestmark = pytest.mark.unit


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str, root: Path) -> list[str]:
    """``foveabench run`` on ``root`` read as ``layout``: its stderr lines (exit code 2)."""
    config = tmp_path / "data.yaml"
    raw = {
        "name": "data",
        "output_dir": str(tmp_path / "out"),
        "dataset": {"layout": layout, "root": str(root)},
        "models": ["efficientnet_lite0"],
    }
    config.write_text(yaml.safe_dump(raw))
    done = foveabench_here(capsys, "run", str(config))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "manifest:" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()


def flat_folder(root: Path, n: int = 3) -> Path:
    for i in range(n):
        jpeg(root / f"photo_{i}.jpg")
    return root


def test_ilsvrc_on_a_flat_folder_shows_the_tree_and_where_the_images_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = flat_folder(tmp_path / "photos")
    first, tree1, tree2, found = run(tmp_path, capsys, "ilsvrc", root)
    assert first.startswith(f"dataset error: {root}: no bbox/ folder and no ILSVRC2012_valid")
    assert first.endswith("layout 'ilsvrc' expects:")
    assert tree1.strip().startswith(f"{root}/images/ILSVRC2012_val_00000001.JPEG")
    assert tree2.strip().startswith(f"{root}/bbox/ILSVRC2012_val_00000001.xml")
    assert f"found: 3 image(s) directly in {root}, no annotation files" in found
    assert "for layout: ilsvrc put them in images/" in found
    assert "for layout: imagefolder sort them into one folder per class" in found


def test_imagefolder_on_a_flat_folder_shows_the_class_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = flat_folder(tmp_path / "photos")
    first, tree1, tree2, found = run(tmp_path, capsys, "imagefolder", root)
    assert first == f"dataset error: {root}: no folder of images; layout 'imagefolder' expects:"
    assert tree1.strip().startswith(f"{root}/n01440764/any_name.JPEG")
    assert tree2.strip().startswith(f"{root}/n01443537/")
    assert "found: 3 image(s) directly in" in found and "one folder per class" in found


def test_wnid_folders_under_ilsvrc_suggest_imagefolder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "sorted"
    jpeg(root / "n01440764" / "a.jpg")
    jpeg(root / "n01443537" / "b.jpg")
    *_, found = run(tmp_path, capsys, "ilsvrc", root)
    assert "2 class folder(s) named by wnid with images" in found
    assert found.endswith("use layout: imagefolder")


def test_a_kaggle_download_under_ilsvrc_suggests_kaggle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "kaggle"
    jpeg(root / "val" / "ILSVRC2012_val_00000001.JPEG")
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n")
    *_, found = run(tmp_path, capsys, "ilsvrc", root)
    assert found.endswith("LOC_val_solution.csv is here: use layout: kaggle")


def test_kaggle_without_its_csv_shows_the_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = flat_folder(tmp_path / "photos")
    first, tree1, tree2, _ = run(tmp_path, capsys, "kaggle", root)
    assert first.endswith("no LOC_val_solution.csv; layout 'kaggle' expects:")
    assert "LOC_val_solution.csv" in tree1 and "ILSVRC/Data/CLS-LOC/val/" in tree2


def test_no_image_file_at_all_is_one_line_saying_0_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "empty"
    (root / "bbox").mkdir(parents=True)
    (line,) = run(tmp_path, capsys, "ilsvrc", root)
    assert line.startswith(f"dataset error: no usable image in dataset ilsvrc:{root}: 0 files")
    assert "point dataset.root at the folder that holds the images" in line


def test_every_file_bad_is_one_line_naming_the_bad_rows_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "broken"
    (root / "n01440764").mkdir(parents=True)
    (root / "n01440764" / "a.jpg").write_bytes(b"not a jpeg")
    jpeg(root / "not_a_wnid" / "b.jpg")
    (line,) = run(tmp_path, capsys, "imagefolder", root)
    bad_rows = tmp_path / "out" / "data" / "bad_rows.parquet"
    assert line.startswith(f"dataset error: no usable image in dataset imagefolder:{root}: ")
    assert "every file found is bad, 2 bad rows (" in line
    assert f"see {bad_rows}, each row names the file and its fix" in line
    assert bad_rows.is_file()


def test_ilsvrc_images_without_labels_say_what_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "val"
    jpeg(root / "images" / "ILSVRC2012_val_00000001.JPEG")
    *_, found = run(tmp_path, capsys, "ilsvrc", root)
    assert f"found: 1 image(s) in {root / 'images'}, no annotation files" in found
    assert found.endswith("add their labels beside images/: bbox/ (one XML per image) or "
                          "ILSVRC2012_validation_ground_truth.txt")  # fmt: skip
