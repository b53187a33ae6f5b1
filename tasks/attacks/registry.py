"""The attack registry (``tasks.attacks.get("sign")``)."""

from __future__ import annotations

from tasks.attacks.base import Attack
from tasks.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry("attack")
