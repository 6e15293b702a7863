# SPDX-License-Identifier: Apache-2.0
"""Typed configuration: dataclasses that round-trip to YAML/JSON and validate on construction.

Every configurable thing in the project (dataset recipes, later training and deployment
configs) is a dataclass deriving from :class:`Config`. Unknown keys and wrong types fail with a
message naming the field, so a typo in a YAML file is caught before any work starts.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import os
from pathlib import Path
import re
import textwrap
import types
import typing
from typing import Any, TypeVar

import yaml

from dgm_policy_ros.errors import DgmError
from dgm_policy_ros.utils.atomic import atomic_write_yaml

C = TypeVar('C', bound='Config')


class ConfigError(DgmError, ValueError):
    """A configuration value is missing, unknown or invalid."""


# PyYAML reads YAML 1.1, whose floats need a dot and a signed exponent: `lr: 1e-3` and
# `steps: 1e5` arrive as the strings '1e-3' and '1e5'. Numeric fields take such strings.
_EXPONENT_NUMBER = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+')


def _yaml_number(value: Any) -> Any:
    """``value``, or the float a YAML 1.1 parser left as a string (see above)."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


def _coerce(cls_name: str, name: str, hint: Any, value: Any) -> Any:
    """Check/convert ``value`` against the annotation ``hint`` (the subset configs use)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(cls_name, name, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f'{cls_name}.{name}: {value!r} matches none of {hint}')
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{cls_name}.{name}: expected a list, got {value!r}')
        item = args[0] if args else Any
        items = [_coerce(cls_name, name, item, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f'{cls_name}.{name}: expected a mapping, got {value!r}')
        return dict(value)
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f'{cls_name}.{name}: expected a mapping, got {value!r}')
        return hint.from_dict(value)
    if hint in (float, int):
        value = _yaml_number(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{cls_name}.{name}: expected a number, got {value!r}')
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f'{cls_name}.{name}: expected an integer, got {value!r}')
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{cls_name}.{name}: expected true/false, got {value!r}')
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f'{cls_name}.{name}: expected a string, got {value!r}')
        return value
    return value


@dataclasses.dataclass
class Config:
    """Base for typed configs. Subclasses validate in ``validate()``, called on construction."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            setattr(self, field.name, _coerce(type(self).__name__, field.name,
                                              hints[field.name], value))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for invalid values. Override in subclasses."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Config):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None) -> C:
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f'{cls.__name__}: unknown key(s) {unknown}; '
                              f'valid keys are {sorted(known)}')
        try:
            return cls(**data)
        except TypeError as exc:  # missing required fields
            raise ConfigError(f'{cls.__name__}: {exc}') from exc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls: type[C], text: str) -> C:
        data = yaml.safe_load(text)
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f'{cls.__name__}: YAML must be a mapping, got {type(data).__name__}')
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_yaml(path, self.to_dict())

    @classmethod
    def load(cls: type[C], path: str | os.PathLike) -> C:
        return cls.from_yaml(Path(path).read_text())

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


def _own_field_comments(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # installed without sources: options keep their names only
        return {}
    lines = source.splitlines()
    comments: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.lineno - 1]
            text = line.split('  # ', 1)[1] if '  # ' in line else ''
            above, k = [], node.lineno - 2
            while k >= 0 and lines[k].strip().startswith('#'):
                above.insert(0, lines[k].strip().lstrip('# '))
                k -= 1
            comments[node.target.id] = ' '.join(above + [text]).strip()
    return comments


@functools.lru_cache(maxsize=None)
def field_comments(config_class: type) -> dict[str, str]:
    """The comment beside (or just above) each field of a config dataclass and its project
    bases: the one description of a setting, which docs/ and the command line's options read."""
    comments: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        if dataclasses.is_dataclass(cls) and cls.__module__.startswith('dgm_policy_ros'):
            comments.update(_own_field_comments(cls))
    return comments


def field_default(field: dataclasses.Field) -> Any:
    """A field's default value, ``dataclasses.MISSING`` for a required one."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING
