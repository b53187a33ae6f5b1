"""Command-line input that used to end in a traceback (issue 26): one line, exit code 2
(:func:`tests.test_hostile_config.cli` runs the real CLI in a fresh interpreter).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_hostile_config import cli, write
from tests.test_manifest import jpeg

pytestmark = pytest.mark.unit


def test_prepare_out_pointing_at_a_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("a file")
    rc, _, err, _ = cli("prepare", "--out", str(target))
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    (line,) = err.strip().splitlines()
    assert f"prepare --out {target}: exists and is not a directory" in line
    assert target.read_text() == "a file"


def test_no_usable_image_is_one_line_exit_2(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.JPEG").write_bytes(b"not a jpeg")
    jpeg(root / "images" / "b.JPEG")  # good, but without its XML
    (root / "bbox").mkdir()
    (root / "bbox" / "a.xml").write_text("<annotation/>")
    raw = {
        "name": "nothing",
        "output_dir": str(tmp_path / "out"),
        "dataset": {"layout": "ilsvrc", "root": str(root)},
        "models": ["efficientnet_lite0"],
    }
    rc, _, err, _ = cli("run", str(write(tmp_path, raw)))
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("dataset error: no usable image in dataset ilsvrc:")
    assert "2 bad rows" in last and "bad_rows.parquet" in last
    raw["dataset"]["limit"] = 0  # type: ignore[index]  # no image asked for: said so
    rc, _, err, _ = cli("run", str(write(tmp_path, raw)))
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].endswith("dataset.limit is 0; raise it or leave it out")
