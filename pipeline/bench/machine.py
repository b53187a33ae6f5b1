"""The machine a bench ran on, as its tables name it."""

from __future__ import annotations

import collections
import os
import platform
import resource
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or f"{platform.machine()} CPU"


def cores() -> int:
    """Cores this process may run on (a container's share, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def gpus() -> str | None:
    """``"2 x NVIDIA H200"`` for the CUDA devices present, None without any."""
    if not torch.cuda.is_available():
        return None
    names = collections.Counter(
        torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
    )
    return ", ".join(f"{n} x {name}" for name, n in names.items())


def describe(device: str | torch.device = "cpu") -> str:
    """CPU model and cores, the CUDA devices (and whether the run used them), versions."""
    cpu = f"{cpu_model()}, {cores()} cores ({torch.get_num_threads()} torch threads)"
    found = gpus()
    if found is None:
        gpu = "no CUDA device"
    elif torch.device(device).type == "cuda":
        gpu = f"GPU {found} (the run used {device})"
    else:
        gpu = f"GPU {found} present, not used (the run used {device})"
    return f"{cpu}; {gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): timings need a quiet machine."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def peak_rss_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if platform.system() != "Darwin" else rss / 2**20
