"""``python evaluate.py``: face-detection evaluation of deblurring generators
(the logic is :mod:`tfdeblur.evaluation`)."""

from __future__ import annotations

import argparse
import sys

from tfdeblur.commands import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, OneLineParser, add_common_flags, error, start
from tfdeblur.config import PRECISIONS

__all__ = ["evaluate_parser", "evaluate_main"]


def evaluate_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="evaluate.py",
        description="Face-detection evaluation of deblurring generators (MTCNN + an independent detector).",
    )
    p.add_argument("--model", action="extend", nargs="+", default=None, metavar="PATH",
                   help="generator .keras file(s); default: the shipped model. Two or more are compared.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="sharp face images (searched recursively); blur is synthesised "
                     "with the 'eval' preset and --seed")
    src.add_argument("--pairs-dir", help="folder with sharp/ and blurred/ images matched by file stem "
                     "(as written by `tfdeblur blur`)")
    src.add_argument("--ground-truth", metavar="XML", help="dlib imglab XML with hand-labelled face boxes "
                     "(e.g. shared/data/multiface/testing.xml); images keep their size")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="with --data-dir: only the validation (or training) persons of training's person split")
    p.add_argument("--limit", type=int, default=None, help="first N images in sorted order")
    p.add_argument("--seed", type=int, default=0, help="blur seed for --data-dir / --ground-truth (default 0)")
    p.add_argument("--output-dir", default="eval_out",
                   help="where metrics.json, report.md and figures go (default eval_out/)")
    p.add_argument("--batch-size", type=int, default=16, help="images per deblurring / detection batch (default 16)")
    p.add_argument("--independent", default=None,
                   help="independent detector: blazeface, blazeface-full, haar, or none (default: blazeface for "
                   "face crops, blazeface-full with --ground-truth, whose group photos have small faces)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="generators compute in this precision (default float32; bfloat16: see README, Performance)")
    add_common_flags(p)
    return p


def _flag_problem(args) -> str | None:
    """What is wrong with the flags (checked before anything slow), or None."""
    from tfdeblur.detectors import NAMES
    from tfdeblur.errors import output_folder_problem

    if args.limit is not None and args.limit < 1:
        return "--limit must be a positive integer"
    if args.batch_size < 1:
        return "--batch-size must be a positive integer"
    if args.independent.lower() != "none" and args.independent not in NAMES:
        return f"--independent {args.independent!r}: choose from {', '.join(NAMES)}, none"
    problem = output_folder_problem(args.output_dir, create=False)
    if problem:  # before minutes of evaluation, not after
        return f"cannot write results to {args.output_dir!r}: {problem}"
    return None


def _load_data(args, log):
    from tfdeblur import evaluation as ev

    if args.data_dir is not None:
        return ev.load_data_dir(args.data_dir, args.limit, args.seed, log=log, split=args.split)
    if args.pairs_dir is not None:
        return ev.load_pairs_dir(args.pairs_dir, args.limit, log=log)
    return ev.load_ground_truth(args.ground_truth, args.limit, args.seed, log=log)


def _evaluate(args, log) -> tuple[dict, list]:
    """Load, evaluate and write the report: ``(metrics, written paths)``."""
    from tfdeblur import evaluation as ev

    models = ev.load_models(args.model, args.precision)
    data = _load_data(args, log)
    if len(log):
        print(f"skipped {len(log)} unreadable input(s); evaluating {len(data)} image(s)", file=sys.stderr, flush=True)
    independent = None if args.independent.lower() == "none" else args.independent
    details = {}
    metrics = ev.evaluate_models(models, data, independent=independent, batch_size=args.batch_size,
                                 verbose=0 if args.quiet else 1, details=details)
    metrics["precision"] = args.precision
    metrics["skipped"] = [{"path": p, "reason": r} for p, r in log.skipped]
    return metrics, ev.write_report(metrics, args.output_dir, details)


def _summary_line(metrics, written, skipped) -> str:
    from tfdeblur.evaluation.report import p_value, percent

    c = metrics["conditions"]
    return (
        f"\nn={metrics['n']}  MTCNN failure rate: blurred {percent(c['blurred']['failure_rate'])}, "
        f"restored {percent(c['restored']['failure_rate'])}, sharp {percent(c['sharp']['failure_rate'])} "
        f"(McNemar p = {p_value(metrics['mcnemar_p'])}); wrote {', '.join(written)}"
        + (f"; {skipped} input(s) skipped" if skipped else "")  # the count again, at the end
    )


def evaluate_main(argv=None) -> int:
    """``python evaluate.py ...``: 0 all done, 1 some inputs skipped, 2 usage error or nothing done."""
    try:
        args = evaluate_parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed its one-line usage error (or the help)
        return EXIT_OK if e.code == 0 else EXIT_FAILED
    start(args)
    if args.independent is None:
        args.independent = "blazeface-full" if args.ground_truth else "blazeface"
    problem = _flag_problem(args)
    if problem:
        return error(problem)
    from tfdeblur import quiet
    from tfdeblur.evaluation import EvaluationError
    from tfdeblur.imageio import SkipLog

    quiet.import_tensorflow()
    log = SkipLog()
    try:
        metrics, written = _evaluate(args, log)
    except EvaluationError as e:
        if len(log):
            print(f"skipped {len(log)} input(s)", file=sys.stderr)
        return error(e)
    except OSError as e:
        return error(f"cannot write results to {args.output_dir!r}: {e.strerror or e}")
    except KeyboardInterrupt:
        return error("interrupted", 130)
    print(_summary_line(metrics, written, len(log)), flush=True)
    return EXIT_PARTIAL if len(log) else EXIT_OK
