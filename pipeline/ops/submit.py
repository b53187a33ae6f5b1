"""``foveabench submit CONFIG --address URL``: run a benchmark as a Ray job.

The submission id is deterministic (config name + hash of the resolved config
+ git sha), so submitting the same thing twice attaches to the job already
running instead of starting a second one; a finished job is reported, not
rerun; a failed or stopped one is resubmitted under the next ``-retryN`` id
(Ray never reuses an id). The resolved config travels in the job's
environment, so the cluster runs exactly what was hashed, whatever the paths
on the submitting machine.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results import provenance
from pipeline.user_error import UserError

#: Never uploaded: environments, results, VCS data, caches. Ray matches these as
#: .gitignore lines, where a bare name matches at any depth: the folders a checkout holds at
#: its top are anchored there ("/results"), or pipeline/results/ (code) would be left out.
WORKING_DIR_EXCLUDES = [
    "/.venv",
    "/venv",
    "/.git",
    "/results",
    "/mlruns",
    "/mlartifacts",
    "*.db",
    "**/__pycache__",
    "/.mypy_cache",
    "/.ruff_cache",
    "/.pytest_cache",
    "*.egg-info",
    "/build",
    "/dist",
]
CONFIG_ENV = "FOVEABENCH_CONFIG_YAML"
CONFIG_FILE = "foveabench-submitted.yaml"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmitError(UserError, RuntimeError):
    """Submission failed; the message names the address and the fix."""

    label = "submit error"


@dataclass(frozen=True)
class Submission:
    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]


def checkout_root() -> Path:
    """The checkout that becomes the job's working dir (the submitted code)."""
    root = Path(__file__).resolve().parents[2]  # pipeline/ops/submit.py -> the checkout
    if not (root / "pyproject.toml").is_file():
        raise SubmitError(
            f"{root} is not a foveabench checkout (no pyproject.toml); submit from a source "
            "checkout so the cluster runs the same code"
        )
    return root


