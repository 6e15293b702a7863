# SPDX-License-Identifier: Apache-2.0
"""``dgm``: the project's command line.

Each subcommand imports its heavy dependencies (MuJoCo, Minari, torch, rclpy) only when it runs,
so ``dgm --help`` is instant and works on a robot that has only the runtime installed. The
commands live by group, each parser next to its handler: ``data_commands``,
``training_commands``, ``deploy_commands``, ``loop_commands``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from dgm_policy_ros.cli import data_commands, deploy_commands, loop_commands, training_commands
from dgm_policy_ros.cli.common import Handler, apply_data_dir

GROUPS = (data_commands, training_commands, deploy_commands, loop_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='dgm', description='Deep generative model policies: data, training, export, '
        'deployment on ROS 2.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    for group in GROUPS:
        for register in group.REGISTER:
            register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dgm_policy_ros.errors import DgmError

    parser = build_parser()
    args = parser.parse_args(argv)
    apply_data_dir(args)
    try:
        return int(args.handler(args) or 0)
    except (DgmError, FileNotFoundError, FileExistsError) as exc:
        # Bad input is the user's to fix: say what is wrong, without a traceback. Anything
        # else is a bug here and keeps its traceback.
        print(f'dgm {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
