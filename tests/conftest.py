"""Shared fixtures: where the offline ImageNet sample lives, and the real components the
suite starts once per session (how the suite is organised: docs/testing.md).

- ``local_ray``: one Ray for the whole session, with the CPUs CI has. It is started by
  the first test that asks for it and shut down at the end of the session. The pipeline
  reuses a Ray that is already initialised (``pipeline.stages.actors.init_ray``), so runs inside
  tests share it instead of starting their own.
- ``own_ray`` (marker): a test that must start its own cluster (several nodes, a node
  removed or a worker SIGKILLed under it). Such tests run first, before any test has
  started the session's Ray, and it is shut down before each of them in any case.
- ``no_ray``: no Ray in this process at the start of a test that checks a run starts none.
- ``mlflow_store``: a migrated MLflow SQLite store copied from one made per session
  (creating a store runs every alembic migration: more than a second each).
- ``mlflow_server_uri``: one ``mlflow server`` (SQLite backend, on loopback) for the tests
  that need a server; each test logs into an experiment of its own.
- ``browser``: one headless Chromium (Selenium) for the tests that look at pages.
- ``golden``: the golden run (tests/golden.py), made on first use and read by every test
  that checks a run's outputs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.parallel import check_groups, make_scheduler

if TYPE_CHECKING:
    from tests.golden import Golden

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_SAMPLE = ROOT.parent / "shared" / "data" / "imagenet-sample"
RAY_CPUS = 2  # what a CI machine has
OWN_RAY = "own_ray"  # the marker (declared in pyproject.toml)
_session: dict[str, bool] = {"ray": False}  # whether the Ray now initialised is the session's

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share CI's two cores. Torch in each (and in the subprocesses and Ray
    # actors it starts, which inherit this) gets one thread; an actor that asks for two
    # (its CPUs: ``torch.set_num_threads``) waits for the second passively; a test that
    # sets the count has it put back (``pytest_runtest_teardown``). An OpenMP thread that
    # spins on a core the other worker holds cost 5.2 against 2.0 CPU-seconds for the
    # same attack beside a busy core (docs/testing.md, "Eighth session").
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Ray prestarts a worker process per CPU when the first driver connects; an actor takes one,
# and the rest sit idle until the session's end (about 1.2 CPU-seconds each to import Ray,
# one for each Ray a test starts). Every Ray the tests start inherits this: its workers
# start when an actor asks for one.
os.environ.setdefault("RAY_prestart_worker_first_driver", "0")


@pytest.fixture
def imagenet_sample() -> Path:
    if not (IMAGENET_SAMPLE / "images").is_dir():
        pytest.skip(f"{IMAGENET_SAMPLE} is absent (it sits beside the checkout in CI and dev)")
    return IMAGENET_SAMPLE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests with their own cluster first, then those that want no Ray (``no_ray``), both
    stable, so the session's Ray starts once; every test that needs a session service or a
    cluster of its own is in a file of that worker group (tests/parallel.py)."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker(OWN_RAY) is None,
            "no_ray" not in getattr(item, "fixturenames", ()),
        )
    )
    check_groups(items, OWN_RAY)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent under -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Two workers, each session service and the own-cluster tests in one (tests/parallel.py)."""
    return make_scheduler(config, log)


def _stop_session_ray() -> None:
    """Shut the session's Ray down (never an ``own_ray`` test's cluster connection)."""
    if _session["ray"]:
        sys.modules["ray"].shutdown()
        _session["ray"] = False


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A test that sets torch's thread count (a ``ModelWorker`` built in this process sets
    its spec's) does not leave it set for the tests after it in this worker."""
    threads = os.environ.get("OMP_NUM_THREADS")
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before an ``own_ray`` test's fixtures: no session Ray it could attach to by mistake."""
    if item.get_closest_marker(OWN_RAY) is not None:
        _stop_session_ray()


@pytest.fixture(scope="session")
def _session_ray() -> Iterator[None]:
    yield
    _stop_session_ray()


def _start_session_ray() -> None:
    import ray

    if not _session["ray"]:
        if ray.is_initialized():  # one an in-process run started on its own (init_ray)
            ray.shutdown()
        # "local": a new instance, never some other `ray start` cluster on this machine
        # (a plain ray.init() attaches to one and then refuses num_cpus)
        ray.init(
            address="local", num_cpus=RAY_CPUS, include_dashboard=False, logging_level="WARNING"
        )
        _session["ray"] = True


@pytest.fixture
def local_ray(_session_ray: None, request: pytest.FixtureRequest) -> None:
    """The session's local Ray (started here on first use, and never per test)."""
    assert request.node.get_closest_marker(OWN_RAY) is None, "own_ray tests start their own"
    _start_session_ray()


@pytest.fixture
def no_ray(_session_ray: None) -> None:
    """No Ray initialised in this process when the test starts: for a test that checks that
    an in-process run starts none, which a Ray already up would hide. Such tests run before
    the session's Ray starts (``pytest_collection_modifyitems``); run on their own after it,
    they shut it down and the next ``local_ray`` starts it again."""
    _stop_session_ray()
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()  # one an in-process run started on its own


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow.tracking import MlflowClient  # not at import: unit-only runs skip mlflow

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates, migrates
    return db


@pytest.fixture(scope="session")
def mlflow_store(_mlflow_template: Path) -> Callable[[Path], str]:
    """``place(folder)`` puts a migrated, empty store at ``folder/mlflow.db`` (where a run
    whose output_dir is ``folder`` keeps its store) and returns its tracking URI."""

    def place(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_mlflow_template, folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}"

    return place


@pytest.fixture(scope="session")
def mlflow_server_uri(
    tmp_path_factory: pytest.TempPathFactory, _mlflow_template: Path
) -> Iterator[str]:
    """The session's ``mlflow server`` (started on first use, stopped at the end), on a
    copy of the migrated template: a server on an empty file first runs every migration."""
    from tests.ops_helpers import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow-server"), store=_mlflow_template) as uri:
        yield uri


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's headless Chromium; each test that asks for it gets it with no
    cookies or site storage left by the one before (tests skip when it is absent)."""
    from tests.browser import chrome

    driver = chrome(tmp_path_factory.mktemp("chromium"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def chromium(browser: Any, mlflow_server_uri: str) -> Any:
    """The session's Chromium on a blank page, with no cookie or site storage (the MLflow
    UI keeps its table and panel state there) left by the test before."""
    from tests.browser import forget_everything

    forget_everything(browser, [mlflow_server_uri])
    return browser


@pytest.fixture(scope="session")
def golden(
    _session_ray: None, mlflow_server_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Golden:
    """The golden run (tests/golden.py), on the session's Ray and MLflow server."""
    from tests.golden import make_golden

    _start_session_ray()
    return make_golden(tmp_path_factory.mktemp("golden"), mlflow_server_uri)
