"""How the suite shares two pytest-xdist workers (docs/testing.md, "Two workers").

``pytest`` runs with ``-n 2`` (pyproject.toml). Tests that share a session service (the
golden run, the ``mlflow server``, Chromium: tests/conftest.py) run in one worker, so each
service starts once per run of the suite; tests that start a cluster of their own run in
one worker too, so two multi-node clusters never share the two cores at once. Every other
test is scheduled on its own, to whichever worker is free.

Groups are by file: pytest-xdist's own ``--dist loadgroup`` reads ``xdist_group`` marks
through a node-id rewrite that pytest 9.2 no longer honours (pytest-xdist issue 1386: the
marks are ignored without a word), so the scheduler here groups the files named below,
and :func:`check_groups` fails the collection when a test uses a service or a cluster of
its own from a file that is not named.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

SERVICES, OWN_RAY = "services", "own_ray"
#: The session services (tests/conftest.py): fixtures started once per worker that uses them.
SERVICE_FIXTURES = frozenset({"golden", "mlflow_server_uri", "browser", "chromium"})

GROUP_OF_FILE = {
    "test_closing_block.py": SERVICES,
    "test_measures_pipeline.py": SERVICES,
    "test_mlflow_review.py": SERVICES,
    "test_nightly.py": SERVICES,
    "test_pipeline.py": SERVICES,
    "test_report_browser.py": SERVICES,
    "test_cluster.py": OWN_RAY,
    "test_object_store.py": OWN_RAY,
    "test_placement.py": OWN_RAY,
    "test_submit.py": OWN_RAY,
}


def group_of(nodeid: str) -> str:
    """A test's unit of scheduling: its file's group, or the test alone."""
    return GROUP_OF_FILE.get(PurePosixPath(nodeid.split("::", 1)[0]).name, nodeid)


def check_groups(items: list[pytest.Item], own_ray_marker: str) -> None:
    """Every test that needs a service or its own cluster is in a file of that group."""
    for item in items:
        wants = (
            OWN_RAY
            if item.get_closest_marker(own_ray_marker) is not None
            else SERVICES
            if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
            else None
        )
        if wants is not None and GROUP_OF_FILE.get(item.path.name) != wants:
            raise pytest.UsageError(
                f"{item.nodeid} needs the {wants!r} worker group: add "
                f"{item.path.name!r}: {wants.upper()} to GROUP_OF_FILE in tests/parallel.py"
            )


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scope scheduling with :func:`group_of` as the scope."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)
