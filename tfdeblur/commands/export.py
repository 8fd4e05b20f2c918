"""``tfdeblur export``: a generator as SavedModel, TFLite or ONNX (the logic is
:mod:`tfdeblur.export` and :mod:`tfdeblur.onnx_export`)."""

from __future__ import annotations

from tfdeblur.commands import EXIT_OK, EXIT_PARTIAL, add_common_flags, error, start
from tfdeblur.options import QUANTIZE_MODES

__all__ = ["add_parser", "run"]

FORMATS = ("saved_model", "tflite", "onnx")


def add_parser(sub) -> None:
    e = sub.add_parser("export", help="export a generator as SavedModel, TFLite or ONNX")
    e.add_argument("--model", default=None, help="generator .keras, or \"fast\" for the shipped 4-block one (default: the shipped model)")
    e.add_argument("--format", choices=FORMATS, required=True)
    e.add_argument("-o", "--output", dest="output", required=True)
    e.add_argument("--size", type=int, default=256, help="TFLite input size")
    e.add_argument("--quantize", choices=QUANTIZE_MODES, default="none")
    e.add_argument("--calibration-dir", default=None, help="sharp faces for int8 calibration")
    add_common_flags(e, quiet_help="(no progress bar to hide; accepted like on every command)")
    e.set_defaults(func=run)


def _flag_problem(args) -> str | None:
    import os

    if args.format == "saved_model" and (args.quantize != "none" or args.calibration_dir):
        return "--quantize and --calibration-dir apply to --format tflite only"
    if args.format == "onnx" and args.quantize != "none":  # --calibration-dir: faces for its parity check
        return "--quantize applies to --format tflite only"
    if args.format == "tflite" and args.size < 1:
        return "--size must be positive"
    if args.calibration_dir is not None and not os.path.isdir(args.calibration_dir):
        return f"calibration folder {args.calibration_dir} not found"
    if args.format == "tflite" and args.quantize == "int8" and args.calibration_dir is None:
        return "--quantize int8 needs --calibration-dir (a folder of sharp face images)"
    return None


def _export(args, model, skipped) -> dict:
    from tfdeblur import export

    if args.format == "saved_model":
        return export.export_saved_model(model, args.output)
    if args.format == "onnx":
        from tfdeblur.onnx_export import export_onnx

        return export_onnx(model, args.output, faces_dir=args.calibration_dir, skip_log=skipped)
    return export.export_tflite(model, args.output, size=args.size, quantize=args.quantize,
                                calibration_dir=args.calibration_dir, skip_log=skipped)


def run(args) -> int:
    """0 written and verified, 1 written but a parity target missed or some calibration images
    skipped (one ``skipped PATH: reason`` line each), 2 error."""
    start(args)
    problem = _flag_problem(args)
    if problem:
        return error(problem)
    from tfdeblur import quiet
    from tfdeblur.errors import one_line
    from tfdeblur.imageio import SkipLog
    from tfdeblur.export import ExportError, _check_output
    from tfdeblur.inference import ModelLoadError, check_model_file

    try:
        check_model_file(args.model)
        _check_output(args.output, is_dir=args.format == "saved_model")
        if args.format == "onnx":
            from tfdeblur.onnx_export import require_onnx

            require_onnx(import_now=False)  # missing tf2onnx/onnxruntime: one line, before TensorFlow loads
    except (ExportError, ModelLoadError) as e:
        return error(e)
    from tfdeblur.inference import load_model

    quiet.import_tensorflow()
    skipped = SkipLog()
    try:
        report = _export(args, load_model(args.model), skipped)
    except (ExportError, ModelLoadError, ValueError) as e:
        return error(e)
    except OSError as e:
        return error(f"cannot write {args.output}: {one_line(e)}")
    tail = f"; {len(skipped)} unreadable calibration image(s) skipped" if len(skipped) else ""
    print(f"wrote {report['path']}{tail}", flush=True)
    return EXIT_OK if report.get("ok", True) and not len(skipped) else EXIT_PARTIAL
