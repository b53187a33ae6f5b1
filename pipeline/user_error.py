"""The one base class of every error a user can fix, and how the CLI reports it.

A config, a dataset, an address, a thresholds file, a run directory: each has its own
subclass with its own ``label`` (``config error``, ``submit error``, ...). The CLI's
``main`` catches this class once, prints ``<label>: <message>`` on one line and exits
with the class's ``exit_code``, so no command handler repeats that mapping.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says where it is and how to fix it."""

    label = "error"  # how the CLI introduces the message
    exit_code = 2  # 2: nothing was run (bad input); 1: the work ran but is incomplete
