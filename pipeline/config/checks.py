"""The ``eval`` checks the evaluation itself would only make in an actor, made at load.

:class:`pipeline.config.evaluation.EvalCfg` checks types and grids; a negative
``dense_check``, a zero batch, a misspelt crop or saliency method used to pass
it and fail minutes into a run (or silently skip a foveation). Torch-free: the
names come from :mod:`tasks.protocol` and :mod:`pipeline.config.names`.
"""

from __future__ import annotations

import difflib

from pipeline.config.error import located as _fail
from pipeline.config.evaluation import EvalCfg
from pipeline.config.names import SALIENCY_NAMES
from tasks.protocol import MODERN_FOVEATION, mp_foveations, object_foveations


def did_you_mean(name: str, known: list[str]) -> str:
    """``did you mean 'x'? known: [...]`` for an unknown name."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}known: {known}"


#: eval keys whose values the evaluation would only refuse in an actor: (key, lowest, why).
_EVAL_FLOORS = (
    ("dense_check", 0, "images per shard swept on the dense grid (0: none)"),
    ("batch_size", 1, "network inputs per forward call (leave it out for 4x the run's)"),
    ("max_batch_size", 1, "the most inputs a GPU forward batch grows to"),
)


def checked_eval(cfg: EvalCfg, source: str) -> EvalCfg:
    """``eval`` once its types and grids are checked (EvalCfg): every range and name the
    actors would otherwise refuse minutes into a run."""
    for key, low, why in _EVAL_FLOORS:
        value = getattr(cfg, key)
        if value is not None and value < low:
            raise _fail(source, f"eval.{key} = {value!r}", f"must be >= {low}: {why}")
    if any(a < 0 for a in cfg.alphas):
        raise _fail(
            source, f"eval.alphas = {list(cfg.alphas)}", "must be non-negative scales of the MP"
        )
    _check_foveations("crops", cfg.crops, mp_foveations(), source)
    _check_foveations("object_crops", cfg.object_crops, object_foveations(), source)
    _check_adaptive_foveations(cfg, source)
    if cfg.saliency not in SALIENCY_NAMES:
        known = SALIENCY_NAMES.names()
        raise _fail(
            source,
            f"eval.saliency = {cfg.saliency!r}",
            f"unknown method; {did_you_mean(cfg.saliency, known)}",
        )
    return cfg


def _check_foveations(
    key: str, names: tuple[str, ...], known: tuple[str, ...], source: str
) -> None:
    """``eval.<key>``: known foveations of its set-up, each listed once."""
    for i, name in enumerate(names):
        if name not in known:
            raise _fail(
                source,
                f"eval.{key}[{i}] = {name!r}",
                f"unknown foveation; {did_you_mean(name, list(known))}",
            )
        if name in names[:i]:
            raise _fail(source, f"eval.{key}[{i}] = {name!r}", "is listed twice; keep one entry")


def _check_adaptive_foveations(cfg: EvalCfg, source: str) -> None:
    """Each name a foveation the adaptive task can attack in this run: an MP crop must be
    in eval.crops as well, an MP-Object view in eval.object_crops (its transferred gain,
    which the adaptive one is read beside, comes from the foveation task)."""
    for i, name in enumerate(cfg.adaptive_foveations or ()):
        known = [*mp_foveations(), MODERN_FOVEATION, *object_foveations()]
        key = f"eval.adaptive_foveations[{i}] = {name!r}"
        if name not in known:
            raise _fail(source, key, f"unknown foveation; {did_you_mean(name, known)}")
        for evaluated, of_setup in (
            ("crops", mp_foveations()),
            ("object_crops", object_foveations()),
        ):
            listed = getattr(cfg, evaluated)
            if name in of_setup and name not in listed:
                raise _fail(source, key, f"add it to eval.{evaluated} as well (now {list(listed)})")
