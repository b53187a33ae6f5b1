"""``foveabench bench``: our attacks against ART and Foolbox on the same pixels.

- :mod:`~pipeline.bench.pairs`: the comparisons, one registry entry each;
- :mod:`~pipeline.bench.peers`: the optional peer libraries, loaded on demand;
- :mod:`~pipeline.bench.ceiling`: what the network alone sustains (the yardstick);
- :mod:`~pipeline.bench.runner`: runs the pairs and the top-5 success table
  (:mod:`~pipeline.bench.success`) on the photos of :mod:`~pipeline.bench.images`;
- :mod:`~pipeline.bench.report`: the terminal table and the docs section;
- :mod:`~pipeline.bench.scaling`: attack-stage throughput with 1, 2, 4... actors
  (``python -m pipeline.bench.scaling``);
- :mod:`~pipeline.bench.scale_data` and :mod:`~pipeline.bench.watch`: the 50k-image
  dataset of links and the subprocess observer of ``scripts/scale_bench.py``.

Installing the peers: docs/benchmarks.md.
"""

from pipeline.bench.ceiling import Ceiling, measure_ceiling
from pipeline.bench.pairs import PAIRS, Pair, PairSettings
from pipeline.bench.peers import PeerMissing, require
from pipeline.bench.report import format_markdown, format_text, write_section
from pipeline.bench.runner import BenchReport, PairResult, run_bench, run_pair

__all__ = [
    "PAIRS",
    "BenchReport",
    "Ceiling",
    "Pair",
    "PairResult",
    "PairSettings",
    "PeerMissing",
    "format_markdown",
    "format_text",
    "measure_ceiling",
    "require",
    "run_bench",
    "run_pair",
    "write_section",
]
