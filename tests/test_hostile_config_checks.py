"""Configs the run cannot honour (issue 26): refused at load with one line and exit 2,
before torch is imported (:func:`tests.test_hostile_config.cli`, a fresh interpreter).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_hostile_config import cli

pytestmark = pytest.mark.unit


def error_line(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    rc, heavy, err, _ = cli("run", str(path), "--output-dir", str(tmp_path / "out"))
    assert rc == 2 and heavy == [], err[-3000:]
    (line,) = err.strip().splitlines()
    assert str(path) in line
    return line


def test_an_empty_or_comment_only_config_is_an_error(tmp_path: Path) -> None:
    line = error_line(tmp_path, "# only a comment\n")
    assert "empty (or only comments)" in line and "omit the path to run the demo" in line
    assert not (tmp_path / "out").exists()


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    line = error_line(tmp_path, "name: first\nlimit: 1\nname: second\n")
    assert "key 'name' is written twice" in line and "line 3" in line and "line 1" in line
