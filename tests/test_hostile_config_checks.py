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


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("eval: {dense_check: -5}", ["eval.dense_check = -5", "must be >= 0"]),
        ("eval: {batch_size: 0}", ["eval.batch_size = 0", "must be >= 1"]),
        ("eval: {max_batch_size: -1}", ["eval.max_batch_size = -1", "must be >= 1"]),
        ("eval: {alphas: [-1, 2]}", ["eval.alphas = [-1.0, 2.0]", "non-negative"]),
        ("criterion: {top_k: 5000}", ["criterion.top_k = 5000", "up to 1000"]),
        ("tasks: [clean, clean]", ["tasks[1] = 'clean'", "listed twice"]),
        ("eval: {saliency: bogus}", ["eval.saliency = 'bogus'", "spectral_residual"]),
    ],
)
def test_values_the_actors_would_refuse_are_refused_at_load(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    line = error_line(tmp_path, text + "\n")
    for fragment in fragments:
        assert fragment in line


def test_an_unknown_crop_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    line = error_line(tmp_path, "eval: {crops: [objet_crop]}\n")
    assert "eval.crops[0] = 'objet_crop'" in line and "did you mean 'object_crop'" in line


def test_an_input_size_no_network_takes_is_refused_before_torch(tmp_path: Path) -> None:
    line = error_line(tmp_path, "models: [{efficientnet_lite0: {input_size: 100000}}]\n")
    assert "input_size = 100000" in line and "at most 4096 pixels" in line


def test_the_torch_free_saliency_names_match_the_registry() -> None:
    from pipeline.config.names import SALIENCY_NAMES
    from tasks.saliency import SALIENCY

    assert SALIENCY_NAMES.names() == SALIENCY.names()
