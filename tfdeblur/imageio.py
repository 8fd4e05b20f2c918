"""Robust image discovery and decoding shared by training, evaluation and the CLIs.

Every reader either returns a correct RGB uint8 image (plus alpha when there is one) or raises
:class:`ImageError` whose message is one line naming the reason. Callers turn that into one
warning line per skipped file and a summary count.
"""

from __future__ import annotations

import os
import stat
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFile, ImageOps

from tfdeblur.errors import one_line, output_folder_problem  # noqa: F401  (also imported from here)
from tfdeblur.files import atomic_path
from tfdeblur.options import DEFAULT_MAX_MEGAPIXELS

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageError",
    "ImageTooLarge",
    "MIN_SIZE",
    "SkipLog",
    "find_images",
    "read_image",
    "read_rgb",
    "write_image",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MAX_PIXELS = 16_000 * 16_000  # bigger than any camera; beyond it we refuse rather than swap
MIN_SIZE = 16  # read_rgb refuses images with a smaller side: upscaled, they are no face data
DEFAULT_MAX_PIXELS = int(DEFAULT_MAX_MEGAPIXELS * 1e6)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is an error, not a grey half-image


class ImageError(Exception):
    """An input that cannot be used; str() is a one-line reason."""


class ImageTooLarge(ImageError):
    """The image has more pixels than the caller's ``max_pixels`` (found from the header alone)."""


@dataclass
class SkipLog:
    """Collects skipped inputs: one stderr line each, and a summary count."""

    stream: object = None
    skipped: list = field(default_factory=list)

    def skip(self, path, reason):
        self.skipped.append((str(path), str(reason)))
        print(f"skipped {path}: {reason}", file=self.stream or sys.stderr, flush=True)

    def __len__(self):
        return len(self.skipped)


def find_images(inputs, log: SkipLog | None = None, extensions=IMAGE_EXTENSIONS):
    """Expand files and folders (recursively) into ``[(path, relative_path)]``, sorted.

    Folders are walked without following symlinked folders (no loops); files with an image
    extension are returned, missing paths are logged as skipped.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = []
            for root, dirs, files in os.walk(item, followlinks=False, onerror=lambda e: log and log.skip(e.filename, one_line(e))):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(extensions):
                        full = os.path.join(root, name)
                        found.append((full, os.path.relpath(full, item)))
            out.extend(sorted(found, key=lambda p: p[1]))
        elif os.path.lexists(item):
            out.append((item, os.path.basename(item)))
        elif log is not None:
            log.skip(item, "no such file or directory")
        else:
            raise ImageError(f"{item}: no such file or directory")
    return out


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(np.round(arr.astype(np.float64) * (255.0 / hi)), 0, 255).astype(np.uint8)
    arr = arr.astype(np.float64)
    if arr.max(initial=0) <= 1.0:
        arr = arr * 255.0
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


def read_image(path, draft_size: int | None = None, max_pixels: int | None = None):
    """Decode ``path`` to ``(rgb uint8 [H, W, 3], alpha uint8 [H, W] or None)``.

    EXIF orientation is applied; grayscale, palette, CMYK, 16-bit and alpha images are converted.
    ``draft_size`` lets a large image decode at reduced scale (JPEG draft mode, then an integer box
    reduction) when only a ``draft_size`` image is needed; the result keeps its shorter side at
    least ``draft_size``. ``max_pixels`` refuses bigger images (:class:`ImageTooLarge`) from the
    header, before any pixel is decoded.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)  # follows symlinks: a loop or a dangling link fails here
        if stat.S_ISDIR(st.st_mode):
            raise ImageError("is a directory")
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block open() forever
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
            raise ImageError(f"not a regular file ({kind})")
        if st.st_size == 0:
            raise ImageError("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if max_pixels is not None and w * h > max_pixels:
                    raise ImageTooLarge(f"image too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; "
                                        f"the limit is {max_pixels / 1e6:g})")
                if draft_size and im.format == "JPEG":
                    im.draft("RGB", (draft_size, draft_size))
                im.load()
                if draft_size and im.mode in ("RGB", "RGBA", "L", "LA"):
                    factor = min(im.size) // draft_size
                    if factor >= 2:  # no full-size copies of a huge image: box-reduce it first
                        im = im.reduce(factor)
                ImageOps.exif_transpose(im, in_place=True)
                alpha = None
                mode = im.mode
                if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    raw = np.asarray(im)
                    if mode.startswith("I;16"):  # full 16-bit range, even for a dark image
                        arr = np.round(raw.astype(np.float64) / 257.0).astype(np.uint8)
                    else:
                        arr = _to_uint8(raw)
                    rgb = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
                    return np.ascontiguousarray(rgb), None
                if mode == "P":
                    im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
                    mode = im.mode
                if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                    rgba = np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
                    alpha = rgba[..., 3].copy()
                    rgb = rgba[..., :3]
                else:
                    rgb = np.asarray(im if mode == "RGB" else im.convert("RGB"))
                return np.ascontiguousarray(_to_uint8(rgb)), alpha
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"image larger than {MAX_PIXELS} pixels") from None
    except Image.DecompressionBombWarning:
        raise ImageError(f"image larger than {MAX_PIXELS} pixels") from None
    except Image.UnidentifiedImageError:
        raise ImageError("not a readable image (unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        text = str(e).lower()
        if "truncated" in text:
            raise ImageError("truncated or corrupt image data") from None
        raise ImageError(one_line(e)) from None
    except MemoryError:
        raise ImageError("not enough memory to decode") from None


def read_rgb(path, size: int | None = None, min_size: int = MIN_SIZE, max_pixels: int | None = None):
    """RGB uint8 image, optionally resized to ``size`` x ``size`` (area / bicubic).

    Images whose shorter side (before resizing) is below ``min_size`` raise :class:`ImageError`:
    a 1x1 image stretched to 256x256 is not a face. ``max_pixels``: see :func:`read_image`.
    """
    rgb, _ = read_image(path, draft_size=size, max_pixels=max_pixels)
    if min(rgb.shape[:2]) < min_size:
        raise ImageError(f"image too small ({rgb.shape[1]}x{rgb.shape[0]}; at least {min_size}x{min_size})")
    if size is not None and rgb.shape[:2] != (size, size):
        import cv2

        interp = cv2.INTER_AREA if min(rgb.shape[:2]) > size else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (size, size), interpolation=interp)
    return rgb


def write_image(path, rgb: np.ndarray, alpha: np.ndarray | None = None, quality: int = 95):
    """Write atomically (temp file then rename), by the extension of ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    arr = np.dstack([rgb, alpha]) if alpha is not None else rgb
    im = Image.fromarray(arr)
    ext = os.path.splitext(path)[1].lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}.get(ext, "PNG")
    if fmt in ("JPEG", "BMP") and im.mode == "RGBA":
        im = im.convert("RGB")
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(path) as tmp:
        im.save(tmp, format=fmt, **kwargs)
