"""``tfdeblur deblur INPUT... -o OUT_DIR``: deblur images and folders (the logic is
:func:`tfdeblur.inference.deblur`, :func:`tfdeblur.faces.deblur_frame` for frames larger than a
face crop, and :func:`tfdeblur.faces.deblur_faces` with ``--faces``)."""

from __future__ import annotations

import math
import os
import sys

from tfdeblur.commands import EXIT_OK, EXIT_PARTIAL, add_common_flags, error, start
from tfdeblur.config import PRECISIONS
from tfdeblur.errors import one_line, output_folder_problem
from tfdeblur.options import DEFAULT_MAX_MEGAPIXELS

__all__ = ["add_parser", "run"]

_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")


def add_parser(sub) -> None:
    d = sub.add_parser("deblur", help="deblur images or folders")
    d.add_argument("inputs", nargs="+", metavar="INPUT")
    d.add_argument("-o", "--output", dest="out_dir", required=True, help="output folder")
    d.add_argument("--model", default=None, help="generator .keras, or \"fast\" for the shipped 4-block one (default: the shipped model)")
    d.add_argument("--faces", action="store_true", help="deblur only detected faces, blended back")
    d.add_argument("--no-face-guard", action="store_true",
                   help="frames larger than 256 px: restore the whole frame only (by default the faces MTCNN and tiled "
                        "BlazeFace find in the frame and in its restorations are restored again at the model's scale, "
                        "so none is lost)")
    d.add_argument("--fast-proposals", action="store_true",
                   help="find faces without the 2x restored look (tiled BlazeFace on the frame; with the face guard "
                        "also BlazeFace and MTCNN on its whole-frame restoration): several times faster")
    d.add_argument("--tile", type=int, default=512, help="tile size for large images")
    d.add_argument("--batch-size", type=int, default=4)
    d.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="compute precision (default float32); bfloat16 is faster on CPUs with AVX512-BF16 or AMX (README: Performance)")
    add_common_flags(d, quiet_help="no progress bar (skips and the summary still print)")
    d.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS,
                   help="skip larger images (default 64: bigger ones need several GB and minutes)")
    d.set_defaults(func=run)


def _flag_problem(args) -> str | None:
    from tfdeblur.inference import ModelLoadError, check_model_file

    if args.batch_size < 1:
        return "--batch-size must be at least 1"
    if args.tile < 0:
        return "--tile must be 0 (no tiling) or a positive size"
    if not (args.max_megapixels > 0 and math.isfinite(args.max_megapixels)):
        return "--max-megapixels must be a positive number"
    try:
        check_model_file(args.model)
    except ModelLoadError as e:
        return str(e)
    # refuse early; the folder itself is made by the first image written (write_image), so a
    # run that writes nothing leaves nothing behind
    msg = output_folder_problem(args.out_dir, create=False)
    return f"output folder: {msg}" if msg else None


def _jobs(inputs, out_dir, log) -> list[tuple[str, str]]:
    """``[(input, output path)]``: each output keeps its input's path relative to its folder
    argument (files: just the name); an output that would overwrite an input or another output is skipped."""
    from tfdeblur.imageio import find_images

    seen, jobs = {}, []
    for path, rel in find_images(inputs, log=log):
        dest = os.path.join(out_dir, rel)
        key = os.path.normcase(os.path.realpath(dest))
        if key == os.path.normcase(os.path.realpath(path)):
            log.skip(path, "output would overwrite the input (choose another output folder)")
        elif key in seen:
            log.skip(path, f"same output path as {seen[key]}")
        else:
            seen[key] = path
            jobs.append((path, dest))
    return jobs


