"""The peer libraries: optional imports, their model wrappers, and how each is run.

Peers are never part of the base install (``pip install -e ".[bench]"`` plus
one ``--target`` install for Foolbox 2.4, see ``docs/benchmarks.md``). Every
import goes through :func:`require`, which turns a missing peer into
:class:`PeerMissing` carrying the exact install command, so ``foveabench bench``
can skip that pair and say how to fix it instead of crashing.

Foolbox 2.4 and Foolbox 3 share the distribution and package name
``foolbox``. Foolbox 3 is installed normally; Foolbox 2.4 is installed with
``pip install --no-deps --target <prefix>/opt/foolbox24`` and loaded here by
file location under the module name ``foolbox24``. Its imports are all
relative, so they resolve inside ``foolbox24`` and the two versions coexist
in one process without touching ``sys.path``.

Each peer sees the same pixels as our attacks: :class:`Unit01` maps the
peer's 0..1 convention onto our 0..255 :class:`~pipeline.models.networks.PixelModel`,
and adversarial images come back in 0..255 so norms are compared in the
units of docs/protocol.md.
"""

from __future__ import annotations

import collections
import collections.abc
import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

BENCH_EXTRA = 'pip install -e ".[bench]"'
FOOLBOX24_ENV = "FOVEABENCH_FOOLBOX24"


def foolbox24_dir() -> Path:
    """Where Foolbox 2.4 is installed with ``--target`` (env var overrides)."""
    env = os.environ.get(FOOLBOX24_ENV)
    return Path(env) if env else Path(sys.prefix) / "opt" / "foolbox24"


def foolbox24_install_command() -> str:
    return f'pip install --no-deps --target "{foolbox24_dir()}" foolbox==2.4.0'


class PeerMissing(ImportError):
    """A peer library is not importable; the message carries the install command."""


def require(module: str) -> ModuleType:
    """Import a peer (``art``, ``foolbox``, ``torchattacks``, ``adv_lib``, ``foolbox24``) or
    explain how to get it."""
    if module == "foolbox24":
        return import_foolbox24()
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise PeerMissing(
            f"{module} is not installed ({exc}); install the peers with: {BENCH_EXTRA}"
        ) from exc
    if module == "foolbox" and not str(getattr(mod, "__version__", "")).startswith("3."):
        raise PeerMissing(
            f"foolbox {mod.__version__} is importable as 'foolbox' but the bench needs Foolbox 3 there "
            f"(Foolbox 2.4 goes in {foolbox24_dir()}); install with: {BENCH_EXTRA}"
        )
    return mod


def _legacy_aliases() -> None:
    """Names Foolbox 2.4 uses that Python 3.10 / NumPy 1.24 removed.

    Added only where missing, so nothing that exists is shadowed.
    """
    for name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    for name, value in (("float", float), ("int", int), ("bool", bool), ("complex", complex)):
        if name not in np.__dict__:
            setattr(np, name, value)


