"""Read a YAML config with limits, so that no file can hang, exhaust or crash the driver.

PyYAML alone accepts an alias bomb (nine nested aliases of nine items describe
387 million values, which the checks then walk and print), builds the parser's
recursion from ``[[[[...`` until a RecursionError, reads a file of any size, and
lets the last of two equal keys win silently. Here the file's size, the nesting
depth and the number of values once aliases are expanded are bounded, and a
duplicate key is an error naming both lines. Standard library and PyYAML only:
config errors answer before anything heavy is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from pipeline.config.error import ConfigError, excerpt

MAX_BYTES = 1_000_000  #: a real config is a few KB
MAX_DEPTH = 64  #: nesting levels; real configs use under 6
MAX_VALUES = 100_000  #: values after alias expansion; real configs have a few hundred


class _Loader(yaml.SafeLoader):
    """SafeLoader that bounds nesting and refuses duplicate keys."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"{self.source}: line {mark.line + 1}: nested more than {MAX_DEPTH} levels "
                    "deep; a config needs a few levels, fix the brackets or indentation there"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(
                    f"{self.source}: line {line}: key {excerpt(repr(key))} is written twice "
                    f"(first on line {seen[key]}); keep one of them"
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_values(node: Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is copied out (memoised per
    node, so a bomb is counted in time linear in the file, never expanded)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_VALUES + 1  # a node that contains itself counts as too many
    total = 1
    if isinstance(node, SequenceNode):
        total += sum(_expanded_values(child, memo) for child in node.value)
    elif isinstance(node, MappingNode):
        total += sum(_expanded_values(k, memo) + _expanded_values(v, memo) for k, v in node.value)
    memo[id(node)] = total = min(total, MAX_VALUES + 1)
    return total


def load_yaml(path: Path, source: str | None = None) -> Any:
    """The YAML document in ``path`` (None for an empty or comment-only file); ConfigError
    for a file too big, too deep, too many values with aliases expanded, duplicate keys,
    invalid YAML, or one that cannot be read."""
    source = source or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"{source}: {size} bytes; a config is a few KB (at most {MAX_BYTES} bytes "
                "are read): pass the right file"
            )
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{source}: cannot be read ({exc}); pass a readable UTF-8 YAML file"
        ) from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text`` (None when empty), with the limits of :func:`load_yaml`
    but the size; ``source`` names it in errors."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters; a config is a few KB")
    loader = _Loader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, {}) > MAX_VALUES:
            raise ConfigError(
                f"{source}: more than {MAX_VALUES} values once its aliases (*name) are "
                "expanded; a config has a few hundred, write the values out or remove the aliases"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = excerpt(getattr(exc, "problem", None) or type(exc).__name__)
        raise ConfigError(
            f"{source}: not valid YAML{where}: {problem}; fix the indentation or quoting there"
        ) from None
    finally:
        loader.dispose()
