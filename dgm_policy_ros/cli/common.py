# SPDX-License-Identifier: Apache-2.0
"""What the command groups share: the handler and parser-adding types, the data-dir option."""
from __future__ import annotations

import argparse
import os
from typing import Callable

Handler = Callable[[argparse.Namespace], int]
Add = Callable[[str, Handler, str], argparse.ArgumentParser]


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data-dir', help='Minari datasets root (default: '
                        '$MINARI_DATASETS_PATH or ~/.minari/datasets)')


def apply_data_dir(args: argparse.Namespace) -> None:
    if getattr(args, 'data_dir', None):
        os.environ['MINARI_DATASETS_PATH'] = os.path.abspath(args.data_dir)
