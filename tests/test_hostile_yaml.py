"""Hostile YAML (issue 26): a config file can neither hang, exhaust nor crash the driver,
and every answer is one bounded line with exit 2, before anything heavy is imported.

Each file is written on the fly and given to the real CLI in a fresh interpreter
(:func:`tests.test_hostile_config.cli`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_hostile_config import cli

pytestmark = pytest.mark.unit


def one_line_error(path: Path) -> str:
    """The single stderr line of ``foveabench run PATH``, after checking exit 2 and no heavy import."""
    rc, heavy, err, _ = cli("run", str(path))
    assert rc == 2 and heavy == [], err[-3000:]
    (line,) = err.strip().splitlines()
    assert len(line) < 600, f"an error line of {len(line)} characters"
    return line


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    levels = ["&l0 [" + ", ".join(["clean"] * 9) + "]"]
    levels += [f"&l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]" for k in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("tasks: [" + ", ".join(levels) + "]\n")
    line = one_line_error(path)
    assert "aliases" in line and "100000 values" in line and str(path) in line


def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("tasks: " + "[" * 100_000 + "\n")
    line = one_line_error(path)
    assert "nested more than 64 levels" in line and "line 1" in line


def test_a_huge_file_is_refused_unread_and_long_values_are_cut(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("junk: " + "x" * 5_000_000 + "\n")
    assert "a config is a few KB" in one_line_error(huge)
    long = tmp_path / "long.yaml"
    long.write_text("junk: " + "x" * 100_000 + "\n")
    line = one_line_error(long)
    assert "unknown key" in line and re.search(r"\.\.\. \(1000\d\d characters\)", line)
