"""Option models and YAML loading shared by every configurable stage.

Why strict models: a silently ignored typo in a tracking config produces plausible but wrong
identities, so unknown keys and wrong types are errors, reported as one line that names the file
and the dotted key (``configs/x.yaml: tracker.association.max_age: expected int, got 'ten'``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ConfigDict

from samtrack.pipeline.core.errors import ConfigError


class StrictModel(BaseModel):
    """Base of every options section: unknown keys are errors, values must have the option's
    type (``max_age: true``, ``'600'`` or ``overwrite: 'yes'`` are errors, not 1, 600 and
    True; an int is accepted where a float is expected), assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True,
                              allow_inf_nan=False)


_TYPE_NAMES = {
    "int": "int", "float": "float", "bool": "bool", "string": "str", "dict": "mapping",
    "list": "list", "model": "mapping",
}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def describe_error(error: dict[str, Any]) -> str:
    """One pydantic error as a short phrase ("unknown key", "expected int, got 'ten'")."""
    kind: str = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    for prefix, name in _TYPE_NAMES.items():
        if kind.startswith(prefix + "_") and ("parsing" in kind or "type" in kind or
                                              "from" in kind):
            return f"expected {name}, got {_short(given)}"
    if kind == "literal_error":
        return f"expected one of {error['ctx']['expected']}, got {_short(given)}"
    msg: str = error["msg"]
    msg = msg.removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:] if msg else msg
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = f"{msg}, got {_short(given)}"
    return msg


#: options that were renamed, by their old dotted key: the old key is an error naming the new
#: one (each options module adds its own)
MOVED_KEYS: dict[str, str] = {}


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``"a.b"``, making (or replacing non-mapping) sections on
    the way: how a command-line option or a benchmark's override reaches its nested key."""
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def format_error(error: dict[str, Any], prefix: tuple = ()) -> str:
    """``dotted.key: phrase`` for one pydantic error."""
    loc = ".".join(str(p) for p in (*prefix, *error["loc"]))
    if loc in MOVED_KEYS and error.get("type") in ("extra_forbidden", "model_type", "dict_type"):
        return f"{loc}: replaced by {MOVED_KEYS[loc]}"
    return f"{loc}: {describe_error(error)}" if loc else describe_error(error)


def raise_config_error(where: str, messages: list[str]) -> NoReturn:
    """One line: the origin, the first problem and how many more there are."""
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    first = messages[0]
    if len(first) > MAX_MESSAGE:  # a huge value quoted back would bury the message
        first = first[:MAX_MESSAGE] + "..."
    raise ConfigError(f"{where}: {first}{more}")


#: Limits on a config file: a tracking config is a few kilobytes; these only stop a file that
#: is not one (or a YAML "billion laughs" alias bomb) from taking minutes and gigabytes.
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_VALUES = 100_000
MAX_MESSAGE = 300


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one
    silently, so a second ``tracker:`` section would drop the first one's settings)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _count_values(data: Any, limit: int) -> int:
    """Values in ``data`` as validation would walk them (shared YAML aliases counted each
    time), stopping past ``limit``."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping (empty file: ``{}``), errors naming file and line."""
    where = str(path)
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{where}: is a folder, not a config file")
    if not p.is_file():
        raise ConfigError(f"{where}: no such config file")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: {p.stat().st_size} bytes; a config is at most "
                          f"{MAX_CONFIG_BYTES} bytes")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{where}: line {line}: not UTF-8 text") from None
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}:{line}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where}: top level must be a mapping of sections")
    if _count_values(loaded, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(f"{where}: more than {MAX_CONFIG_VALUES} values once YAML aliases "
                          "are expanded; not a samtrack config")
    return loaded


def parse_scalar(text: str) -> Any:
    """A command-line or table cell as the scalar it spells: an int, a float, true/false,
    null, else the text itself. Never YAML: a cell is one value, and YAML would also read
    anchors and aliases (a "billion laughs" in a cell) and turn ``off`` into false."""
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~"):
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if kind is int or math.isfinite(value) else text
    return text
