"""Issue 27.6: the command line's habits: ``list``, ``--version``, overrides that meet the
YAML's checks, help on every option, and the first nightly's values as its baseline."""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

import pytest
import yaml

from pipeline.cli.main import build_parser
from pipeline.cli.run import config_overrides
from pipeline.config.benchmark import load_config
from tests.ops_helpers import foveabench_here

pytestmark = pytest.mark.unit


def registered(kind: str) -> list[str]:
    """The names each registry holds (the real ones, which import torch)."""
    if kind == "models":
        from pipeline.models import networks as models

        return [*models.MODELS.names(), *(f"{p}:<name>" for p in models._PREFIXES)]
    if kind == "attacks":
        from tasks.attacks.specs import ATTACK_SPECS

        return ATTACK_SPECS.names()
    if kind == "tasks":
        from tasks.protocol import TASKS

        return TASKS.names()
    from pipeline.data import LAYOUTS

    return LAYOUTS.names()


@pytest.mark.parametrize("kind", ["models", "attacks", "tasks", "layouts"])
def test_list_names_every_registered_entry(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    done = foveabench_here(capsys, "list", kind)
    assert done.returncode == 0, done.stderr
    first_words = [
        line.split()[0] for line in done.stdout.splitlines()[1:] if line.startswith("  ")
    ]
    names = registered(kind)
    assert names and set(names) <= set(first_words), done.stdout


def test_list_without_a_kind_lists_all_four(capsys: pytest.CaptureFixture[str]) -> None:
    done = foveabench_here(capsys, "list")
    assert done.returncode == 0
    for kind in ("models", "attacks", "tasks", "layouts"):
        assert set(registered(kind)) <= set(done.stdout.split()), kind


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"foveabench {importlib.metadata.version('foveabench')}"), out


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_option_of_every_subcommand_has_help() -> None:
    parser = build_parser()
    commands = subparsers(parser)
    assert {"run", "prepare", "bench", "nightly", "submit", "sync", "report", "list"} <= set(
        commands
    )
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in [("foveabench", parser), *commands.items()]
        for action in sub._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not (action.help or "").strip()
    ]
    assert not missing, f"options without help: {missing}"


def test_run_help_shows_no_file_path_for_the_embedded_default() -> None:
    text = subparsers(build_parser())["run"].format_help()
    assert "demo" in text
    assert ".yaml" not in text and "configs/" not in text, text


def write(tmp_path: Path, raw: dict[str, object]) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BASE = {
    "name": "base",
    "attacks": [{"sign": {"loss": "score"}}, "bfgs"],
    "models": ["efficientnet_lite0"],
}


def loaded(tmp_path: Path, *argv: str) -> object:
    args = build_parser().parse_args(["run", str(write(tmp_path, BASE)), *argv])
    return load_config(args.config, config_overrides(args))


def test_overrides_change_the_config(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        "--attacks", "sign,ddn", "--models", "efficientnet_lite1,efficientnet_lite0",
        "--tasks", "clean", "--device", "cpu", "--limit", "3", "--output-dir", "elsewhere",
        "--set", "eval.points=[3, 5.3]", "--set", "criterion.top_k=1", "--set", "ray.pooled=true",
    )  # fmt: skip
    assert [(a.name, a.params.changed()) for a in cfg.attacks] == [  # type: ignore[attr-defined]
        ("sign", {"loss": "score"}),  # the file's settings of a name kept
        ("ddn", {}),
    ]
    assert [m.name for m in cfg.models] == ["efficientnet_lite1", "efficientnet_lite0"]  # type: ignore[attr-defined]
    assert cfg.tasks == ("clean",) and cfg.device == "cpu"  # type: ignore[attr-defined]
    assert cfg.dataset.limit == 3 and cfg.output_dir == "elsewhere"  # type: ignore[attr-defined]
    assert cfg.eval.points == (3, 5.3) and cfg.top_k == 1 and cfg.ray.pooled is True  # type: ignore[attr-defined]


