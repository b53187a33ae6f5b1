"""Real services for the operations tests (a Ray head and an MLflow server on loopback),
and the CLI, as a subprocess or in this process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Set in a developer's shell, these would point a test's run somewhere else.
FOREIGN_ENV = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")


def env_with_venv() -> dict[str, str]:
    """The test's interpreter first on PATH: Ray jobs run ``python`` from the raylet's env."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until ``url`` answers at all (401 counts: Ray's token auth is on by default)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """``sig`` to the process group we started (and only it), then SIGKILL if needed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def ray_head() -> Iterator[str]:
    """``ray start --head --block`` on loopback with its own temp dir; yields the job address.

    ``--block`` keeps the processes it started tied to it, so stopping it stops them
    (``ray stop`` would stop every Ray on the machine). The private temp dir keeps a
    plain ``ray.init()`` elsewhere from discovering this head.
    """
    port, dash, agent = free_port(), free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="rayt")
    cmd = [
        str(BIN / "ray"), "start", "--head", "--block", f"--port={port}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--include-dashboard=true",
        f"--dashboard-agent-listen-port={agent}",  # not 52365: another Ray here may hold it
        "--num-cpus=2", f"--temp-dir={temp}", "--disable-usage-stats",
    ]  # fmt: skip
    # A SIGTERMed node first drains for up to this long (Ray's default: 30 s, for Serve
    # replicas to move); a test head has nothing to hand over and stops at once.
    env = {**env_with_venv(), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    log = open(Path(temp) / "head.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dash}"
    try:
        wait_http(f"{address}/api/version", proc)
        yield address
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(root: Path, port: int | None = None, store: Path | None = None) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend on loopback; yields its URI.

    ``store``: a migrated SQLite store to start from (copied), so the server does not run
    every migration first. Killed at the end, not stopped: its store is thrown away with
    ``root``, and a graceful stop waited seconds for its workers to drain. Without MLflow's
    job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``): its four huey consumers served
    GenAI jobs nobody submits here and cost 20 CPU-seconds a test session."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    if store is not None:
        shutil.copyfile(store, root / "mlflow.db")
    cmd = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = open(root / "server.log", "wb")  # noqa: SIM115
    env = {**env_with_venv(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", proc)
        yield uri
    finally:
        stop(proc, signal.SIGKILL)
        log.close()


def foveabench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env_with_venv(), timeout=timeout)


@dataclass(frozen=True)
class Ran:
    """A CLI call in this process: the fields of ``subprocess.CompletedProcess`` it has."""

    returncode: int
    stdout: str
    stderr: str


def foveabench_here(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """``foveabench ARGS`` in this process (``pipeline.cli.main``): no interpreter start, and
    runs use the session's Ray. For tests where the process boundary is not the point."""
    from pipeline.cli.main import main

    capsys.readouterr()  # what came before is not this call's output
    saved = {k: os.environ.pop(k) for k in FOREIGN_ENV if k in os.environ}
    try:
        code = main(list(args))
    finally:
        os.environ.update(saved)
    out, err = capsys.readouterr()
    return Ran(code, out, err)
