"""The ``foveabench`` command, one module per command.

- ``main``: the parser, ``--version`` and the exit codes (``python -m pipeline.cli``);
- ``run``: ``foveabench run`` and the config options every command that runs a config takes;
- ``prepare``: ``foveabench prepare``; ``listing``: ``foveabench list``;
- ``report``: ``foveabench report``; ``bench``: ``foveabench bench``;
- ``ops``: ``submit``, ``nightly``, ``sync``;
- ``summary``: the closing block ``foveabench run`` prints.

Nothing is imported here: ``foveabench list`` and ``--version`` load no torch or Arrow.
"""
