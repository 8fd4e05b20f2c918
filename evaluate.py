#!/usr/bin/env python
"""Face-detection evaluation: ``python evaluate.py [--model PATH ...] (--data-dir DIR | --pairs-dir DIR) ...``

See ``python evaluate.py --help``, tfdeblur/commands/evaluate.py and the tfdeblur/evaluation/ package.
"""
import sys

from tfdeblur.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
