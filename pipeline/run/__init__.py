"""One run's lifecycle: prepare, run the stages, summarise, finish.

- ``runner`` (was ``runner.py``)
- ``run_result`` (was ``run_result.py``)
- ``rundir`` (was ``rundir.py``)
- ``runmeta`` (was ``runmeta.py``)
- ``interrupts`` (was ``interrupts.py``)
- ``preflight`` (was ``preflight.py``)
- ``library_logs`` (was ``library_logs.py``)
- ``provenance`` (was ``provenance.py``)
- ``netcheck`` (was ``netcheck.py``)

Nothing is imported here: import the module you need.
"""
