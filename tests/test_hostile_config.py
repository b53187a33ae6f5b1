"""Hostile configs and run dirs (issue 13): one-line errors, exit 2, before any heavy import.

Each bad config is written on the fly and given to the real CLI in a fresh
interpreter, which reports its exit code and which heavy modules it had
imported when the error was printed; each answer is timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.config.benchmark import ConfigError
from pipeline.results import rundir

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "mlflow", "polars", "pyarrow")

#: Runs the CLI in-process, then says what it imported.
PROBE = f"""
import json, sys
from pipeline.cli.main import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
print(json.dumps({{"rc": rc, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


def cli(*args: str, cwd: Path = ROOT) -> tuple[int, list[str], str, float]:
    """(exit code, heavy modules imported, stderr, seconds) of ``foveabench ARGS``."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    seconds = time.perf_counter() - start
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["rc"], report["heavy"], done.stderr, seconds


def write(tmp_path: Path, raw: object, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


BAD_CONFIGS = [
    # (config, fragments the one-line error must contain: key, bad value, fix)
    ({"attacks": ["sgn"]}, ["attacks[0]", "'sgn'", "did you mean 'sign'"]),
    ({"attacks": [{"sign": {"los": "ce"}}]}, ["attack 'sign'", "'los' = 'ce'", "'loss'"]),
    ({"attacks": [{"ddn": {"gamma": 1.5}}]}, ["attack 'ddn'", "gamma = 1.5", "must be < 1"]),
    ({"attacks": [{"cw": {"max_iter": "10"}}]}, ["max_iter = '10'", "must be an integer"]),
    ({"attacks": ["sign", "sign"]}, ["attacks[1] = 'sign'", "listed twice"]),
    (
        {"models": ["efficientnet_lite9"]},
        ["models[0] = 'efficientnet_lite9'", "'efficientnet_lite"],
    ),
    ({"models": ["tim:resnet50"]}, ["models[0] = 'tim:resnet50'", "did you mean 'timm:resnet50'"]),
    ({"dataset": {"limit": "2"}}, ["dataset", "limit = '2'", "must be an integer or null"]),
    ({"dataset": {"limit": -3}}, ["dataset", "limit = -3", "must be >= 0"]),
    (
        {"dataset": {"layout": "ilsvcr", "root": "."}},
        ["dataset.layout = 'ilsvcr'", "did you mean 'ilsvrc'"],
    ),
    ({"tasks": "clean"}, ["tasks = 'clean'", "write tasks: [clean]"]),
    ({"top_k": 1}, ["top_k = 1", "write criterion: {top_k: 1}"]),
    ({"criterion": {"top_k": 1, "topk": 5}}, ["criterion.topk = 5", "known: top_k"]),
    ({"name": ".."}, ["name = '..'", "one directory name"]),
    ({"name": "runs/../../etc"}, ["name = 'runs/../../etc'", "no '/'"]),
    ({"ray": {"gpus_per_actor": "one"}}, ["ray", "gpus_per_actor = 'one'", "must be a number"]),
    ({"device": "gpu"}, ["device = 'gpu'", "use auto, cpu, cuda"]),
    ({"best_known": 3}, ["best_known = 3", "must be a folder path or a URI"]),
    (
        {"attacks": ["random"], "tasks": ["clean", "adaptive"]},
        ["adaptive with attacks = ['random']", "needs a gradient attack", "attacks: [sign]"],
    ),
    ({"eval": {"eot_draws": 0}}, ["eval.eot_draws = 0", "at least 1 draw per step"]),
    (
        {"eval": {"adaptive_foveations": ["tree_crop"]}},
        ["eval.adaptive_foveations[0] = 'tree_crop'", "did you mean 'three_crop'"],
    ),
    (
        {"eval": {"crops": ["object_crop"], "adaptive_foveations": ["ten_crop"]}},
        ["eval.adaptive_foveations[0] = 'ten_crop'", "add it to eval.crops as well"],
    ),
    (
        {"eval": {"object_crops": ["ten_crop_obj"]}},
        ["eval.object_crops[0] = 'ten_crop_obj'", "did you mean 'ten_crop_object'"],
    ),
    (
        {"eval": {"object_crops": ["one_crop_object"], "adaptive_foveations": ["ten_crop_object"]}},
        ["eval.adaptive_foveations[0] = 'ten_crop_object'", "add it to eval.object_crops as well"],
    ),
    ("name: demo\nattacks: [sign\n", ["not valid YAML at line 3", "fix the indentation"]),
]


@pytest.mark.parametrize(("raw", "fragments"), BAD_CONFIGS, ids=[str(c[0]) for c in BAD_CONFIGS])
def test_config_errors_are_one_line_exit_2_fast_and_light(
    tmp_path: Path, raw: object, fragments: list[str]
) -> None:
    path = write(tmp_path, raw)
    rc, heavy, err, seconds = cli("run", str(path), "--output-dir", str(tmp_path / "out"))
    assert rc == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"config error: {path}: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert heavy == [], f"imported {heavy} before printing a config error"
    assert seconds < 2.0, f"config error took {seconds:.1f} s"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unwritable_output_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = write(tmp_path, {"name": "x", "output_dir": str(blocker / "results")})
    rc, heavy, err, seconds = cli("run", str(path))
    assert rc == 2 and heavy == [] and seconds < 2.0
    (line,) = err.strip().splitlines()
    assert f"output_dir = '{blocker / 'results'}': not a writable directory" in line
    assert "set output_dir (or --output-dir)" in line
    assert blocker.read_text() == "not a directory"


def test_help_and_help_attack_answer_fast_without_heavy_imports() -> None:
    rc, heavy, _, seconds = cli("--help")
    assert rc == 0 and heavy == [] and seconds < 2.0
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--help-attack", "ddn"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ddn: ") and "minimises l2" in lines[1]
    gamma = next(line for line in lines if line.strip().startswith("gamma"))
    assert "0.05" in gamma and "> 0, < 1" in gamma
    rc, heavy, err, _ = cli("run", "--help-attack", "dddn")
    assert rc == 2 and heavy == [] and "did you mean 'ddn'" in err


def test_a_timm_name_that_does_not_exist_fails_before_any_run_starts(tmp_path: Path) -> None:
    """Existence of ``timm:<name>`` needs timm (torch): checked then, before manifest/Ray/MLflow."""
    out = tmp_path / "out"
    path = write(tmp_path, {"name": "x", "models": ["timm:resnet5O"], "output_dir": str(out)})
    rc, heavy, err, _ = cli("run", str(path))
    assert rc == 2, err
    (line,) = err.strip().splitlines()
    assert "models[0] = 'timm:resnet5O': timm has no model 'resnet5O'" in line
    assert "ray" not in heavy and "mlflow" not in heavy
    assert list(out.iterdir()) == [], "a run dir, manifest or mlflow.db was created"


# -- --fresh deletes only what foveabench created --------------------------------------------


def test_fresh_refuses_a_directory_foveabench_did_not_create(tmp_path: Path) -> None:
    out = tmp_path / "out"
    theirs = out / "mine"
    (theirs / "report").mkdir(parents=True)
    (theirs / "report" / "thesis.tex").write_text("years of work")
    (theirs / "manifest.parquet").write_text("not ours")
    path = write(tmp_path, {"name": "mine", "output_dir": str(out)})
    rc, heavy, err, seconds = cli("run", str(path), "--fresh")
    assert rc == 2 and heavy == [] and seconds < 2.0
    (line,) = err.strip().splitlines()
    assert "was not created by foveabench" in line and "remove it yourself" in line
    with pytest.raises(ConfigError, match="was not created by foveabench"):
        rundir.prepare(str(out), "mine", fresh=True)
    assert (theirs / "report" / "thesis.tex").read_text() == "years of work"
    assert (theirs / "manifest.parquet").read_text() == "not ours"


def test_fresh_empties_its_own_run_dir_and_never_follows_links(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("outside the run dir")
    run_dir = rundir.prepare(str(out), "ours", fresh=False).local_path
    assert (run_dir / rundir.MARKER).is_file()
    (run_dir / "attacks").mkdir()
    (run_dir / "attacks" / "shard-00000.parquet").write_text("x")
    (run_dir / "notes.txt").write_text("the user's")
    (run_dir / "report").symlink_to(outside, target_is_directory=True)
    again = rundir.prepare(str(out), "ours", fresh=True)
    assert again.local_path == run_dir and (run_dir / rundir.MARKER).is_file()
    assert not (run_dir / "attacks").exists() and not (run_dir / "report").is_symlink()
    assert (run_dir / "notes.txt").read_text() == "the user's"
    assert (outside / "keep.txt").read_text() == "outside the run dir"


@pytest.mark.parametrize("name", ["..", ".", "a/b", "/etc", ".hidden", "-rf", ""])
def test_run_names_in_code_are_checked_too(tmp_path: Path, name: str) -> None:
    """run_benchmark(run_name=...) (the nightly's) goes through the same check."""
    with pytest.raises(ConfigError, match="one directory name"):
        rundir.prepare(str(tmp_path / "out"), name, fresh=True)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# -- the torch-free name lists agree with the registries -------------------------------------


def test_torch_free_name_lists_match_the_registries() -> None:
    from pipeline.config.names import LAYOUT_NAMES, MODEL_NAMES, MODEL_PREFIXES
    from pipeline.data import LAYOUTS
    from pipeline.models import networks as models

    assert MODEL_NAMES.names() == models.MODELS.names()
    assert set(MODEL_PREFIXES) == set(models._PREFIXES)
    assert LAYOUT_NAMES.names() == LAYOUTS.names()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"moed": "whole"}, "unknown preprocessing key(s) ['moed']"),
        ({"input_size": "abc"}, "input_size must be a list"),
        ({"input_size": [224, -1]}, "input_size must be [height, width] in pixels"),
        ({"mean": [0.5, 0.5]}, "mean must be three numbers"),
        ({"std": [0.5, 0.0, 0.5]}, "std must be positive"),
    ],
)
def test_preprocessing_overrides_are_checked_at_load_before_torch(
    tmp_path: Path, overrides: dict[str, object], fragment: str
) -> None:
    """Issue 26: a built-in model's bad override used to wait for torch (over 2 s)."""
    raw = {"models": ["efficientnet_lite1", {"efficientnet_lite0": overrides}]}
    path = write(tmp_path, raw)
    rc, heavy, err, _ = cli("run", str(path), "--output-dir", str(tmp_path / "out"))
    assert rc == 2 and heavy == [], err[-3000:]
    (line,) = err.strip().splitlines()
    assert line.startswith(f"config error: {path}: models[1] = 'efficientnet_lite0': "), line
    assert fragment in line
