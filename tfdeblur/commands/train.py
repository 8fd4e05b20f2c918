"""``python train.py``: train a deblurring GAN (the logic is :func:`tfdeblur.training.train`)."""

from __future__ import annotations

import argparse
import os
import sys

from tfdeblur.commands import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, OneLineParser, add_common_flags, error, start
from tfdeblur.config import GAN_LOSSES

__all__ = ["train_parser", "train_main"]


def train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="train.py", description="Train a deblurring GAN on face images.")
    p.add_argument("--gan", choices=GAN_LOSSES, help="adversarial loss (default: the config's)")
    p.add_argument("--config", default=None, help="YAML config (default: this checkout's configs/cpu.yaml if present)")
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
    add_common_flags(p)
    return p


class _UsageError(Exception):
    pass


def _config(args) -> dict:
    """Defaults, the config file and the flags; a ConfigError or _UsageError when they do not add up."""
    import yaml

    from tfdeblur.config import default_config_path, load_config, load_yaml

    overrides = {
        "train.gan": args.gan, "data.data_dir": args.data_dir, "train.steps": args.steps,
        "train.epochs": args.epochs, "train.batch_size": args.batch_size,
        "train.checkpoint_every": args.checkpoint_every, "train.seed": args.seed,
    }
    for item in args.set:
        if "=" not in item:
            raise _UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key] = load_yaml(value)
        except yaml.YAMLError:
            raise _UsageError(f"--set {key}: cannot parse value {value!r}") from None
    cfg = load_config(args.config if args.config is not None else default_config_path(), overrides)
    if args.steps is not None and args.steps < 1:
        raise _UsageError("--steps must be positive")
    return cfg


def train_main(argv=None) -> int:
    """0 trained, 1 stopped on a non-finite loss or some inputs skipped, 2 usage error or failure,
    128 + N on signal N (the last checkpoint is saved)."""
    args = train_parser().parse_args(argv)
    start(args)
    from tfdeblur.config import ConfigError

    try:
        cfg = _config(args)
    except (ConfigError, _UsageError) as e:
        return error(e)
    output_dir = args.output_dir or os.path.join("runs", cfg["train"]["gan"])

    from tfdeblur import quiet

    quiet.import_tensorflow()
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
        return error(e, EXIT_PARTIAL)
    except (TrainingError, ConfigError) as e:
        return error(e, EXIT_FAILED)
    except KeyboardInterrupt:
        return error("interrupted twice; the last saved checkpoint is intact", 130)
    skipped = int(summary.get("skipped_inputs") or 0)
    print(
        f"\ndone: {summary['steps']} steps, best validation PSNR {summary['best_val_psnr']:.2f} dB; "
        f"generator: {os.path.join(output_dir, 'generator.keras')}"
        + (f"; {skipped} unreadable input(s) skipped" if skipped else ""),
        file=sys.stderr,
    )
    return EXIT_PARTIAL if skipped else EXIT_OK
