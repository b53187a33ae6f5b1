"""The error every config check raises: one line naming the file, the key, the value and the fix."""

from __future__ import annotations

from pipeline.user_error import UserError


class ConfigError(UserError, ValueError):
    """A config file that cannot be run; the message says where and how to fix it."""

    label = "config error"  # how the CLI introduces the message


EXCERPT = 160  #: characters of a value an error message shows


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: an error line stays short."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def located(source: str, where: str, problem: str) -> ConfigError:
    """``<file>: <key> = <value>: <what is wrong and how to fix it>``, on one line; the value
    is cut to a short excerpt (a hostile value must not print megabytes)."""
    return ConfigError(f"{source}: {excerpt(where)}: {problem}".replace("\n", " "))
