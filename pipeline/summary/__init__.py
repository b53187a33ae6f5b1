"""The summary layer: reads result shards, writes ``summary/*.parquet``, computes metrics.

Below both the runner (which calls it after each stage) and the dashboards
(which only draw what it wrote): runs write results, this layer reads them.
"""
