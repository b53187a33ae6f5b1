"""Servers that accept a connection and never answer (issue 26): ``submit`` and a run with
``ray.address`` stop within their timeout with one line naming the address and the setting,
instead of waiting forever. The silent server is a real listening socket that never reads
(the kernel completes the connection from its backlog).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_hostile_config import cli, write

pytestmark = pytest.mark.unit


@pytest.fixture
def silent_address() -> Iterator[str]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_submit_to_a_server_that_never_answers_times_out(
    tmp_path: Path, silent_address: str
) -> None:
    path = write(tmp_path, {"name": "net", "dataset": {"limit": 1}})
    url = f"http://{silent_address}"
    rc, heavy, err, seconds = cli("submit", str(path), "--address", url, "--connect-timeout", "1")
    assert rc == 2 and seconds < 20, err[-3000:]
    (line,) = err.strip().splitlines()
    assert f"no answer from {url} within 1 s" in line and "--connect-timeout" in line
    assert "ray" not in heavy


def test_a_ray_address_that_never_answers_is_refused_before_the_run(
    tmp_path: Path, silent_address: str
) -> None:
    raw = {
        "name": "net",
        "output_dir": str(tmp_path / "out"),
        "dataset": {"limit": 1},
        "ray": {"address": silent_address, "connect_timeout_s": 1},
    }
    rc, heavy, err, seconds = cli("run", str(write(tmp_path, raw)))
    assert rc == 2 and seconds < 20, err[-3000:]
    (line,) = err.strip().splitlines()
    assert f"ray.address = '{silent_address}': no answer from {silent_address} within 1 s" in line
    assert "ray.connect_timeout_s" in line and "ray" not in heavy


def test_an_mlflow_server_that_answers_health_then_hangs_costs_seconds_not_minutes(
    tmp_path: Path,
) -> None:
    """Issue 26's last hang: /health answers, every API call hangs. With MLflow's defaults
    (120 s per request, 7 retries) the run would wait over 15 minutes per call; with
    mlflow.request_timeout_s it gives up on tracking in seconds, says so naming the
    setting, and the run goes on with its results on disk. A real HTTP server."""
    import threading
    import time
    import warnings
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pipeline.tracking.tracker import Tracker

    release = threading.Event()

    class HealthThenHang(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/health"):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")
            else:
                release.wait(60)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthThenHang)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        tracker = Tracker(uri, "e", tmp_path / "run", tmp_path / "art", request_timeout_s=1)
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tracker.start("r", {}, {}, ["m"])
        assert time.monotonic() - start < 30
        assert not tracker.available
        (warning,) = [str(w.message) for w in caught if uri in str(w.message)]
        assert "mlflow.request_timeout_s = 1 s" in warning and "without tracking" in warning
    finally:
        release.set()
        server.shutdown()
