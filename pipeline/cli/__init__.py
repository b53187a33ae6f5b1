"""The ``foveabench`` command, one module per command.

- ``main``: the parser, ``foveabench run`` and the exit codes (``python -m pipeline.cli``);
- ``listing``: ``foveabench list``; ``report``: ``foveabench report``;
- ``ops``: ``submit``, ``nightly``, ``sync``; ``bench``: ``foveabench bench``;
- ``summary``: the closing block ``foveabench run`` prints.

Nothing is imported here: ``foveabench list`` and ``--version`` load no torch or Arrow.
"""
