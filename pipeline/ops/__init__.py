"""Operations around runs.

- ``nightly``: ``foveabench nightly``, the scheduled benchmark and its regression check;
- ``regression``: a run's metrics against a baseline (thresholds, verdicts, the page's data);
- ``submit``: ``foveabench submit``, a benchmark as a Ray job;
- ``sync``: ``foveabench sync``, MLflow caught up with a run directory after an outage.

Nothing is imported here.
"""
