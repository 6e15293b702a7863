# SPDX-License-Identifier: Apache-2.0
"""What the command groups share: the handler and parser-adding types, the data-dir option,
and options made from a config dataclass's fields."""
from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from typing import Any, Callable, Iterable

from dgm_policy_ros.config import ConfigError, field_comments, field_default

Handler = Callable[[argparse.Namespace], int]
Add = Callable[[str, Handler, str], argparse.ArgumentParser]


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data-dir', help='Minari datasets root (default: '
                        '$MINARI_DATASETS_PATH or ~/.minari/datasets)')


def apply_data_dir(args: argparse.Namespace) -> None:
    if getattr(args, 'data_dir', None):
        os.environ['MINARI_DATASETS_PATH'] = os.path.abspath(args.data_dir)


def key_values(items: Iterable[str], option: str = '--set') -> dict[str, Any]:
    """``KEY=VALUE`` items as a mapping, each value read as YAML (``5`` an int, ``0.9`` a float,
    ``true`` a bool)."""
    import yaml

    values = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'{option} takes KEY=VALUE, got {item!r}')
        values[key] = yaml.safe_load(value)
    return values


def _option_kind(hint: Any) -> dict[str, Any]:
    """argparse keywords for a field's type: a scalar, a flag, or a list of strings."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint
    if kind in (int, float, str):
        return {'type': kind}
    if kind is bool:
        return {'action': 'store_true'}
    if typing.get_origin(kind) is list and typing.get_args(kind) in ((str,), (int,), (float,)):
        return {'type': typing.get_args(kind)[0], 'nargs': '+'}
    raise TypeError(f'no command-line option for a field of type {hint}')


def add_config_options(parser: argparse.ArgumentParser, config_class: type,
                       names: Iterable[str], required: Iterable[str] = (),
                       defaults: dict[str, Any] | None = None) -> None:
    """``--<name>`` for each named field of ``config_class``, typed and described by the field
    itself (its comment in the source is the help text). An option left out stays ``None``, so
    only what was typed overrides a YAML config; ``defaults`` changes what a command uses."""
    hints = typing.get_type_hints(config_class)
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    comments = field_comments(config_class)
    required, defaults = set(required), defaults or {}
    for name in names:
        default = defaults.get(name, field_default(fields[name]))
        text = comments.get(name, '')
        kind = _option_kind(hints[name])
        if all(default is not v for v in (dataclasses.MISSING, None, False)) and \
                name not in required:
            text += f' (default {default})'
        parser.add_argument('--' + name.replace('_', '-'), **kind, required=name in required,
                            default=defaults.get(name),
                            help=text.strip().replace('%', '%%') or None)


def config_overrides(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options of ``add_config_options`` that were given (or defaulted by the command)."""
    given = {name: getattr(args, name, None) for name in names}
    return {name: value for name, value in given.items()
            if value is not None and value is not False}
