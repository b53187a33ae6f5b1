"""The benchmark's configuration: YAML in, a validated frozen dataclass out.

- ``benchmark`` (was ``config.py``)
- ``checks`` (was ``config_checks.py``)
- ``entries`` (was ``config_entries.py``)
- ``error`` (was ``config_error.py``)
- ``overrides`` (was ``config_overrides.py``)
- ``reference`` (was ``config_reference.py``)
- ``yaml_file`` (was ``config_yaml.py``)
- ``evaluation`` (was ``eval_config.py``)
- ``names`` (was ``names.py``)

Nothing is imported here: import the module you need.
"""