def _source_is_gray(path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode in _GRAY_MODES
    except (OSError, ValueError):  # read_image decoded it already; no mode is no gray
        return False


def _write(dest, rgb, alpha, gray):
    from tfdeblur.imageio import write_image
    from tfdeblur.inference import luma

    ext = os.path.splitext(dest)[1].lower()
    if ext in (".jpg", ".jpeg", ".bmp"):
        alpha = None  # no alpha channel in these formats (an RGBA input is only kept as PNG/WebP)
    if gray and ext in (".png", ".jpg", ".jpeg", ".bmp"):
        write_image(dest, luma(rgb), alpha)
    else:
        write_image(dest, rgb, alpha)


class _Deblurrer:
    """Deblurs the jobs one by one, batching same-size images that fit one tile; one progress
    bar step per input, a skip line for each that fails."""

    def __init__(self, model, tile, batch_size, detector, log, n_jobs, quiet, face_guard=True, fast_proposals=False):
        import keras

        self.model, self.tile, self.batch_size, self.detector, self.log = model, tile, batch_size, detector, log
        self.face_guard = face_guard
        self.proposal_model = False if fast_proposals else "fast"  # faces.deblur_faces' 2x look, or none
        self.faces_only = detector is not None
        self.bar = keras.utils.Progbar(n_jobs, unit_name="image", verbose=0 if quiet else 1)
        self.done = self.seen = self.no_face = 0
        self.pending = []  # (path, dest, rgb, alpha, gray) waiting for a batch

    def _advance(self, path=None, reason=None):
        if reason is not None:
            if getattr(self.bar, "_dynamic_display", False) and self.seen:
                print(file=sys.stdout, flush=True)  # end the progress line before the skip line
            self.log.skip(path, reason)
        self.seen += 1
        self.bar.update(self.seen)

    def _finish(self, entry, out):
        path, dest, _, alpha, gray = entry
        try:
            _write(dest, out, alpha, gray)
        except OSError as e:
            return self._advance(path, f"cannot write {dest}: {one_line(e)}")
        self.done += 1
        self._advance()

    def flush(self):
        import numpy as np

        from tfdeblur.inference import deblur

        entries, self.pending = self.pending, []
        if not entries:
            return
        try:
            outs = deblur(self.model, np.stack([e[2] for e in entries]), tile=self.tile, batch_size=self.batch_size)
        except Exception as e:  # noqa: BLE001  e.g. out of memory: one line per input, keep going
            for entry in entries:
                self._advance(entry[0], f"deblurring failed: {one_line(e)}")
            return
        for entry, out in zip(entries, outs):
            self._finish(entry, out)

    def _faces_only(self, entry):
        from tfdeblur.faces import deblur_faces

        try:
            out, regions = deblur_faces(self.model, entry[2], detector=self.detector, tile=self.tile,
                                        batch_size=self.batch_size, proposal_model=self.proposal_model)
        except Exception as e:  # noqa: BLE001  one line for this input, keep going
            return self._advance(entry[0], f"deblurring failed: {one_line(e)}")
        self.no_face += not regions
        self._finish(entry, out)

    def _frame(self, entry):
        from tfdeblur.faces import deblur_frame, proposal_detector

        try:
            if self.detector is None:  # started only when a frame comes
                self.detector = proposal_detector(fast_mode=self.proposal_model is False)
            out, _ = deblur_frame(self.model, entry[2], detector=self.detector, tile=self.tile,
                                  batch_size=self.batch_size, proposal_model=self.proposal_model)
        except Exception as e:  # noqa: BLE001  one line for this input, keep going
            return self._advance(entry[0], f"deblurring failed: {one_line(e)}")
        self._finish(entry, out)

    def add(self, path, dest, max_pixels):
        from tfdeblur.imageio import ImageError, ImageTooLarge, read_image

        try:
            rgb, alpha = read_image(path, max_pixels=max_pixels)
        except ImageTooLarge as e:
            return self._advance(path, f"{e}; downscale it or raise --max-megapixels")
        except ImageError as e:
            return self._advance(path, e)
        entry = (path, dest, rgb, alpha, alpha is None and _source_is_gray(path))
        if self.faces_only:
            return self._faces_only(entry)
        from tfdeblur.faces import WORK_SIZE

        if self.face_guard and max(rgb.shape[:2]) > WORK_SIZE:  # a frame, not a face crop
            return self._frame(entry)
        if self.pending and (self.pending[0][2].shape != rgb.shape or len(self.pending) >= self.batch_size):
            self.flush()
        self.pending.append(entry)
        if max(rgb.shape[:2]) > (self.tile or (1 << 62)):  # tiled: on its own
            self.flush()


def _load(args):
    """``(model, tile, MTCNN detector or None)``, or raises ValueError / ModelLoadError / RuntimeError."""
    from tfdeblur import quiet
    from tfdeblur.inference import check_tile, load_model

    quiet.import_tensorflow()
    model = load_model(args.model, args.precision)
    tile = check_tile(args.tile, model)
    detector = None
    if args.faces:
        try:
            from tfdeblur.faces import proposal_detector

            detector = proposal_detector(fast_mode=args.fast_proposals)  # relaxed thresholds: blurred faces score low
        except Exception as e:  # noqa: BLE001  any failure to start it is one line
            raise RuntimeError(f"cannot start the MTCNN face detector: {one_line(e)}") from None
    return model, tile, detector


def run(args) -> int:
    """0 all done, 1 some inputs skipped, 2 usage error or nothing done."""
    start(args)
    from tfdeblur.imageio import SkipLog
    from tfdeblur.inference import ModelLoadError

    problem = _flag_problem(args)
    if problem:
        return error(problem)
    log = SkipLog()
    jobs = _jobs(args.inputs, args.out_dir, log)
    if not jobs:
        return error("no images to deblur (inputs: .jpg, .jpeg, .png, .webp, .bmp files or folders)")
    try:
        model, tile, detector = _load(args)
    except (ModelLoadError, ValueError, RuntimeError) as e:
        return error(e)

    work = _Deblurrer(model, tile, args.batch_size, detector, log, len(jobs), args.quiet,
                      face_guard=not args.no_face_guard, fast_proposals=args.fast_proposals)
    max_pixels = int(args.max_megapixels * 1e6)
    for path, dest in jobs:
        work.add(path, dest, max_pixels)
    work.flush()

    if work.done == 0:  # nothing done is an error, said in one line like every other CLI's
        return error(f"no images deblurred: none of the {len(jobs)} input image(s) could be used "
                     f"({len(log)} skipped)")
    note = f" ({work.no_face} without a detected face, left unchanged)" if args.faces and work.no_face else ""
    print(f"deblurred {work.done} image{'s' * (work.done != 1)} into {args.out_dir}{note}; skipped {len(log)}",
          file=sys.stderr, flush=True)
    return EXIT_PARTIAL if len(log) else EXIT_OK
