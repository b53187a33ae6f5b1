"""The one MLflow gateway: everything foveabench does with an MLflow store.

- ``tracker``: :class:`Tracker`, what a run holds (a facade over the two below);
- ``session``: start, reopen (``mlflow.json``), orphaned runs, finish;
- ``log``: metrics, artifacts, tables, datasets, system metrics;
- ``queries``: the one health probe, a read-only client, and every lookup (runs by
  name, tag or status, children, metrics, artifacts) that nightly, report and sync use;
- ``store``: which store a run uses, whether it can be opened, request bounds, outages;
- ``dataset``, ``note``, ``urls``, ``system_metrics``: the run's input, its description,
  links into the UI, and MLflow's system-metrics monitor.

Nothing is imported here: ``pipeline.tracking.urls`` and ``queries`` stay light for the
CLI, while the session and the logging import MLflow.
"""
