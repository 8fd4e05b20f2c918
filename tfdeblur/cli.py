"""Command-line entry points: ``python train.py``, ``python evaluate.py`` and ``tfdeblur {blur,deblur,export}``.

Entry points only parse flags and call library functions. User errors become one line on stderr
and an exit code: 0 all done, 1 some inputs skipped, 2 usage error or nothing done.
"""

from __future__ import annotations

import argparse
import os
import sys

from tfdeblur.imageio import DEFAULT_MAX_MEGAPIXELS
from tfdeblur.models import PRECISIONS  # `import tfdeblur` loads models (and Keras) anyway

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2


def _fail(msg: str, code: int = EXIT_FAILED) -> int:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code


# ------------------------------------------------------------------------------------- train

class _OneLineParser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit 2, like every other user error (argparse
    would print the whole usage block first). Subparsers inherit the class."""

    def error(self, message):
        self.exit(EXIT_FAILED, f"error: {message} (see {self.prog} --help)\n")


def train_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="train.py", description="Train a deblurring GAN on face images.")
    p.add_argument("--gan", choices=["gan", "lsgan", "wgan-gp"], help="adversarial loss (default: the config's)")
    p.add_argument("--config", default=None, help="YAML config (default: configs/cpu.yaml if present)")
    p.add_argument("--data-dir", default=None, help="face images, one folder per person (default: $TFDEBLUR_DATA, then data/lfw)")
    p.add_argument("--output-dir", default=None, help="checkpoints, TensorBoard logs and generator.keras (default: runs/<gan>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="total training steps (a resumed run continues up to N)")
    g.add_argument("--epochs", type=int, default=None, help="total epochs of train.steps_per_epoch steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument("--resume", action="store_true", help="continue from the output dir's last checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default")
    p.add_argument("--mixed-precision", nargs="?", const="float16", default=None, choices=["float16", "bfloat16"],
                   help="float16 (the default when given alone): mixed_float16 with loss scaling, for GPUs; "
                   "bfloat16: mixed_bfloat16, faster on CPUs with AVX512-BF16 or AMX")
    p.add_argument("--deterministic", action="store_true", help="enable TF op determinism (slower)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value, e.g. --set train.adv_weight=0.01 (YAML value syntax)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def train_main(argv=None) -> int:
    args = train_parser().parse_args(argv)
    import yaml

    from tfdeblur.config import ConfigError, load_config, load_yaml

    config = args.config
    if config is None and os.path.isfile(os.path.join("configs", "cpu.yaml")):
        config = os.path.join("configs", "cpu.yaml")
    overrides = {
        "train.gan": args.gan, "data.data_dir": args.data_dir, "train.steps": args.steps,
        "train.epochs": args.epochs, "train.batch_size": args.batch_size,
        "train.checkpoint_every": args.checkpoint_every, "train.seed": args.seed,
    }
    for item in args.set:
        if "=" not in item:
            return _fail(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key] = load_yaml(value)
        except yaml.YAMLError:
            return _fail(f"--set {key}: cannot parse value {value!r}")
    try:
        cfg = load_config(config, overrides)
    except ConfigError as e:
        return _fail(str(e))
    if args.steps is not None and args.steps < 1:
        return _fail("--steps must be positive")
    output_dir = args.output_dir or os.path.join("runs", cfg["train"]["gan"])

    from tfdeblur.training import NonFiniteLoss, TrainingError, TrainingInterrupted, train

    try:
        summary = train(
            cfg, output_dir, resume=args.resume, strategy=args.strategy,
            mixed_precision=args.mixed_precision, deterministic=args.deterministic,
            verbose=0 if args.quiet else 1,
        )
    except TrainingInterrupted as e:
        print(f"\n{e}", file=sys.stderr)
        return 128 + int(e.signum)
    except NonFiniteLoss as e:
        return _fail(str(e), EXIT_PARTIAL)
    except (TrainingError, ConfigError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted twice; the last saved checkpoint is intact", 130)
    skipped = int(summary.get("skipped_inputs") or 0)
    print(
        f"\ndone: {summary['steps']} steps, best validation PSNR {summary['best_val_psnr']:.2f} dB; "
        f"generator: {os.path.join(output_dir, 'generator.keras')}"
        + (f"; {skipped} unreadable input(s) skipped" if skipped else ""),
        file=sys.stderr,
    )
    return EXIT_PARTIAL if skipped else EXIT_OK


# -------------------------------------------------------------------------------------- blur

def blur_command(args) -> int:
    from tfdeblur.pairs import write_pairs

    return write_pairs(
        args.src_dir, args.out_dir, limit=args.limit, seed=args.seed, size=args.size,
        noise=args.noise, kernels_path=args.kernels, preset=args.preset, progress=not args.quiet,
    )


def tfdeblur_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="tfdeblur", description="Deblur motion-blurred face photos.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("blur", help="make blurred/sharp pairs from a folder of sharp images")
    b.add_argument("src_dir")
    b.add_argument("out_dir")
    b.add_argument("--limit", type=int, default=None, help="first N images in sorted order")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--size", type=int, default=256, help="square output size (0 keeps each image's size)")
    b.add_argument("--noise", type=float, default=0.0, help="Gaussian noise sigma in [0, 1] units (default 0: none)")
    b.add_argument("--kernels", default=None, help="kernel bank .npz to draw from (default: the eval preset)")
    b.add_argument("--preset", default="eval", help="blur preset when --kernels is not given (default: eval)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar (skips and the summary still print)")
    b.set_defaults(func=blur_command)

    d = sub.add_parser("deblur", help="deblur images or folders")
    d.add_argument("inputs", nargs="+", metavar="INPUT")
    d.add_argument("-o", "--output", dest="out_dir", required=True, help="output folder")
    d.add_argument("--model", default=None, help="generator .keras, or \"fast\" for the shipped 4-block one (default: the shipped model)")
    d.add_argument("--faces", action="store_true", help="deblur only detected faces, blended back")
    d.add_argument("--tile", type=int, default=512, help="tile size for large images")
    d.add_argument("--batch-size", type=int, default=4)
    d.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="compute precision (default float32); bfloat16 is faster on CPUs with AVX512-BF16 or AMX (README: Performance)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar (skips and the summary still print)")
    d.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS,
                   help="skip larger images (default 64: bigger ones need several GB and minutes)")
    d.set_defaults(func=_lazy("tfdeblur.inference", "deblur_command"))

    e = sub.add_parser("export", help="export a generator as SavedModel or TFLite")
    e.add_argument("--model", default=None, help="generator .keras, or \"fast\" for the shipped 4-block one (default: the shipped model)")
    e.add_argument("--format", choices=["saved_model", "tflite"], required=True)
    e.add_argument("-o", "--output", dest="output", required=True)
    e.add_argument("--size", type=int, default=256, help="TFLite input size")
    e.add_argument("--quantize", choices=["none", "float16", "dynamic", "int8"], default="none")
    e.add_argument("--calibration-dir", default=None, help="sharp faces for int8 calibration")
    e.set_defaults(func=_lazy("tfdeblur.export", "export_command"))
    return p


def _lazy(module, name):
    def run(args):
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    return run


def main(argv=None) -> int:
    args = tfdeblur_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def evaluate_main(argv=None) -> int:
    from tfdeblur.evaluation import evaluate_main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
