"""Hostile entries that used to hang a start (issue 26): a FIFO or other special file named
like an image or annotation is a bad row and is never opened.

The manifest is built in a child interpreter with a timeout: opening a FIFO blocks
forever, and a test must fail rather than hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_manifest import TENCH, jpeg, xml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]

KINDS = """
import json, sys
from pipeline.data import build_manifest
m = build_manifest("ilsvrc", sys.argv[1])
bad = {r["image_id"]: [r["kind"], r["reason"]] for r in m.bad_rows.to_pylist()}
print(json.dumps({"good": m.table.column("image_id").to_pylist(), "bad": bad}))
"""


def test_fifos_named_like_images_or_annotations_are_bad_rows_never_opened(
    tmp_path: Path,
) -> None:
    images, bbox = tmp_path / "images", tmp_path / "bbox"
    jpeg(images / "a.JPEG")
    xml(bbox / "a.xml", (TENCH, 1, 1, 40, 30))
    jpeg(images / "b.JPEG")
    os.mkfifo(bbox / "b.xml")
    os.mkfifo(images / "c.JPEG")
    xml(bbox / "c.xml", (TENCH, 1, 1, 40, 30))
    done = subprocess.run(
        [sys.executable, "-c", KINDS, str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["good"] == ["a"]
    assert {k: v[0] for k, v in result["bad"].items()} == {"b": "not_a_file", "c": "not_a_file"}
    for _, reason in result["bad"].values():
        assert "is a FIFO, not a regular file" in reason and "remove it" in reason
