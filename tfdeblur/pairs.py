"""``tfdeblur blur``: write blurred/sharp training or evaluation pairs from a folder of sharp images.

Output layout (what ``evaluate.py --pairs-dir`` reads)::

    OUT_DIR/sharp/<stem>.png      the sharp image, resized to size x size (size 0: kept as is)
    OUT_DIR/blurred/<stem>.png    the same image blurred (reflect borders) + optional noise
    OUT_DIR/kernels.npz           kernels [n, k, k] (one per pair, sorted stem order), names [n],
                                  sources [n] (paths relative to SRC_DIR), params (JSON)

A stem is the file name without its extension; where two inputs share one (``a/face.jpg`` and
``b/face.jpg``), those inputs use their relative path joined by ``__`` instead (``a__face``,
``b__face``), so nothing is overwritten.

Kernel ``i`` (the i-th written pair in stem order) depends only on ``(seed, i)``: it is kernel
``i`` of ``blur.indexed_bank(preset, n, seed)`` (the bank ``evaluate.py --data-dir`` blurs with),
or, with ``--kernels``, an entry of the given bank drawn by ``(seed, i)``. Blurred and sharp differ
by the blur (and the optional noise) only: no contrast stretch.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from dataclasses import replace

import numpy as np

from tfdeblur.imageio import (
    DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, MIN_SIZE, ImageError, SkipLog, find_images, one_line, output_folder_problem,
    read_rgb, write_image,
)

__all__ = ["write_pairs", "pair_stems", "EXIT_OK", "EXIT_PARTIAL", "EXIT_FAILED"]

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2
CHUNK = 256  # kernels are drawn in chunks keyed by (seed, chunk), as blur.indexed_bank does


class _UsageError(Exception):
    pass


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return EXIT_FAILED


def pair_stems(rel_paths) -> list[str]:
    """Output stems for input paths relative to SRC_DIR, unique (case-insensitively too).

    The file name without extension where that is unique; otherwise the relative path without
    extension joined by ``__``; otherwise that plus ``__<ext>``; otherwise a ``__<n>`` suffix.
    """
    rels = [r.replace(os.sep, "/") for r in rel_paths]
    base = [os.path.splitext(os.path.basename(r))[0] for r in rels]
    full = [os.path.splitext(r)[0].replace("/", "__") for r in rels]
    withext = [f + "__" + os.path.splitext(r)[1].lstrip(".").lower() for f, r in zip(full, rels)]

    def counts(names):
        c = {}
        for s in names:
            c[s.lower()] = c.get(s.lower(), 0) + 1
        return c

    cb, cf = counts(base), counts(full)
    stems = [b if cb[b.lower()] == 1 else f if cf[f.lower()] == 1 else w for b, f, w in zip(base, full, withext)]
    seen: set = set()
    out = []
    for s in stems:  # last resort, deterministic in input order: a numeric suffix
        cand, n = s, 2
        while cand.lower() in seen:
            cand, n = f"{s}__{n}", n + 1
        seen.add(cand.lower())
        out.append(cand)
    return out


def _check_out_dir(out_dir: str, create: bool = True) -> tuple[str, str]:
    sharp_dir, blurred_dir = os.path.join(out_dir, "sharp"), os.path.join(out_dir, "blurred")
    for d in (out_dir, sharp_dir, blurred_dir):
        problem = output_folder_problem(d, create=create)
        if problem:
            raise _UsageError(f"OUT_DIR: {problem}")
    return sharp_dir, blurred_dir


def _load_kernel_file(path: str) -> tuple[np.ndarray, dict]:
    from tfdeblur import blur

    if not os.path.isfile(path):
        raise _UsageError(f"--kernels {path!r}: no such file")
    try:
        kernels, params = blur.load_bank(path)
    except Exception as e:  # noqa: BLE001  (any failure to parse the file is a usage error)
        raise _UsageError(f"--kernels {path!r}: not a readable kernel bank ({one_line(e)})") from None
    if len(kernels) == 0:
        raise _UsageError(f"--kernels {path!r}: the bank holds no kernels")
    if not np.all(np.isfinite(kernels)) or kernels.min() < 0:
        raise _UsageError(f"--kernels {path!r}: kernels must be finite and non-negative")
    sums = kernels.astype(np.float64).sum(axis=(1, 2))
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
    if bad.size:
        raise _UsageError(
            f"--kernels {path!r}: kernels must sum to 1 (kernel {bad[0]} sums to {sums[bad[0]]:.4g}; "
            f"{bad.size} of {len(kernels)} are off): a kernel that does not sum to 1 changes brightness"
        )
    return kernels, params


class _KernelSource:
    """Kernel ``i`` as a function of ``(seed, i)`` only."""

    def __init__(self, seed: int, preset: str, size: int, bank: np.ndarray | None):
        from tfdeblur import blur

        self.seed, self.bank, self._cache = seed, bank, {}
        if bank is None:
            params = blur.PRESETS[preset]
            if size and size != params.image_size:
                params = replace(params, for_size=size)  # same blur relative to the image
            self.params = params.validated()
        else:
            self.params = None

    def chunk(self, c: int):
        if c not in self._cache:
            from tfdeblur import blur

            self._cache.clear()
            if self.bank is None:
                self._cache[c] = (blur.kernel_bank(CHUNK, seed=[self.seed, c], params=self.params), None)
            else:
                j = np.random.default_rng([self.seed, c]).integers(0, len(self.bank), size=CHUNK)
                self._cache[c] = (self.bank[j], j)
        return self._cache[c]

    def __call__(self, i: int) -> tuple[np.ndarray, int]:
        kernels, j = self.chunk(i // CHUNK)
        return kernels[i % CHUNK], (-1 if j is None else int(j[i % CHUNK]))


def _noise_seed(seed: int, i: int) -> int:
    return zlib.crc32(f"{seed}:{i}".encode()) & 0x7FFFFFFF


def write_pairs(src_dir, out_dir, limit=None, seed=0, size=256, noise=0.0, kernels_path=None, preset="eval",
                batch_size: int = 32, log: SkipLog | None = None, progress: bool = True) -> int:
    """Write ``OUT_DIR/{sharp,blurred}/<stem>.png`` and ``OUT_DIR/kernels.npz``; return the exit code.

    0: every input written; 1: some inputs skipped (one ``skipped PATH: reason`` line each on
    stderr, then a count); 2: usage error or nothing written (one ``error:`` line).
    """
    log = log if log is not None else SkipLog()
    try:
        src_dir, out_dir = os.fspath(src_dir), os.fspath(out_dir)
        if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
            raise _UsageError(f"--limit must be a positive integer, got {limit!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise _UsageError(f"--seed must be a non-negative integer, got {seed!r}")
        if not isinstance(size, (int, np.integer)) or (size != 0 and size < MIN_SIZE):
            raise _UsageError(f"--size must be 0 (keep each image's size) or >= {MIN_SIZE}, got {size!r}")
        if not (isinstance(noise, (int, float)) and math.isfinite(noise) and 0.0 <= noise <= 1.0):
            raise _UsageError(f"--noise must be a standard deviation in [0, 1] (pixel values in [0, 1]), got {noise!r}")
        if not os.path.isdir(src_dir):
            what = "is not a folder" if os.path.exists(src_dir) else "no such folder"
            raise _UsageError(f"SRC_DIR {src_dir!r}: {what}")
        from tfdeblur import blur

        bank, bank_params = None, {}
        if kernels_path is not None:
            bank, bank_params = _load_kernel_file(os.fspath(kernels_path))
            if size and bank.shape[1] // 2 >= size:
                raise _UsageError(f"--kernels {kernels_path!r}: its {bank.shape[1]}x{bank.shape[1]} kernels are "
                                  f"too large for --size {size}")
        elif preset not in blur.PRESETS:
            raise _UsageError(f"unknown --preset {preset!r}; choose from {', '.join(sorted(blur.PRESETS))}")

        out_real = os.path.realpath(out_dir)
        found = [
            (full, rel) for full, rel in find_images(src_dir, log=log)
            if not (os.path.realpath(full) + os.sep).startswith(out_real + os.sep)  # not our own outputs
        ]
        if not found:
            raise _UsageError(f"no images ({'/'.join(IMAGE_EXTENSIONS)}) found under {src_dir!r}")
        # refuse early, but create the folders only once an image has decoded (a run that
        # writes nothing leaves nothing behind)
        sharp_dir, blurred_dir = _check_out_dir(out_dir, create=False)
    except _UsageError as e:
        return _fail(str(e))

    from keras.utils import Progbar

    from tfdeblur.data import make_eval_pairs

    stems = pair_stems([rel for _, rel in found])
    todo = sorted(zip(stems, (f for f, _ in found), (r for _, r in found)))
    source = _KernelSource(int(seed), preset, int(size), bank)
    target = len(todo) if limit is None else min(int(limit), len(todo))
    bar = Progbar(target, verbose=1 if sys.stdout.isatty() else 2, unit_name="image") if progress else None

    names, sources, kernels, bank_index = [], [], [], []
    pending = []  # (stem, path, rel, sharp uint8, kernel, pair index, bank index or -1)
    n_failed_before = len(log)

    def flush():
        if not os.path.isdir(blurred_dir):
            _check_out_dir(out_dir)  # a _UsageError here ends the run (caught around the loop)
        groups: dict = {}
        for item in pending:
            groups.setdefault(item[3].shape, []).append(item)
        for items in groups.values():
            sharp = np.stack([it[3] for it in items])
            ks = blur.pad_kernels([it[4] for it in items])
            if noise > 0:  # noise keyed by (seed, pair index), independent of batching
                out = np.concatenate([
                    make_eval_pairs(sharp[b : b + 1], ks[b : b + 1], noise_sigma=float(noise),
                                    seed=_noise_seed(int(seed), it[5]))
                    for b, it in enumerate(items)
                ])
            else:
                out = make_eval_pairs(sharp, ks, batch_size=len(items))
            for it, blurred in zip(items, out):
                stem, path = it[0], it[1]
                try:
                    write_image(os.path.join(sharp_dir, stem + ".png"), it[3])
                    write_image(os.path.join(blurred_dir, stem + ".png"), blurred)
                except OSError as e:
                    log.skip(path, f"cannot write output ({(e.strerror or str(e)).lower()})")
                    continue
                names.append(stem)
                sources.append(it[2].replace(os.sep, "/"))
                kernels.append(it[4])
                bank_index.append(it[6])
        pending.clear()

    kept = 0
    processed = 0
    try:
        for stem, path, rel in todo:
            if limit is not None and kept >= limit:
                break
            processed += 1
            try:
                rgb = read_rgb(path, size or None, max_pixels=None if size else DEFAULT_MAX_PIXELS)
            except ImageError as e:
                log.skip(path, e)
            except Exception as e:  # noqa: BLE001  (a decoder bug must not stop the run)
                log.skip(path, f"cannot decode ({type(e).__name__}: {one_line(e)})")
            else:
                k, j = source(kept)
                h, w = rgb.shape[:2]
                if k.shape[0] // 2 >= min(h, w):  # read_rgb already refused sides below MIN_SIZE
                    log.skip(path, f"image too small ({w}x{h}) for a {k.shape[0]}x{k.shape[0]} blur kernel")
                else:
                    pending.append((stem, path, rel, rgb, k, kept, j))
                    kept += 1
                    if len(pending) >= batch_size:
                        flush()
            if bar is not None:
                bar.update(kept if limit is not None else processed)
        if pending:
            flush()
    except _UsageError as e:  # the output folders could not be created after all
        return _fail(str(e))
    if bar is not None and (kept if limit is not None else processed) < target:
        bar.update(target, finalize=True)  # stopped early (limit reached after skips)

    skipped = len(log) - n_failed_before
    if not names:
        return _fail(f"no pairs written: none of the {processed} input images could be used "
                     f"({skipped} skipped)")

    meta = {
        "source": os.path.abspath(src_dir),
        "seed": int(seed),
        "size": int(size),
        "noise_sigma": float(noise),
        "border": "reflect (cv2.BORDER_REFLECT_101)",
        "convolution": "true convolution (kernel flipped), tfdeblur.data.make_eval_pairs",
    }
    if bank is None:
        meta.update(preset=preset, kernel_params=source.params.to_dict(), kernel_source=(
            f"kernel i = kernel i % {CHUNK} of blur.kernel_bank({CHUNK}, seed=[seed, i // {CHUNK}], "
            "params=kernel_params), i.e. blur.indexed_bank(preset, n, seed) when size is the preset's image_size"))
    else:
        meta.update(kernels_path=os.path.abspath(os.fspath(kernels_path)), bank_size=int(len(bank)),
                    bank_params=bank_params, kernel_source=(
                        f"kernel i = bank[bank_index[i]], bank_index drawn by numpy.random.default_rng"
                        f"([seed, i // {CHUNK}]).integers(0, bank_size, {CHUNK})[i % {CHUNK}]"))
    extra = {"names": np.array(names), "sources": np.array(sources)}
    if bank is not None:
        extra["bank_index"] = np.array(bank_index, np.int64)
    npz = os.path.join(out_dir, "kernels.npz")
    tmp = f"{npz}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            blur.save_bank(f, blur.pad_kernels(kernels), meta, **extra)
        os.replace(tmp, npz)
    except OSError as e:
        return _fail(f"cannot write {npz!r} ({(e.strerror or str(e)).lower()})")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

    stale = _stale_outputs((sharp_dir, blurred_dir), set(names))
    if stale:
        print(f"note: {out_dir} also holds {stale} image(s) from an earlier run that kernels.npz does not list",
              file=sys.stderr, flush=True)
    tail = f", {skipped} input(s) skipped" if skipped else ""
    print(f"wrote {len(names)} pairs to {out_dir}{tail}", file=sys.stderr, flush=True)
    return EXIT_PARTIAL if skipped else EXIT_OK


def _stale_outputs(dirs, written: set) -> int:
    n = 0
    for d in dirs:
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        n += sum(1 for e in entries if e.lower().endswith(IMAGE_EXTENSIONS) and os.path.splitext(e)[0] not in written)
    return n
