"""``tfdeblur blur SRC_DIR OUT_DIR``: blurred/sharp pairs from a folder of sharp images
(the logic is :func:`tfdeblur.pairs.write_pairs`)."""

from __future__ import annotations

import math
import sys

from tfdeblur.commands import EXIT_OK, EXIT_PARTIAL, add_common_flags, error, start

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    b = sub.add_parser("blur", help="make blurred/sharp pairs from a folder of sharp images")
    b.add_argument("src_dir")
    b.add_argument("out_dir")
    b.add_argument("--limit", type=int, default=None, help="first N images in sorted order")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--size", type=int, default=256, help="square output size (0 keeps each image's size)")
    b.add_argument("--noise", type=float, default=0.0, help="Gaussian noise sigma in [0, 1] units (default 0: none)")
    b.add_argument("--jpeg", type=int, default=None, metavar="Q",
                   help="JPEG-compress the blurred images at quality Q (1-100; default: none)")
    b.add_argument("--kernels", default=None, help="kernel bank .npz to draw from (default: the eval preset)")
    b.add_argument("--preset", default="eval", help="blur preset when --kernels is not given (default: eval)")
    add_common_flags(b, quiet_help="no progress bar (skips and the summary still print)")
    b.set_defaults(func=run)


class _FlagError(Exception):
    pass


def _check_flags(args):
    """Flag problems, found before any image is read; returns the loaded ``--kernels`` bank or None."""
    from tfdeblur.imageio import MIN_SIZE
    from tfdeblur.kernels import PRESETS
    from tfdeblur.pairs import PairsError, load_kernel_bank

    if args.limit is not None and args.limit < 1:
        raise _FlagError(f"--limit must be a positive integer, got {args.limit!r}")
    if args.seed < 0:
        raise _FlagError(f"--seed must be a non-negative integer, got {args.seed!r}")
    if args.size != 0 and args.size < MIN_SIZE:
        raise _FlagError(f"--size must be 0 (keep each image's size) or >= {MIN_SIZE}, got {args.size!r}")
    if not (math.isfinite(args.noise) and 0.0 <= args.noise <= 1.0):
        raise _FlagError(f"--noise must be a standard deviation in [0, 1] (pixel values in [0, 1]), got {args.noise!r}")
    if args.jpeg is not None and not 1 <= args.jpeg <= 100:
        raise _FlagError(f"--jpeg must be a JPEG quality in 1-100, got {args.jpeg!r}")
    if args.kernels is None:
        if args.preset not in PRESETS:
            raise _FlagError(f"unknown --preset {args.preset!r}; choose from {', '.join(sorted(PRESETS))}")
        return None
    try:
        bank = load_kernel_bank(args.kernels)
    except PairsError as e:
        raise _FlagError(f"--kernels {e}") from None
    k = bank[0].shape[1]
    if args.size and k // 2 >= args.size:
        raise _FlagError(f"--kernels {args.kernels!r}: its {k}x{k} kernels are too large for --size {args.size}")
    return bank


def run(args) -> int:
    """0 every input written; 1 some skipped (one ``skipped PATH: reason`` line each, then a
    count); 2 usage error or nothing written (one ``error:`` line)."""
    start(args)
    from tfdeblur.pairs import PairsError, write_pairs

    try:
        bank = _check_flags(args)
    except _FlagError as e:
        return error(e)
    from tfdeblur import quiet

    quiet.import_tensorflow()
    try:
        summary = write_pairs(args.src_dir, args.out_dir, limit=args.limit, seed=args.seed, size=args.size,
                              noise=args.noise, kernels_path=args.kernels, preset=args.preset,
                              progress=not args.quiet, bank=bank, jpeg=args.jpeg)
    except PairsError as e:
        return error(e)
    if summary.stale:
        print(f"note: {args.out_dir} also holds {summary.stale} image(s) from an earlier run that kernels.npz "
              "does not list", file=sys.stderr, flush=True)
    tail = f", {summary.skipped} input(s) skipped" if summary.skipped else ""
    print(f"wrote {summary.written} pairs to {args.out_dir}{tail}", file=sys.stderr, flush=True)
    return EXIT_PARTIAL if summary.skipped else EXIT_OK
