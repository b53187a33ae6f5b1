"""A subprocess observed from outside: its output lines, wall time and memory.

For benchmarks of the whole CLI (``scripts/scale_bench.py``): the command runs
in its own session, so that it can be SIGKILLed as a group the way a node
failure or an OOM killer would end a driver; its own peak RSS is the
``VmHWM`` of its ``/proc`` status (polled, it only grows), the peak RSS of its
descendants (Ray's processes, the actors) is sampled, and py-spy can record
its stacks (``--format raw``, ``--idle``: the driver's waits count too).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

#: Our code in a py-spy frame ``function (package/module.py:line)``.
OWN_CODE = re.compile(r"\((pipeline|dashboards|tasks)/")


@dataclass
class Watched:
    """A subprocess as observed from outside: its lines, time and memory."""

    wall_s: float = 0.0
    rc: int | None = None
    driver_peak_rss: int = 0  # bytes, VmHWM of the process itself
    tree_peak_rss: dict[str, int] = field(default_factory=dict)  # by process name
    lines: list[tuple[float, str]] = field(default_factory=list)
    started: float = 0.0  # time.time() at start
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and end
    killed_at: float | None = None  # seconds after start

    def first(self, pattern: str) -> tuple[float, re.Match[str]] | None:
        for t, line in self.lines:
            m = re.search(pattern, line)
            if m:
                return t, m
        return None


def _vm_hwm(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) * 1024 if m else 0


def _read_lines(stream: IO[bytes], out: Watched, start: float, log: IO[str]) -> None:
    buf = b""
    for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
        buf += chunk
        *done, buf = re.split(rb"[\r\n]", buf)
        for raw in done:
            if raw.strip():
                line = raw.decode(errors="replace")
                out.lines.append((time.perf_counter() - start, line))
                log.write(f"{out.lines[-1][0]:9.2f} {line}\n")
        log.flush()


def watch(
    cmd: list[str],
    log_path: Path,
    *,
    cwd: Path,
    env: dict[str, str],
    kill_when: Callable[[], bool] | None = None,
    profile: Path | None = None,
) -> Watched:
    """Run ``cmd`` in its own session, lines to ``log_path`` (with seconds since start).

    Polls its memory; SIGKILLs its whole process group (and any descendant that
    left it) once ``kill_when()`` is true; ``profile``: py-spy's raw stacks there.
    """
    out, start = Watched(started=time.time()), time.perf_counter()
    load_start = os.getloadavg()[0]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        spy = _start_profiler(proc.pid, profile) if profile else None
        reader = threading.Thread(target=_read_lines, args=(proc.stdout, out, start, log))
        reader.start()
        seen: dict[int, psutil.Process] = {}
        tick = 0
        while proc.poll() is None:
            out.driver_peak_rss = max(out.driver_peak_rss, _vm_hwm(proc.pid))
            if tick % 4 == 0:
                _sample_tree(proc.pid, seen, out.tree_peak_rss)
            if kill_when is not None and out.killed_at is None and kill_when():
                out.killed_at = time.perf_counter() - start
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                for p in seen.values():  # anything of this run that left the group
                    with contextlib.suppress(psutil.Error):
                        p.kill()  # psutil refuses a pid that was reused
            tick += 1
            time.sleep(0.25)
        out.rc = proc.returncode
        out.wall_s = time.perf_counter() - start
        out.load = (load_start, os.getloadavg()[0])
        reader.join(timeout=30)
        if spy is not None:
            spy.wait(timeout=60)
    return out


def _sample_tree(pid: int, seen: dict[int, psutil.Process], peaks: dict[str, int]) -> None:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for p in children:
        try:
            name, rss = p.name(), p.memory_info().rss
        except psutil.Error:
            continue
        seen.setdefault(p.pid, p)
        peaks[name] = max(peaks.get(name, 0), rss)


def _start_profiler(pid: int, path: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found: no profile", file=sys.stderr)
        return None
    cmd = [spy, "record", "--pid", str(pid), "--rate", "20", "--format", "raw", "--idle"]
    cmd += ["--nonblocking", "--output", str(path)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_summary(path: Path, top: int = 25) -> list[tuple[str, float]]:
    """Share of the main thread's samples under each frame of our code (inclusive), largest
    first; py-spy's samples of other threads start in threading's bootstrap."""
    if not path.is_file():
        return []
    total, inclusive = 0, Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "(threading.py" in stack.split(";", 1)[0]:
            continue
        total += int(count)
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}:
            if OWN_CODE.search(frame):
                inclusive[frame] += int(count)
    return [(f, n / total) for f, n in inclusive.most_common(top)] if total else []
