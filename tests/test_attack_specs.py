"""The attack catalogue and typed parameters (issue 14, item 3).

Every spec's class exists and reads its name, norm and parameters from the
spec; parameters are frozen, keyword-only, typed and checked with errors that
name the attack, the key, the value and the known keys; the catalogue imports
no torch; the README's attack table is the catalogue's.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from tasks import attacks
from tasks.attacks.params import GNParams, GradientParams, LossName, SmoothingCfg
from tasks.attacks.specs import ATTACK_SPECS, AttackParamError, attack_spec, markdown_table
from tasks.norms import NORMS

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ATTACK_SPECS.names())
def test_every_spec_has_its_class_and_the_class_reads_the_spec(name: str) -> None:
    spec = attack_spec(name)
    assert spec.norm in NORMS
    attack = attacks.create(name)
    assert type(attack) is spec.load() and attack.spec is spec and attack.name == name
    assert attack.norm == spec.norm, "the default parameters must give the declared norm"
    assert type(attack.params) is spec.params
    assert dataclasses.is_dataclass(spec.params)
    default = spec.params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        default.__setattr__("x", 1)
    if dataclasses.fields(default):
        with pytest.raises(TypeError):
            spec.params(1)  # keyword-only
    assert spec.baseline == (name == "random")


def test_parameters_are_checked_with_the_attack_key_value_and_known_keys() -> None:
    with pytest.raises(AttackParamError) as info:
        attacks.create("ddn", gamma=2)
    message = str(info.value)
    assert "attack 'ddn'" in message and "gamma = 2" in message and "must be < 1" in message
    assert "known: budget, steps, gamma, init_norm, alpha" in message
    with pytest.raises(
        AttackParamError, match="unknown parameter 'los' = 'ce'; did you mean 'loss'"
    ):
        attacks.create("sign", los="ce")
    with pytest.raises(AttackParamError, match=r"max_iter = '10' must be an integer"):
        attacks.create("cw", max_iter="10")
    with pytest.raises(AttackParamError, match=r"abort_early = 1 must be true or false"):
        attacks.create("cw", abort_early=1)
    with pytest.raises(
        AttackParamError, match=r"loss = 'mse' must be one of 'score', 'prob', 'ce'"
    ):
        attacks.create("fgv", loss="mse")
    with pytest.raises(AttackParamError, match="takes BFGSParams, got GradientParams"):
        attacks.create("bfgs", params=GradientParams())
    # PyYAML reads 1e-7 as a string; a number field takes that spelling
    assert attacks.create("bfgs", params={"eta": "1e-7"}).params.eta == 1e-7
    assert attacks.create("cw", lr=1).params.lr == 1.0


def test_overrides_replace_fields_of_a_given_parameter_set() -> None:
    attack = attacks.create("gn1_iter", params={"steps": 3}, p="l2")
    assert (attack.params.steps, attack.params.p, attack.params.max_doublings) == (3, "l2", 3)
    assert attack.norm == "l2", "gn's norm follows its p"
    assert attacks.create("deepfool", norm="linf").norm == "linf"
    scw = attacks.create("scw", alpha=0.5)
    assert isinstance(scw.params, SmoothingCfg) and scw.params.lr == attacks.create("cw").params.lr
    assert scw.params.alpha == 0.5 and scw.params.max_iter == 50, "scw's own defaults stay"
    assert attack_spec("gn1").norm == GNParams().p


def test_the_losses_cover_every_loss_name() -> None:
    from tasks.attacks.losses import LOSSES

    assert sorted(LOSSES) == sorted(get_args(LossName))


def test_the_catalogue_and_the_config_import_no_torch() -> None:
    code = (
        "import sys, pipeline.config.benchmark, tasks.attacks.specs, tasks.attacks; "
        "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'polars', 'pyarrow') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_readme_attack_table_is_the_catalogue() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- attacks: python -m tasks.attacks -->\n", "\n<!-- /attacks -->"
    assert start in readme and end in readme, "README lost its attack table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == markdown_table(), "regenerate it: python -m tasks.attacks"
