"""The one configuration loader: TOML into frozen dataclasses, validated completely before a service starts.

A service describes its configuration as nested frozen dataclasses. :func:`load` reads a TOML file and
builds them, refusing unknown keys, missing required keys, values of the wrong type and values that a
field's ``check`` rejects. Every error names the key (``mqtt.port``) and the problem; all errors are
collected and reported together, so a user fixes a file in one pass.

Secrets are never read from TOML: :func:`secret` takes them from systemd credentials
(``$CREDENTIALS_DIRECTORY/<name>``) or the environment.

>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class Broker:
...     host: str = "127.0.0.1"
...     port: int = field(default=1883, metadata={"check": lambda v: 0 < v < 65536 or "must be 1..65535"})
>>> build(Broker, {"port": 70000})
Traceback (most recent call last):
...
plantwatch.config.ConfigError: port: must be 1..65535
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")

NAME_PATTERN = re.compile(r"^[a-z0-9_-]+$")
"""What a site, agent, asset or gateway id may be: it becomes a topic level (DESIGN.md, wire contract)."""


class ConfigError(Exception):
    """A configuration file that cannot be used; ``problems`` lists each ``key: problem``."""

    def __init__(self, problems: list[str], *, source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(problems))


def check_name(value: str) -> bool | str:
    """Check for an id usable as a topic level (``[a-z0-9_-]+``)."""
    return bool(NAME_PATTERN.fullmatch(value)) or "must match [a-z0-9_-]+"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def check_log_level(value: str) -> bool | str:
    """Check for a ``log_level`` key."""
    return value in LOG_LEVELS or "must be " + ", ".join(LOG_LEVELS)


def check_positive(value: float) -> bool | str:
    """Check for a number greater than zero."""
    return value > 0 or "must be greater than 0"


def check_port(value: int) -> bool | str:
    """Check for a TCP port number."""
    return 0 < value < 65536 or "must be a port number 1..65535"


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(kind))
    if origin in (list, tuple):
        return "a list"
    if dataclasses.is_dataclass(kind):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(kind, str(kind))


def _convert(kind: Any, value: Any, key: str, problems: list[str]) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key, problems)
    if origin is Literal:
        if value in args:
            return value
        problems.append(f"{key}: {value!r} is not {_type_name(kind)}")
        return None
    if origin in (list, tuple):
        if not isinstance(value, list):
            problems.append(f"{key}: expected a list, got {type(value).__name__}")
            return None
        inner = args[0]
        items = [_convert(inner, item, f"{key}[{i}]", problems) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            problems.append(f"{key}: expected a table, got {type(value).__name__}")
            return None
        return _build(kind, value, key + ".", problems)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (str, int, float, bool) and (type(value) is not kind):
        problems.append(f"{key}: expected {_type_name(kind)}, got {value!r}")
        return None
    return value


def _build(cls: type[T], table: dict[str, Any], prefix: str, problems: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in table:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    before = len(problems)
    for name, spec in known.items():
        key = prefix + name
        if name not in table:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                problems.append(f"{key}: required")
            continue
        value = _convert(hints[name], table[name], key, problems)
        check = spec.metadata.get("check")
        if check is not None and value is not None:
            verdict = check(value)
            if verdict is not True:
                problems.append(f"{key}: {verdict if isinstance(verdict, str) else 'invalid value'}")
        values[name] = value
    if len(problems) > before:
        return None  # type: ignore[return-value]
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        # __post_init__ checks that span several keys name the table
        problems.append(f"{prefix.rstrip('.') or '(top level)'}: {error}")
        return None  # type: ignore[return-value]


def build(cls: type[T], table: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a parsed TOML table; raise :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    result = _build(cls, table, "", problems)
    if problems:
        raise ConfigError(problems)
    return result


def load(path: str | os.PathLike[str], cls: type[T]) -> T:
    """Read the TOML file at ``path`` into ``cls``; raise :class:`ConfigError` naming the file and key."""
    source = str(path)
    try:
        with open(path, "rb") as stream:
            table = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(["file not found"], source=source) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"not valid TOML: {error}"], source=source) from None
    try:
        return build(cls, table)
    except ConfigError as error:
        raise ConfigError(error.problems, source=source) from None


def secret(name: str, *, env: str) -> str | None:
    """A secret from systemd credentials (``$CREDENTIALS_DIRECTORY/name``), else environment ``env``.

    Returns ``None`` when neither has it; trailing newlines of a credential file are stripped.
    """
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / name
        if path.is_file():
            return path.read_text(encoding="utf-8").rstrip("\r\n")
    return os.environ.get(env)
