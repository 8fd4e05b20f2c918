"""Entry points: ``tfdeblur {blur,deblur,export}``, ``python train.py`` and ``python evaluate.py``.

A thin dispatcher over :mod:`tfdeblur.commands` (one module per command, each with its parser).
User errors are one ``error:`` line on stderr and an exit code: 0 all done, 1 some inputs
skipped, 2 usage error or nothing done.
"""

from __future__ import annotations

import argparse
import sys

from tfdeblur.commands import OneLineParser, error
from tfdeblur.commands import blur, deblur, export
from tfdeblur.commands.evaluate import evaluate_main, evaluate_parser  # noqa: F401  entry point of evaluate.py
from tfdeblur.commands.train import train_main, train_parser  # noqa: F401  entry point of train.py

__all__ = ["main", "tfdeblur_parser", "train_main", "train_parser", "evaluate_main", "evaluate_parser"]


def tfdeblur_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="tfdeblur", description="Deblur motion-blurred face photos.")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (blur, deblur, export):
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    args = tfdeblur_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return error("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