def import_foolbox24() -> ModuleType:
    """Foolbox 2.4 from its private ``--target`` directory, as module ``foolbox24``."""
    if "foolbox24" in sys.modules:
        return sys.modules["foolbox24"]
    root = foolbox24_dir() / "foolbox"
    init = root / "__init__.py"
    if not init.is_file():
        raise PeerMissing(
            f"Foolbox 2.4 not found in {root.parent}; install it beside Foolbox 3 with: "
            f"{foolbox24_install_command()}  (or set {FOOLBOX24_ENV} to its directory)"
        )
    _legacy_aliases()
    spec = importlib.util.spec_from_file_location(
        "foolbox24", init, submodule_search_locations=[str(root)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["foolbox24"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules["foolbox24"]
        raise PeerMissing(f"Foolbox 2.4 in {root.parent} failed to import: {exc!r}") from exc
    return module


class Unit01(nn.Module):
    """The peers' convention (0..1 floats, any dtype) onto our 0..255 float32 model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        # Foolbox 2.4 feeds float64; the network's weights are float32.
        return self.model(x01.float() * 255.0)


def art_fgsm_minimal(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps_step: float,
    eps: float,
    batch_size: int,
) -> torch.Tensor:
    """ART ``FastGradientMethod(norm=inf, minimal=True)``; eps values in 0..255 units.

    ART raises eps by ``eps_step`` until top-1 changes, so ``eps_step`` is its
    absolute Linf precision.
    """
    art_est = require("art.estimators.classification")
    art_fgm = require("art.attacks.evasion")
    n_classes = int(model(x[:1]).shape[1])
    classifier = art_est.PyTorchClassifier(
        model=Unit01(model).eval(),
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=n_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    attack = art_fgm.FastGradientMethod(
        classifier,
        norm=np.inf,
        eps=eps / 255.0,
        eps_step=eps_step / 255.0,
        minimal=True,
        batch_size=batch_size,
    )
    adv = attack.generate(x=(x / 255.0).numpy(), y=labels.numpy())
    return torch.from_numpy(adv).float() * 255.0


def foolbox3_minimization(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, attack: str, **kwargs: Any
) -> torch.Tensor:
    """A Foolbox 3 minimisation attack (``epsilons=None``: unbounded), 0..255 in and out."""
    fb = require("foolbox")
    fmodel = fb.PyTorchModel(Unit01(model).eval(), bounds=(0.0, 1.0), device="cpu")
    att = getattr(fb.attacks, attack)(**kwargs)
    _, clipped, _ = att(fmodel, x / 255.0, fb.criteria.Misclassification(labels), epsilons=None)
    return clipped.detach().float() * 255.0


def adv_lib_attack(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, attack: str, **kwargs: Any
) -> torch.Tensor:
    """An adv_lib attack function (``ddn``, ``fmn``, ``alma``), 0..255 in and out.

    adv_lib returns the clean image where it failed; the caller's re-check counts it so.
    """
    attacks = require("adv_lib.attacks")
    adv = getattr(attacks, attack)(Unit01(model).eval(), x / 255.0, labels, **kwargs)
    return adv.detach().float() * 255.0


def foolbox24_lbfgs(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    distance: str = "MAE",
    maxiter: int = 150,
    epsilon: float = 1e-5,
    budget_s: float | None = None,
) -> torch.Tensor:
    """Foolbox 2.4 ``LBFGSAttack`` image by image (as it runs: SciPy on the CPU).

    Failed images are returned unchanged; success is re-checked by the caller.
    With ``budget_s``, no new image is started once the budget is spent and an
    image still running when it expires is abandoned: their rows are NaN
    (unfinished), so the caller can report a lower bound on the peer's time
    instead of waiting an hour per image.
    """
    fb24 = require("foolbox24")
    n_classes = int(model(x[:1]).shape[1])
    fmodel = fb24.models.PyTorchModel(
        Unit01(model).eval(), bounds=(0.0, 1.0), num_classes=n_classes, device="cpu"
    )
    attack = fb24.v1.attacks.LBFGSAttack(
        fmodel,
        criterion=fb24.criteria.Misclassification(),
        distance=getattr(fb24.distances, distance),
    )
    out = torch.full_like(x, float("nan"))
    deadline = None if budget_s is None else time.monotonic() + budget_s
    for i in range(x.shape[0]):
        if deadline is not None and time.monotonic() >= deadline:
            break
        image = (x[i] / 255.0).numpy().astype(np.float32)
        try:
            with _alarm(deadline):
                adv = attack(image, int(labels[i]), unpack=True, epsilon=epsilon, maxiter=maxiter)
        except _Timeout:
            break
        out[i] = (
            x[i] if adv is None else torch.from_numpy(np.asarray(adv, dtype=np.float32)) * 255.0
        )
    return out


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(deadline: float | None) -> Iterator[None]:
    """Raise :class:`_Timeout` in the main thread at ``deadline`` (monotonic seconds)."""
    if deadline is None:
        yield
        return

    def fire(signum: int, frame: object) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
