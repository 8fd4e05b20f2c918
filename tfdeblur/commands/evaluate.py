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
    src.add_argument("--scenes", metavar="DIR", help="camera frames with labelled face boxes (imglab XML in DIR, "
                     "as written by scripts/make_scenes.py); the whole frame is blurred by --blur-px and faces "
                     "are scored per size")
    p.add_argument("--blur-px", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="with --scenes: camera-shake path length in frame pixels (default 10 40)")
    p.add_argument("--fast-proposals", action="store_true",
                   help="with --scenes: restore as `tfdeblur deblur --fast-proposals` does (faces found without the "
                        "2x restored look)")
    p.add_argument("--identity", choices=["dlib", "none"], default="dlib",
                   help="with --data-dir (one folder per person): face-verification measures by an independent "
                   "recognizer (default dlib; skipped with a note when it is not installed)")
    p.add_argument("--identity-pairs", type=int, default=3000, metavar="N",
                   help="at most N genuine pairs (and as many impostor pairs) for --identity (default 3000)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="with --data-dir: only the validation (or training) persons of training's person split")
    p.add_argument("--limit", type=int, default=None, help="first N images in sorted order")
    p.add_argument("--seed", type=int, default=0, help="blur seed for --data-dir / --ground-truth (default 0)")
    p.add_argument("--output-dir", default="eval_out",
                   help="where metrics.json, report.md and figures go (default eval_out/)")
    p.add_argument("--batch-size", type=int, default=16, help="images per deblurring / detection batch (default 16)")
    p.add_argument("--independent", default=None,
                   help="independent detector: blazeface, blazeface-full, blazeface-tiled, haar, or none (default: "
                   "blazeface for face crops, blazeface-tiled for frames with --ground-truth or --scenes, whose "
                   "faces are small)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="generators compute in this precision (default float32; bfloat16: see README, Performance)")
    add_common_flags(p)
    return p


def _flag_problem(args) -> str | None:
    """What is wrong with the flags (checked before anything slow), or None."""
    from tfdeblur.detectors import NAMES
    from tfdeblur.errors import output_folder_problem

    if args.blur_px is not None and not (args.scenes and 0 < args.blur_px[0] <= args.blur_px[1]):
        return "--blur-px needs --scenes and 0 < MIN <= MAX"
    if args.fast_proposals and not args.scenes:
        return "--fast-proposals needs --scenes"
    if args.identity_pairs < 1:
        return "--identity-pairs must be a positive integer"
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
    identity = _identity_measure(args)
    details = {}
    metrics = ev.evaluate_models(models, data, independent=independent, batch_size=args.batch_size,
                                 verbose=0 if args.quiet else 1, details=details,
                                 measures=[identity] if identity else [])
    metrics["precision"] = args.precision
    metrics["skipped"] = [{"path": p, "reason": r} for p, r in log.skipped]
    if identity:
        from tfdeblur.evaluation.identity_measure import identity_between_models

        metrics["identity"] = metrics["per_model"][metrics["models"][0]]["identity"]
        if len(metrics["models"]) > 1:
            metrics["identity_between_models"] = identity_between_models(identity, metrics["models"])
    written = ev.write_report(metrics, args.output_dir, details)
    if identity:
        from tfdeblur.evaluation.identity_measure import write_identity_report

        written += write_identity_report(metrics, identity, args.output_dir)
    return metrics, written


def _identity_measure(args):
    """The identity measure for ``--data-dir`` (LFW layout), or None: off, or no recognizer here."""
    if args.identity == "none" or args.data_dir is None:
        return None
    from tfdeblur.evaluation.identity_measure import IdentityMeasure
    from tfdeblur.recognizers import RecognizerUnavailable, get_recognizer

    try:
        recognizer = get_recognizer(args.identity)
    except RecognizerUnavailable as e:
        print(f"note: identity measures skipped: {e}", file=sys.stderr, flush=True)
        return None
    return IdentityMeasure(recognizer, max_genuine=args.identity_pairs, seed=args.seed, verbose=0 if args.quiet else 1)


def _evaluate_scenes(args, log) -> tuple[dict, list]:
    """Frames of ``--scenes``: blurred whole, restored whole and face by face, scored per face size."""
    from tfdeblur import evaluation as ev
    from tfdeblur.detectors import DetectorUnavailable, get
    from tfdeblur.scene_eval import evaluate_scenes
    from tfdeblur.scene_report import write_scene_report
    from tfdeblur.scenes import DEFAULT_BLUR_PX, SceneError, blur_frames, read_scenes

    blur_px = tuple(args.blur_px or DEFAULT_BLUR_PX)
    models = ev.load_models(args.model, args.precision)
    try:
        scenes = read_scenes(args.scenes, args.limit, log=log)
    except SceneError as e:
        raise ev.EvaluationError(str(e)) from None
    if len(log):
        print(f"skipped {len(log)} frame(s); evaluating {len(scenes)}", file=sys.stderr, flush=True)
    blurred = blur_frames([s.image for s in scenes], seed=args.seed, blur_px=blur_px)
    independent = None
    if args.independent.lower() != "none":
        try:
            independent = get(args.independent, batch_size=args.batch_size)
        except DetectorUnavailable as e:
            print(f"warning: independent detector unavailable: {e}", file=sys.stderr)
    details = {}
    metrics = evaluate_scenes(models, scenes, blurred, independent=independent, batch_size=min(args.batch_size, 8),
                              verbose=0 if args.quiet else 1, details=details,
                              proposal_model=False if args.fast_proposals else "fast")
    metrics["source"] = {"scenes": args.scenes, "blur_px": list(blur_px), "seed": args.seed,
                         "fast_proposals": bool(args.fast_proposals)}
    metrics["precision"] = args.precision
    metrics["skipped"] = [{"path": p, "reason": r} for p, r in log.skipped]
    return metrics, write_scene_report(metrics, args.output_dir, details)


def _summary_line(metrics, written, skipped) -> str:
    if "per_size" in metrics:
        from tfdeblur.scene_report import summary_line

        return summary_line(metrics, written, skipped)
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
        args.independent = "blazeface-tiled" if (args.ground_truth or args.scenes) else "blazeface"
    problem = _flag_problem(args)
    if problem:
        return error(problem)
    from tfdeblur import quiet
    from tfdeblur.evaluation import EvaluationError
    from tfdeblur.imageio import SkipLog

    quiet.import_tensorflow()
    log = SkipLog()
    try:
        metrics, written = (_evaluate_scenes if args.scenes else _evaluate)(args, log)
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
