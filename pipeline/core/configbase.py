"""Option models and YAML loading shared by every configurable stage.

Why strict models: a silently ignored typo in a tracking config produces plausible but wrong
identities, so unknown keys and wrong types are errors, reported as one line that names the file
and the dotted key (``configs/x.yaml: tracker.max_age: expected int, got 'ten'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ConfigDict

from samtrack.pipeline.core.errors import ConfigError


class StrictModel(BaseModel):
    """Base of every options section: unknown keys are errors, values must have the option's
    type (``max_age: true``, ``'600'`` or ``overwrite: 'yes'`` are errors, not 1, 600 and
    True; an int is accepted where a float is expected), assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


_TYPE_NAMES = {
    "int": "int", "float": "float", "bool": "bool", "string": "str", "dict": "mapping",
    "list": "list", "model": "mapping",
}


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
            return f"expected {name}, got {given!r}"
    if kind == "literal_error":
        return f"expected one of {error['ctx']['expected']}, got {given!r}"
    msg: str = error["msg"]
    msg = msg.removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:] if msg else msg
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = f"{msg}, got {given!r}"
    return msg


def format_error(error: dict[str, Any], prefix: tuple = ()) -> str:
    """``dotted.key: phrase`` for one pydantic error."""
    loc = ".".join(str(p) for p in (*prefix, *error["loc"]))
    return f"{loc}: {describe_error(error)}" if loc else describe_error(error)


def raise_config_error(where: str, messages: list[str]) -> NoReturn:
    """One line: the origin, the first problem and how many more there are."""
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    raise ConfigError(f"{where}: {messages[0]}{more}")


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping (empty file: ``{}``), errors naming file and line."""
    where = str(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{where}: no such config file")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}:{line}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where}: top level must be a mapping of sections")
    return loaded
