"""``foveabench bench``: our attacks against ART and Foolbox on the same pixels.

See :mod:`pipeline.bench.core` for what is compared and how, and
:mod:`pipeline.bench.peers` for how the optional peer libraries are loaded.
"""

from pipeline.bench.core import (
    PAIRS,
    BenchReport,
    Ceiling,
    Pair,
    PairResult,
    format_markdown,
    format_text,
    measure_ceiling,
    run_bench,
    run_pair,
    write_section,
)
from pipeline.bench.peers import PeerMissing, require

__all__ = [
    "PAIRS",
    "BenchReport",
    "Ceiling",
    "Pair",
    "PairResult",
    "PeerMissing",
    "format_markdown",
    "format_text",
    "measure_ceiling",
    "require",
    "run_bench",
    "run_pair",
    "write_section",
]
