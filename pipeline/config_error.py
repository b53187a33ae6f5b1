"""The error every config check raises: one line naming the file, the key, the value and the fix."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file that cannot be run; the message says where and how to fix it."""

    label = "config error"  # how the CLI introduces the message
