"""One run's lifecycle: prepare, run the stages, summarise, finish.

- ``runner``: :class:`Run`, the driver of ``foveabench run``;
- ``run_result``: the immutable :class:`RunResult` and the hooks a caller may pass;
- ``preflight``: what the driver checks before a manifest, Ray or MLflow starts;
- ``runmeta``: what a run tells MLflow about itself (provenance tags, parameters);
- ``interrupts``: Ctrl-C and SIGTERM as one clean interrupt;
- ``library_logs``: library log lines to the run's log file;
- ``netcheck``: does a server answer at all (a bounded probe).

Nothing is imported here.
"""
