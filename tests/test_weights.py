"""Issue 27.1: a model whose weights cannot be loaded fails on the driver in one line, before
a manifest, Ray or MLflow; a model entry can load a local checkpoint, recorded by hash."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch
import yaml

from pipeline.models.networks import load_model
from tests.ops_helpers import foveabench_here

ROOT = Path(__file__).resolve().parents[1]
ARCH = "timm:tf_efficientnet_lite0"  # the architecture our efficientnet_lite0 fills


def write_config(tmp_path: Path, models: list[object], **extra: object) -> Path:
    raw = {
        "name": "weights",
        "output_dir": str(tmp_path / "out"),
        "dataset": {"layout": "sample", "limit": 2},
        "models": models,
        "attacks": ["sign"],
        **extra,
    }
    path = tmp_path / "weights.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def lite0_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """efficientnet_lite0's weights as loaded offline by pipeline/models/networks.py, saved as a
    plain state dict (what torch.save(model.state_dict(), PATH) writes)."""
    path = tmp_path_factory.mktemp("ckpt") / "lite0.pt"
    torch.save(load_model("efficientnet_lite0").net.state_dict(), path)
    return path


@pytest.mark.unit
def test_uncached_timm_weights_fail_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    """No network and an empty cache (HF_HUB_OFFLINE: nothing waits on a connection)."""
    config = write_config(tmp_path, ["timm:resnet50"])
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "manifest:" not in done.stderr, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"model error: {config}: models[0] = 'timm:resnet50': "), line
    assert "LocalEntryNotFoundError: weights not in the local cache and no network" in line
    assert "{timm:resnet50: {checkpoint: PATH}}" in line  # the fix names the way out
    assert not (tmp_path / "out" / "weights" / "manifest.parquet").exists()
    assert not (tmp_path / "out" / "mlflow.db").exists()
    assert seconds < 60, f"{seconds:.0f} s: the check waited on something"


@pytest.mark.unit
def test_a_missing_checkpoint_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.pt"
    config = write_config(tmp_path, [{ARCH: {"checkpoint": str(missing)}}])
    done = foveabench_here(capsys, "run", str(config))
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert f"models[0] = '{ARCH}': checkpoint '{missing}': no such file; fix the path" in line


@pytest.mark.unit
def test_a_checkpoint_of_another_architecture_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lite0_checkpoint: Path
) -> None:
    config = write_config(tmp_path, [{"timm:resnet18": {"checkpoint": str(lite0_checkpoint)}}])
    done = foveabench_here(capsys, "run", str(config))
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("model error: ") and "does not fit the architecture" in line, line
    assert "missing keys (e.g. conv1.weight)" in line


@pytest.mark.unit
def test_a_checkpoint_needs_a_timm_or_torchvision_architecture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lite0_checkpoint: Path
) -> None:
    config = write_config(tmp_path, [{"efficientnet_lite0": {"checkpoint": "x.pt"}}])
    done = foveabench_here(capsys, "run", str(config))
    assert done.returncode == 2
    assert "name it timm:efficientnet_lite0 or torchvision:efficientnet_lite0" in done.stderr


@pytest.mark.unit
def test_torchvision_checkpoints_as_training_scripts_save_them_give_the_same_network(
    tmp_path: Path,
) -> None:
    """A state dict nested under ``state_dict`` with DDP's ``module.`` prefix, and a
    ``.safetensors`` file, fill torchvision's architecture with exactly those weights."""
    from safetensors.torch import save_file

    from pipeline.models.networks import resolve_cfg

    reference = load_model("untrained:resnet18")  # seeded weights: a known network
    state = reference.net.state_dict()
    nested = tmp_path / "train.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, nested)
    flat = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(flat))
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        expected = reference(x)
        for path in (nested, flat):
            mine = load_model("torchvision:resnet18", checkpoint=str(path))
            assert mine.cfg == resolve_cfg("torchvision:resnet18")  # its usual preprocessing
            torch.testing.assert_close(mine(x), expected, rtol=0, atol=0)


@pytest.mark.integration
def test_checkpoint_gives_the_builtin_logits_and_its_hash_lands_in_provenance(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    local_ray: None,
    lite0_checkpoint: Path,
) -> None:
    from pipeline.data import build_manifest
    from pipeline.models.images import load_batch

    mine = load_model(ARCH, checkpoint=str(lite0_checkpoint))
    builtin = load_model("efficientnet_lite0")
    assert mine.cfg.input_size == builtin.cfg.input_size and mine.cfg.mean == builtin.cfg.mean
    paths = [r["path"] for r in build_manifest("sample", None, 2).table.to_pylist()]
    x = load_batch(paths, builtin.cfg)
    # timm's efficientnet_lite0 has the same tensors but PyTorch padding: the file loads, and
    # gives another network; ours is the TensorFlow-padded tf_efficientnet_lite0
    padded = load_model("timm:efficientnet_lite0", checkpoint=str(lite0_checkpoint))
    with torch.no_grad():
        torch.testing.assert_close(mine(x), builtin(x), rtol=0, atol=0)
        assert not torch.allclose(padded(x), builtin(x), atol=1e-2)

    config = write_config(
        tmp_path,
        ["efficientnet_lite0", {ARCH: {"checkpoint": str(lite0_checkpoint)}}],
        tasks=["clean"],
        shard_size=2,
        batch_size=2,
    )
    done = foveabench_here(capsys, "run", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "out" / "weights"
    prov = json.loads((run_dir / "provenance.json").read_text())
    digest = hashlib.sha256(lite0_checkpoint.read_bytes()).hexdigest()
    assert prov["checkpoints"] == {ARCH: {"uri": str(lite0_checkpoint), "sha256": digest}}
    clean = pl.read_parquet(run_dir / "clean" / "*" / "data.parquet").sort("image_id")
    by_model = {m: clean.filter(pl.col("model") == m) for m in ("efficientnet_lite0", ARCH)}
    ours, theirs = by_model[ARCH], by_model["efficientnet_lite0"]
    assert ours.height == theirs.height == 2
    assert ours["pred_label"].to_list() == theirs["pred_label"].to_list()
    for column in ("true_logit", "margin"):
        assert ours[column].to_list() == pytest.approx(theirs[column].to_list(), rel=1e-5)


@pytest.mark.unit
def test_an_actor_refuses_a_checkpoint_that_changed_since_the_run_recorded_it(
    lite0_checkpoint: Path,
) -> None:
    from pipeline.models.checkpoints import CheckpointError
    from pipeline.models.networks import resolve_spec

    recorded = hashlib.sha256(lite0_checkpoint.read_bytes()).hexdigest()
    resolve_spec(ARCH, str(lite0_checkpoint), recorded).build()  # the same file: loads
    with pytest.raises(CheckpointError, match="the file changed, rerun to record the new one"):
        resolve_spec(ARCH, str(lite0_checkpoint), "0" * 64).build()
