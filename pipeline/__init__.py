"""Orchestration: config, data, models, the stages on Ray actors, results, runs and MLflow.

Packages only (docs/architecture.md, "Layout"): ``config``, ``data``, ``models``,
``stages``, ``results``, ``run``, ``summary``, ``tracking``, ``ops``, ``bench``, ``cli``.
Nothing is imported here.
"""
