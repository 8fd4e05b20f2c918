"""The command-line layer: one module per command, each with its parser and a ``run(args)``.

``tfdeblur {blur,deblur,export}`` (:mod:`tfdeblur.cli`), ``python train.py`` and ``python
evaluate.py`` are built from here. Library functions raise typed errors and return values; the
commands turn them into one ``error: ...`` line on stderr (:func:`error`) and one of the exit
codes below. Nothing here imports TensorFlow: a command imports it when it runs, quietly unless
``-v`` (:mod:`tfdeblur.quiet`), so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_FAILED", "error", "OneLineParser", "add_common_flags", "start"]

EXIT_OK = 0  # everything done
EXIT_PARTIAL = 1  # done, but some inputs were skipped (one "skipped PATH: reason" line each)
EXIT_FAILED = 2  # usage error, or nothing done


def error(msg, code: int = EXIT_FAILED) -> int:
    """Print ``error: msg`` as one line on stderr; returns ``code`` for the command to return."""
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit 2, like every other user error (argparse
    would print the whole usage block first). Subparsers inherit the class."""

    def error(self, message):
        self.exit(EXIT_FAILED, f"error: {message} (see {self.prog} --help)\n")


def add_common_flags(p: argparse.ArgumentParser, quiet_help: str = "no progress bar") -> None:
    """``-q/--quiet`` and ``-v/--verbose``, the same on every command."""
    p.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show TensorFlow's own log lines (hidden by default)")


def start(args) -> None:
    """What every command does once its flags are parsed, before any TensorFlow import."""
    from tfdeblur import quiet

    quiet.configure(verbose=args.verbose)
