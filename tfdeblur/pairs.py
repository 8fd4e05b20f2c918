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

import os
import sys
import zlib
from dataclasses import dataclass, replace

import numpy as np

from tfdeblur.errors import one_line, output_folder_problem
from tfdeblur.files import atomic_path
from tfdeblur.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, SkipLog, find_images, read_rgb, write_image

__all__ = ["PairsError", "PairsSummary", "write_pairs", "pair_stems", "load_kernel_bank"]

CHUNK = 256  # kernels are drawn in chunks keyed by (seed, chunk), as blur.indexed_bank does


class PairsError(Exception):
    """Nothing can be (or was) written; str() is one line."""


@dataclass
class PairsSummary:
    """What :func:`write_pairs` did."""

    written: int  # pairs written (listed in kernels.npz)
    skipped: int  # inputs skipped (each logged)
    stale: int  # images in the output folders from an earlier run that kernels.npz does not list


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


def _output_dirs(out_dir: str, create: bool = True) -> tuple[str, str]:
    sharp_dir, blurred_dir = os.path.join(out_dir, "sharp"), os.path.join(out_dir, "blurred")
    for d in (out_dir, sharp_dir, blurred_dir):
        problem = output_folder_problem(d, create=create)
        if problem:
            raise PairsError(f"OUT_DIR: {problem}")
    return sharp_dir, blurred_dir


def load_kernel_bank(path) -> tuple[np.ndarray, dict]:
    """``(kernels [n, k, k], params)`` of a kernel bank file; :class:`PairsError` unless every
    kernel is finite, non-negative and sums to 1."""
    from tfdeblur import kernels as kb

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PairsError(f"{path!r}: no such file")
    try:
        kernels, params = kb.load_bank(path)
    except Exception as e:  # noqa: BLE001  (any failure to parse the file means it is no bank)
        raise PairsError(f"{path!r}: not a readable kernel bank ({one_line(e)})") from None
    if len(kernels) == 0:
        raise PairsError(f"{path!r}: the bank holds no kernels")
    if not np.all(np.isfinite(kernels)) or kernels.min() < 0:
        raise PairsError(f"{path!r}: kernels must be finite and non-negative")
    sums = kernels.astype(np.float64).sum(axis=(1, 2))
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
    if bad.size:
        raise PairsError(
            f"{path!r}: kernels must sum to 1 (kernel {bad[0]} sums to {sums[bad[0]]:.4g}; "
            f"{bad.size} of {len(kernels)} are off): a kernel that does not sum to 1 changes brightness"
        )
    return kernels, params


