"""The benchmark's configuration: YAML in, a validated frozen dataclass out.

- ``benchmark``: :class:`BenchmarkConfig` and ``load_config`` (file, overrides, checks);
- ``entries``: the list keys (``models``, ``attacks``, ``tasks``) and their parameters;
- ``evaluation``: the ``eval`` block (plain values: the dashboards may import it);
- ``checks``: the ``eval`` checks an actor would otherwise make late;
- ``overrides``: ``--set key=value``, ``--models``, ``--limit``... written into the mapping;
- ``yaml_file``: reading YAML with limits; ``names``: the names a config is checked against;
- ``error``: :class:`ConfigError`, the one-line error every check raises;
- ``reference``: the README's config table (``python -m pipeline.config.reference``).

Nothing is imported here: ``names``, ``error`` and ``evaluation`` stay light for the CLI.
"""
