"""The ``foveabench`` command: ``main`` (the parser, ``run``), one module per other command.

- ``main`` (was ``cli.py``)
- ``bench`` (was ``cli_bench.py``)
- ``listing`` (was ``cli_list.py``)
- ``ops`` (was ``cli_ops.py``)
- ``report`` (was ``cli_report.py``)
- ``summary`` (was ``cli_summary.py``)

Nothing is imported here: import the module you need.
"""
