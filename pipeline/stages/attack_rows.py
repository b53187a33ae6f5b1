"""The attack stage's rows: one batch's clean, bounds, attack and perturbation rows.

A batch's rows are kept apart until the batch succeeds (:class:`BatchRows`), so a batch
that is split after a failure adds none twice; rows follow ``pipeline.results.tables``'
schemas, and a successful attack's direction goes to the perturbation codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from pipeline.results.codec import record
from pipeline.results.tables import (
    ATTACK_SCHEMA,
    BOUNDS_SCHEMA,
    CLEAN_SCHEMA,
    PERTURBATION_SCHEMA,
    table_from_rows,
)
from pipeline.stages.attack_unit import AttackOutput, AttackUnit
from tasks.attacks.base import AttackResult
from tasks.bounds import UnsupportedLayerError, peck_bound
from tasks.protocol import MP


@dataclass
class BatchRows:
    """Rows of one batch, kept apart until the batch succeeds (a retried batch adds none)."""

    clean: list[dict[str, Any]] = field(default_factory=list)
    attacks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    perts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bounds: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, unit: AttackUnit) -> BatchRows:
        """Empty rows with a list for each of the unit's attacks."""
        return cls(attacks={a: [] for a in unit.attacks}, perts={a: [] for a in unit.attacks})

    def add_error(self, unit: AttackUnit, base: dict[str, Any], message: str) -> None:
        """One image failed before any task ran: an error row in every task's table."""
        if unit.clean:
            self.clean.append({**base, "error": message})
        if unit.bounds:
            self.bounds.append({**base, "error": message})
        for name in unit.attacks:
            self.attacks.setdefault(name, []).append({**base, "attack": name, "error": message})

    def extend(self, other: BatchRows) -> BatchRows:
        """Add ``other``'s rows after these; returns self (bisecting joins halves with it)."""
        self.clean.extend(other.clean)
        self.bounds.extend(other.bounds)
        for name, rows in other.attacks.items():
            self.attacks.setdefault(name, []).extend(rows)
        for name, rows in other.perts.items():
            self.perts.setdefault(name, []).extend(rows)
        return self

    def add_result(
        self, name: str, result: AttackResult, bases: list[dict[str, Any]], criterion: str
    ) -> None:
        """An attack's rows, and the stored direction of every image it fooled correct clean."""
        norms = result.norms()
        for j, b in enumerate(bases):
            row = {
                **b,
                "attack": name,
                "criterion": criterion,
                "success": bool(result.success[j]),
                "scale": _num(result.scale[j]),
                "l1pp": _num(norms["l1pp"][j]),
                "l2": _num(norms["l2"][j]),
                "linf": _num(norms["linf"][j]),
                "adv_label": int(result.adv_label[j]),
                "clean_correct": bool(result.clean_correct[j]),
                "clean_label": int(result.clean_label[j]),
                "n_forward": int(result.n_forward[j]),
                "n_backward": int(result.n_backward[j]),
                "seconds": float(result.seconds[j]),
            }
            self.attacks[name].append(row)
            if row["success"] and row["clean_correct"]:
                self.perts[name].append(
                    record(b["image_id"], b["model"], name, MP, row["scale"], result.direction[j])
                )

    def fill(self, out: AttackOutput) -> None:
        """The unit's tables from every batch's rows."""
        unit = out.unit
        if unit.clean:
            out.clean = table_from_rows(self.clean, CLEAN_SCHEMA)
        if unit.bounds:
            out.bounds = table_from_rows(self.bounds, BOUNDS_SCHEMA)
        for name in unit.attacks:
            out.attacks[name] = (
                table_from_rows(self.attacks[name], ATTACK_SCHEMA),
                table_from_rows(self.perts[name], PERTURBATION_SCHEMA),
            )


def bound_rows(
    model: torch.nn.Module, name: str, x: torch.Tensor, bases: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Peck's bound per image, or for a network it cannot bound, rows that say why."""
    try:
        result = peck_bound(model, x)
    except UnsupportedLayerError as exc:
        message = f"bounds: {name}: {exc}"
        return [{**b, "error": message} for b in bases]
    layers = list(result.kappas)
    return [
        {
            **b,
            "predicted": int(result.predicted[j]),
            "bound_l2": _num(result.bound_l2[j]),
            "layers": layers,
            "kappas": [_num(result.kappas[layer][j]) for layer in layers],
        }
        for j, b in enumerate(bases)
    ]


def _num(value: torch.Tensor) -> float | None:
    v = float(value)
    return None if v != v else v  # nan -> null
