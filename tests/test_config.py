"""Config parsing: the demo is valid, mistakes name the file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.benchmark import ConfigError, load_config, parse_config
from tasks.attacks.params import DDNParams, GradientParams

pytestmark = pytest.mark.unit


def test_demo_config_is_the_documented_default() -> None:
    cfg = load_config()
    assert cfg.dataset.layout == "sample"
    assert [m.name for m in cfg.models] == ["efficientnet_lite0", "efficientnet_lite1"]
    assert [a.name for a in cfg.attacks] == ["sign"]
    assert cfg.top_k == 5
    assert cfg.mlflow.tracking_uri is None and cfg.ray.address is None


def test_attack_params_and_model_overrides_parse() -> None:
    cfg = parse_config(
        {
            "models": [{"efficientnet_lite0": {"mode": "center_crop"}}],
            "attacks": [{"sign": {"loss": "score"}}, "fgv", {"ddn": {"steps": 7, "gamma": 0.05}}],
            "criterion": {"top_k": 1},
        }
    )
    assert cfg.models[0].preprocess == {"mode": "center_crop"}
    assert cfg.attacks[0].params == GradientParams(loss="score")
    assert cfg.attacks[1].name == "fgv" and cfg.attacks[1].params == GradientParams()
    assert cfg.attacks[2].params == DDNParams(steps=7)
    assert cfg.top_k == 1
    written = cfg.as_dict()
    assert written["criterion"] == {"top_k": 1}
    # the YAML shape, defaults not repeated; it parses back to the same config
    assert written["attacks"] == [{"sign": {"loss": "score"}}, "fgv", {"ddn": {"steps": 7}}]
    assert parse_config(written) == cfg


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"modles": ["x"]}, "modles = ['x']: unknown key; did you mean 'models'?"),
        (
            {"dataset": {"layut": "sample"}},
            "dataset: unknown key 'layut' = 'sample'; did you mean 'layout'?",
        ),
        ({"criterion": {"top_k": 0}}, "criterion.top_k = 0: must be a positive integer"),
        ({"attacks": []}, "attacks = []: must be a non-empty list"),
        ({"tasks": ["clean", "telepathy"]}, "tasks: 'telepathy': unknown task"),
        ({"output_dir": " "}, "output_dir = ' ': must be a directory path"),
    ],
)
def test_mistakes_are_named(raw: dict, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(raw, source="my.yaml")
    assert fragment in str(info.value) and "my.yaml" in str(info.value)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.unit
def test_evaluation_tasks_refuse_parameters_that_move_an_attack_off_its_axis() -> None:
    raw = {"attacks": [{"deepfool": {"norm": "linf"}}], "tasks": ["clean", "norm_sweep"]}
    with pytest.raises(ConfigError, match=r"minimises linf.*on its l2 axis"):
        parse_config(raw, "x.yaml")
    # without evaluation tasks the attack stage reports every norm: allowed
    parse_config({**raw, "tasks": ["clean", "min_perturbation"]}, "x.yaml")


@pytest.mark.unit
def test_every_shipped_config_parses() -> None:
    """configs/*.yaml are documented commands (README, docs/protocol.md): each must load."""
    shipped = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(shipped) >= 4
    for path in shipped:
        assert load_config(str(path)).name, path
