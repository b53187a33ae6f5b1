"""Operations around runs: the nightly benchmark, regressions, Ray jobs, MLflow catch-up.

- ``nightly`` (was ``nightly.py``)
- ``regression`` (was ``regression.py``)
- ``submit`` (was ``submit.py``)
- ``sync`` (was ``sync.py``)

Nothing is imported here: import the module you need.
"""