#: (override on the command line, the same value in the YAML)
SAME_CHECKS = [
    (["--attacks", "sgn"], {"attacks": ["sgn"]}),
    (["--models", "efficientnet_lite9"], {"models": ["efficientnet_lite9"]}),
    (["--tasks", "clen"], {"tasks": ["clen"]}),
    (["--device", "gpu"], {"device": "gpu"}),
    (["--limit", "-3"], {"dataset": {"limit": -3}}),
    (["--limit", "abc"], {"dataset": {"limit": "abc"}}),
    (["--set", "eval.rtol=2"], {"eval": {"rtol": 2}}),
    (["--set", "evl.rtol=0.1"], {"evl": {"rtol": 0.1}}),
    (["--set", "criterion.top_k=0"], {"criterion": {"top_k": 0}}),
    (["--set", "attacks=[{ddn: {gamma: 1.5}}]"], {"attacks": [{"ddn": {"gamma": 1.5}}]}),
]


@pytest.mark.parametrize(("argv", "raw"), SAME_CHECKS, ids=[" ".join(a) for a, _ in SAME_CHECKS])
def test_an_override_meets_the_yaml_check_and_message(
    argv: list[str], raw: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path, {"name": "base"})
    by_flag = foveabench_here(capsys, "run", str(base), *argv)
    in_file = tmp_path / "in_file.yaml"
    in_file.write_text(yaml.safe_dump({"name": "base", **raw}))
    by_yaml = foveabench_here(capsys, "run", str(in_file))
    assert by_flag.returncode == by_yaml.returncode == 2, by_flag.stderr + by_yaml.stderr
    (flag_line,) = by_flag.stderr.strip().splitlines()
    (yaml_line,) = by_yaml.stderr.strip().splitlines()
    message = yaml_line.removeprefix(f"config error: {in_file}: ")
    assert message != yaml_line, yaml_line
    assert flag_line == f"config error: {base}: {message}", (flag_line, yaml_line)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--set", "eval.rtol"], "--set 'eval.rtol': write KEY=VALUE"),
        (["--set", "name.x=1"], "--set name.x: name = 'base' is a value, not a section"),
        (["--set", "eval.points=[1"], "--set eval.points: not valid YAML"),
    ],
)
def test_a_malformed_set_is_one_line(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = foveabench_here(capsys, "run", str(write(tmp_path, {"name": "base"})), *argv)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("config error: ") and fragment in line, line


def test_first_nightly_prints_its_values_as_the_baseline() -> None:
    from pipeline.ops.regression import Report, compare, load_thresholds, summary_lines

    tonight = {"efficientnet_lite0/clean_top5": 1.0, "efficientnet_lite0/running/x": 2.0}
    report = Report("nightly-2026-01-10-abc1234", "r1", "cfg", [])
    report.rows = compare(tonight, {}, load_thresholds(None))
    lines = summary_lines(report)
    assert lines[0].startswith("nightly nightly-2026-01-10-abc1234: NEW BASELINE"), lines
    assert "tonight's 1 checked metrics are the baseline" in lines[0]
    assert lines[1].split() == ["efficientnet_lite0/clean_top5", "1"]
    assert len(lines) == 2  # the ignored progress metric is not a baseline value


def test_readme_config_reference_is_generated_from_the_schema() -> None:
    from pipeline.config.reference import markdown_table, rows

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start, end = "<!-- config: python -m pipeline.config.reference -->\n", "\n<!-- /config -->"
    assert start in readme and end in readme, "the README lost its config reference markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == markdown_table(), "regenerate it: python -m pipeline.config.reference"
    keys = {key for key, *_ in rows()}
    assert {"device", "rtol", "ray.cpus_per_actor", "eval.rtol", "dataset.limit"} <= keys


def test_list_and_version_answer_without_torch_in_a_fresh_interpreter() -> None:
    from tests.test_hostile_config import cli

    for argv in (["list"], ["--version"]):
        rc, heavy, err, seconds = cli(*argv)
        assert seconds < 30, f"{seconds:.1f} s"
        assert rc == 0, err[-2000:]
        assert heavy == [], f"foveabench {' '.join(argv)} imported {heavy}"
