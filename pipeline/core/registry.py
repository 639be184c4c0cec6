"""Named plug-ins (sources, embedders, output writers, annotators, cost terms).

Why registries: adding a plug-in should be one new file plus one ``register`` call, and the
config, the CLI help and error messages all list the same names from one place, so a name can
never be accepted by one part and unknown to another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from samtrack.pipeline.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry table; ``kind`` and ``key`` only shape the error messages."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers a class or function under ``name``."""
        return lambda entry: self.register(name, entry)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"{self.key}: unknown {self.kind} {name!r}; choose from "
                              f"{', '.join(self.names())}") from None

    def check(self, names: list[str]) -> list[str]:
        """``names`` if every one is registered, else a ValueError naming the first unknown
        (for option validators, which add the key)."""
        for name in names:
            if name not in self._entries:
                raise ValueError(f"unknown {self.kind} {name!r}; choose from "
                                 f"{', '.join(self.names())}")
        return names

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