class _KernelSource:
    """Kernel ``i`` as a function of ``(seed, i)`` only."""

    def __init__(self, seed: int, preset: str, size: int, bank: np.ndarray | None):
        from tfdeblur import kernels as kb

        self.seed, self.bank, self._cache = seed, bank, {}
        if bank is None:
            params = kb.PRESETS[preset]
            if size and size != params.image_size:
                params = replace(params, for_size=size)  # same blur relative to the image
            self.params = params.validated()
        else:
            self.params = None

    def chunk(self, c: int):
        if c not in self._cache:
            from tfdeblur import kernels as kb

            self._cache.clear()
            if self.bank is None:
                self._cache[c] = (kb.kernel_bank(CHUNK, seed=[self.seed, c], params=self.params), None)
            else:
                j = np.random.default_rng([self.seed, c]).integers(0, len(self.bank), size=CHUNK)
                self._cache[c] = (self.bank[j], j)
        return self._cache[c]

    def __call__(self, i: int) -> tuple[np.ndarray, int]:
        kernels, j = self.chunk(i // CHUNK)
        return kernels[i % CHUNK], (-1 if j is None else int(j[i % CHUNK]))


def _noise_seed(seed: int, i: int) -> int:
    return zlib.crc32(f"{seed}:{i}".encode()) & 0x7FFFFFFF


@dataclass
class _Pending:
    stem: str
    path: str
    rel: str
    sharp: np.ndarray  # uint8
    kernel: np.ndarray
    index: int  # pair index: what the kernel and the noise are keyed by
    bank_index: int  # -1 without a bank


class _PairWriter:
    """Blurs batches of sharp images and writes each pair; the output folders are made by the
    first batch (a run that decodes nothing leaves nothing behind)."""

    def __init__(self, out_dir, seed, noise, log, jpeg=None):
        self.out_dir, self.seed, self.noise, self.log = out_dir, int(seed), float(noise), log
        self.jpeg = None if jpeg is None else int(jpeg)
        self.sharp_dir, self.blurred_dir = _output_dirs(out_dir, create=False)
        self.names, self.sources, self.kernels, self.bank_index = [], [], [], []

    def _blur(self, items):
        from tfdeblur import kernels as kb
        from tfdeblur.data import make_eval_pairs

        sharp = np.stack([it.sharp for it in items])
        ks = kb.pad_kernels([it.kernel for it in items])
        if self.noise > 0:  # noise keyed by (seed, pair index), independent of batching
            return np.concatenate([
                make_eval_pairs(sharp[b : b + 1], ks[b : b + 1], noise_sigma=self.noise,
                                seed=_noise_seed(self.seed, it.index), jpeg_quality=self.jpeg)
                for b, it in enumerate(items)
            ])
        return make_eval_pairs(sharp, ks, batch_size=len(items), jpeg_quality=self.jpeg)

    def write(self, pending: list):
        if not os.path.isdir(self.blurred_dir):
            _output_dirs(self.out_dir)
        groups: dict = {}
        for item in pending:
            groups.setdefault(item.sharp.shape, []).append(item)
        for items in groups.values():
            for it, blurred in zip(items, self._blur(items)):
                try:
                    write_image(os.path.join(self.sharp_dir, it.stem + ".png"), it.sharp)
                    write_image(os.path.join(self.blurred_dir, it.stem + ".png"), blurred)
                except OSError as e:
                    self.log.skip(it.path, f"cannot write output ({(e.strerror or str(e)).lower()})")
                    continue
                self.names.append(it.stem)
                self.sources.append(it.rel.replace(os.sep, "/"))
                self.kernels.append(it.kernel)
                self.bank_index.append(it.bank_index)


def _find_inputs(src_dir, out_dir, log):
    if not os.path.isdir(src_dir):
        what = "is not a folder" if os.path.exists(src_dir) else "no such folder"
        raise PairsError(f"SRC_DIR {src_dir!r}: {what}")
    out_real = os.path.realpath(out_dir)
    found = [
        (full, rel) for full, rel in find_images(src_dir, log=log)
        if not (os.path.realpath(full) + os.sep).startswith(out_real + os.sep)  # not our own outputs
    ]
    if not found:
        raise PairsError(f"no images ({'/'.join(IMAGE_EXTENSIONS)}) found under {src_dir!r}")
    return found


def _read_sharp(path, size, log):
    try:
        return read_rgb(path, size or None, max_pixels=None if size else DEFAULT_MAX_PIXELS)
    except ImageError as e:
        log.skip(path, e)
    except Exception as e:  # noqa: BLE001  (a decoder bug must not stop the run)
        log.skip(path, f"cannot decode ({type(e).__name__}: {one_line(e)})")
    return None


def _blur_all(todo, writer, source, size, limit, batch_size, log, bar) -> int:
    """Read, blur and write every input (up to ``limit`` pairs); returns how many were read."""
    pending: list = []
    kept = processed = 0
    for stem, path, rel in todo:
        if limit is not None and kept >= limit:
            break
        processed += 1
        rgb = _read_sharp(path, size, log)
        if rgb is not None:
            k, j = source(kept)
            h, w = rgb.shape[:2]
            if k.shape[0] // 2 >= min(h, w):  # read_rgb already refused sides below MIN_SIZE
                log.skip(path, f"image too small ({w}x{h}) for a {k.shape[0]}x{k.shape[0]} blur kernel")
            else:
                pending.append(_Pending(stem, path, rel, rgb, k, kept, j))
                kept += 1
                if len(pending) >= batch_size:
                    writer.write(pending)
                    pending.clear()
        if bar is not None:
            bar.update(kept if limit is not None else processed)
    if pending:
        writer.write(pending)
    if bar is not None and (kept if limit is not None else processed) < bar.target:
        bar.update(bar.target, finalize=True)  # stopped early (limit reached after skips)
    return processed


def _metadata(src_dir, seed, size, noise, preset, source, bank, bank_params, kernels_path) -> dict:
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
        meta.update(kernels_path=None if kernels_path is None else os.path.abspath(os.fspath(kernels_path)),
                    bank_size=int(len(bank)), bank_params=bank_params, kernel_source=(
                        f"kernel i = bank[bank_index[i]], bank_index drawn by numpy.random.default_rng"
                        f"([seed, i // {CHUNK}]).integers(0, bank_size, {CHUNK})[i % {CHUNK}]"))
    return meta


def _write_kernels_npz(out_dir, writer, meta, with_bank_index):
    from tfdeblur import kernels as kb

    extra = {"names": np.array(writer.names), "sources": np.array(writer.sources)}
    if with_bank_index:
        extra["bank_index"] = np.array(writer.bank_index, np.int64)
    npz = os.path.join(out_dir, "kernels.npz")
    try:
        with atomic_path(npz) as tmp, open(tmp, "wb") as f:
            kb.save_bank(f, kb.pad_kernels(writer.kernels), meta, **extra)
    except OSError as e:
        raise PairsError(f"cannot write {npz!r} ({(e.strerror or str(e)).lower()})") from None


def write_pairs(src_dir, out_dir, limit=None, seed=0, size=256, noise=0.0, kernels_path=None, preset="eval",
                batch_size: int = 32, log: SkipLog | None = None, progress: bool = True,
                bank: tuple | None = None, jpeg: int | None = None) -> PairsSummary:
    """Write ``OUT_DIR/{sharp,blurred}/<stem>.png`` and ``OUT_DIR/kernels.npz``.

    ``limit``: at most that many pairs (positive); ``seed`` >= 0; ``size``: 0 or >= 16; ``noise``
    in [0, 1]; ``jpeg``: JPEG quality of the blurred images (None: none); kernels from
    ``kernels_path`` (or an already loaded ``bank = (kernels, params)``) or else from ``preset``. Unreadable inputs are skipped (one ``skipped PATH: reason`` line
    each, through ``log``). Raises :class:`PairsError` when nothing can be or was written.
    """
    from tfdeblur import kernels as kb

    log = log if log is not None else SkipLog()
    src_dir, out_dir = os.fspath(src_dir), os.fspath(out_dir)
    if bank is None and kernels_path is not None:
        bank = load_kernel_bank(kernels_path)
    kernels, bank_params = bank if bank is not None else (None, {})
    if kernels is None and preset not in kb.PRESETS:
        raise PairsError(f"unknown preset {preset!r}; choose from {', '.join(sorted(kb.PRESETS))}")
    found = _find_inputs(src_dir, out_dir, log)
    writer = _PairWriter(out_dir, seed, noise, log, jpeg)  # refuses a bad OUT_DIR before any decoding

    stems = pair_stems([rel for _, rel in found])
    todo = sorted(zip(stems, (f for f, _ in found), (r for _, r in found)))
    source = _KernelSource(int(seed), preset, int(size), kernels)
    bar = None
    if progress:
        from keras.utils import Progbar

        target = len(todo) if limit is None else min(int(limit), len(todo))
        bar = Progbar(target, verbose=1 if sys.stdout.isatty() else 2, unit_name="image")
    n_skipped_before = len(log)
    processed = _blur_all(todo, writer, source, size, limit, batch_size, log, bar)
    skipped = len(log) - n_skipped_before
    if not writer.names:
        raise PairsError(f"no pairs written: none of the {processed} input images could be used "
                         f"({skipped} skipped)")
    meta = _metadata(src_dir, seed, size, noise, preset, source, kernels, bank_params, kernels_path)
    meta["jpeg_quality"] = None if jpeg is None else int(jpeg)
    _write_kernels_npz(out_dir, writer, meta, with_bank_index=kernels is not None)
    stale = _stale_outputs((writer.sharp_dir, writer.blurred_dir), set(writer.names))
    return PairsSummary(len(writer.names), skipped, stale)


def _stale_outputs(dirs, written: set) -> int:
    n = 0
    for d in dirs:
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        n += sum(1 for e in entries if e.lower().endswith(IMAGE_EXTENSIONS) and os.path.splitext(e)[0] not in written)
    return n
