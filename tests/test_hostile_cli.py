"""Command-line input that used to end in a traceback (issue 26): one line, exit code 2.

The CLI's ``main`` runs in this process (:func:`tests.ops_helpers.foveabench_here`): these
errors come after the heavy imports, so a fresh interpreter would only add its start-up;
what a fresh interpreter must show (no heavy import before a config error) is checked in
tests/test_hostile_config.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops_helpers import foveabench_here
from tests.test_hostile_config import write
from tests.test_manifest import jpeg

pytestmark = pytest.mark.unit


def test_prepare_out_pointing_at_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.write_text("a file")
    done = foveabench_here(capsys, "prepare", "--out", str(target))
    rc, err = done.returncode, done.stderr
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    (line,) = err.strip().splitlines()
    assert f"prepare --out {target}: exists and is not a directory" in line
    assert target.read_text() == "a file"


def test_no_usable_image_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    done = foveabench_here(capsys, "run", str(write(tmp_path, raw)))
    rc, err = done.returncode, done.stderr
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("dataset error: no usable image in dataset ilsvrc:")
    assert "2 bad rows" in last and "bad_rows.parquet" in last
    raw["dataset"]["limit"] = 0  # type: ignore[index]  # no image asked for: said so
    done = foveabench_here(capsys, "run", str(write(tmp_path, raw)))
    rc, err = done.returncode, done.stderr
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].endswith("dataset.limit is 0; raise it or leave it out")


def test_every_user_error_is_labelled_with_its_exit_code_by_main(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One mapping in ``main`` (issue 25.3): each command raises its own ``UserError``
    subclass and ``main`` prints ``<label>: <message>`` with the class's exit code."""
    from tests.ops_helpers import foveabench_here

    thresholds = write(tmp_path, "{max_drop: [1, 2]}", "t.yaml")
    out = str(tmp_path / "results")
    config = write(
        tmp_path, {"name": "net", "dataset": {"limit": 1}, "output_dir": out}, "run.yaml"
    )
    not_a_run = tmp_path / "plain"
    not_a_run.mkdir()
    cases = [  # (command, label, what the line must name: the cause, not another error)
        (
            ["nightly", str(config), "--thresholds", str(thresholds)],
            "thresholds error: ",
            "t.yaml",
            2,
        ),
        (["sync", str(not_a_run)], "sync error: ", str(not_a_run), 1),
        (["report", str(tmp_path / "nowhere")], "report: ", "nowhere", 2),
        (
            ["submit", str(config), "--address", "http://127.0.0.1:9", "--connect-timeout", "1"],
            "submit error: ",
            "http://127.0.0.1:9",
            2,
        ),
    ]
    for args, label, cause, code in cases:
        ran = foveabench_here(capsys, *args)
        lines = ran.stderr.strip().splitlines()
        assert ran.returncode == code and "Traceback" not in ran.stderr, (args, ran.stderr[-2000:])
        assert any(line.startswith(label) and cause in line for line in lines), (args, lines[-3:])
