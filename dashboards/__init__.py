"""Aggregation (polars) and, later, figures and the HTML report."""