def config_hash(cfg: BenchmarkConfig) -> str:
    text = yaml.safe_dump(cfg.as_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def submission_id(cfg: BenchmarkConfig, sha: str) -> str:
    """``foveabench-<name>-<config hash>-<sha>``: equal inputs, equal id."""
    name = re.sub(r"[^a-zA-Z0-9_-]+", "-", cfg.name).strip("-") or "run"
    return f"foveabench-{name}-{config_hash(cfg)}-{sha[:10]}"


def requirements(root: Path) -> list[str]:
    """The pinned dependencies of pyproject.toml (for clusters without foveabench)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return list(data["project"]["dependencies"])


def build_submission(cfg: BenchmarkConfig, install_deps: bool = False) -> Submission:
    """What to send: entrypoint, runtime env (working dir, config, pip) and metadata.

    Without ``install_deps`` the cluster must already have foveabench's
    dependencies (the ``ray_cluster.yaml`` setup commands install them);
    with it, Ray builds a virtualenv from the pinned requirements per job.
    """
    root = checkout_root()
    sha = provenance.git_sha(root)
    env: dict[str, Any] = {
        "working_dir": str(root),
        "excludes": WORKING_DIR_EXCLUDES,
        "env_vars": {
            CONFIG_ENV: yaml.safe_dump(cfg.as_dict(), sort_keys=False),
            "PYTHONUNBUFFERED": "1",
        },
    }
    if install_deps:
        env["pip"] = requirements(root)
    entrypoint = (
        f'printf "%s" "${CONFIG_ENV}" > {CONFIG_FILE} && python -m pipeline.cli run {CONFIG_FILE}'
    )
    metadata = {
        "config_name": cfg.name,
        "config_hash": config_hash(cfg),
        "git_sha": sha,
        "submitted_by": getpass.getuser(),
        "tool": "foveabench",
    }
    return Submission(submission_id(cfg, sha), entrypoint, env, metadata)


def _use_token_auth_if_available() -> None:
    """Send the cluster token when one is on this machine.

    ``ray start`` enables token authentication by default (Ray 2.5x); the ``ray``
    CLI then finds ``~/.ray/auth_token`` (or ``RAY_AUTH_TOKEN``), but the Python
    job client only sends it in token mode, which this switches on.
    """
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token auth
        return
    quiet = logging.getLogger(maybe_enable_token_auth_if_token_available.__module__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its "token auth is enabled" warning is noise here
    try:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


def connect(address: str, timeout_s: float = 30.0) -> Any:
    """The job client, once the server is known to answer within ``timeout_s`` (Ray's client
    has no timeout: a server that accepts and never answers would hang it forever)."""
    from pipeline.run.netcheck import no_answer

    silent = no_answer(address, 8265, b"", timeout_s)
    if silent:
        raise SubmitError(
            f"--address {address}: {silent}; is that the Ray dashboard/job server (port "
            "8265) and is it up? Fix --address, or raise --connect-timeout for a slow network"
        )
    from ray.job_submission import JobSubmissionClient

    _use_token_auth_if_available()
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError by Ray version
        if "Authentication" in type(exc).__name__:
            raise SubmitError(
                f"the Ray job server at {address} refused this client: {exc}\n"
                "  - the cluster uses token authentication: on the head run "
                "`ray get-auth-token`, then export RAY_AUTH_TOKEN=<token> here"
            ) from None
        raise SubmitError(
            f"cannot reach the Ray job server at {address} ({type(exc).__name__}: {exc}).\n"
            "  - is the cluster up? locally: `ray start --head --dashboard-host 127.0.0.1` "
            "(job server on port 8265), on a cluster: `ray up ray_cluster.yaml`;\n"
            "  - pass the dashboard address, e.g. --address http://127.0.0.1:8265 (not the "
            "GCS port 6379); for a remote cluster forward it with "
            "`ray dashboard ray_cluster.yaml`"
        ) from None


AGENT_WAIT_S = 120.0  # a head that just started has no job agent for a while


def _submit_when_agent_ready(client: Any, sub: Submission, sid: str) -> None:
    """``submit_job``, retried while the head answers "No available agent" (just started)."""
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client.submit_job(
                entrypoint=sub.entrypoint,
                submission_id=sid,
                runtime_env=sub.runtime_env,
                metadata=sub.metadata,
            )
            return
        except RuntimeError as exc:
            if "No available agent" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise SubmitError(
                    f"{sid}: the cluster's head has had no job agent for {AGENT_WAIT_S:.0f} s. "
                    "Its dashboard agent did not start: look at "
                    "<ray temp dir>/session_latest/logs/dashboard_agent.log on the head. A common "
                    "cause is another Ray on that machine holding the agent's port (52365 by "
                    "default): stop it, or start the head with --dashboard-agent-listen-port=<free "
                    "port>."
                ) from exc
            time.sleep(2.0)


def submit(client: Any, sub: Submission) -> tuple[str, str]:
    """Submit, or find the same job; return (submission id, what happened)."""
    sid = sub.submission_id
    for retry in range(1, 100):
        status = _status(client, sid)
        if status is None:
            _submit_when_agent_ready(client, sub, sid)
            return sid, "submitted"
        if status not in TERMINAL:
            return sid, f"already {status.lower()}: attaching to it, no second job started"
        if status == "SUCCEEDED":
            return sid, "already succeeded: nothing resubmitted"
        sid = f"{sub.submission_id}-retry{retry}"  # FAILED/STOPPED: Ray never reuses an id
    raise SubmitError(f"{sub.submission_id}: 99 retries exist already; stop and investigate")


def _status(client: Any, sid: str) -> str | None:
    try:
        status = client.get_job_status(sid)
    except RuntimeError as exc:  # "Job ... does not exist"
        if "does not exist" in str(exc) or "404" in str(exc):
            return None
        raise
    return str(getattr(status, "value", status))


async def _follow(client: Any, sid: str) -> None:
    async for lines in client.tail_job_logs(sid):
        print(lines, end="", flush=True)


def follow(client: Any, sid: str, address: str) -> str:
    """Stream the job's logs until it ends; return its final status."""
    try:
        asyncio.run(_follow(client, sid))
    except KeyboardInterrupt:
        print(
            f"\ndetached; the job keeps running. Logs: `ray job logs -f {sid} --address "
            f"{address}`; stop it: `ray job stop {sid} --address {address}`",
            file=sys.stderr,
        )
        raise
    return _status(client, sid) or "UNKNOWN"
