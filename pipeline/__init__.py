"""Orchestration: config, manifests, models, Ray actors, results and MLflow."""
