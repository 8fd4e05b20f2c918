"""Inference: load a generator, deblur uint8 images of any size (faces only: :mod:`tfdeblur.faces`).

Images larger than the tile size are processed in overlapping tiles with whole-image
normalisation statistics (:mod:`tfdeblur.tiling`). The ``tfdeblur deblur`` command is
:mod:`tfdeblur.commands.deblur`.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from tfdeblur.errors import one_line
from tfdeblur.tiling import deblur_tiled, default_overlap, round_up, tile_starts  # noqa: F401  tile_starts: public here too

__all__ = [
    "SHIPPED_MODEL",
    "SHIPPED_MODELS",
    "ModelLoadError",
    "ModelNotFoundError",
    "check_model_file",
    "load_model",
    "model_multiple",
    "min_input_size",
    "check_tile",
    "deblur",
    "luma",
    "tile_starts",
]

SHIPPED_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "generator.keras")
# Shipped generators by name (``--model fast``): the default one (ngf 40, 3.88 GMAC per 256² image),
# and a 4-block ngf-24 one (1.15 GMAC) for phones; MODEL_CARD.md measures the trade-off.
SHIPPED_MODELS = {
    "default": SHIPPED_MODEL,
    "fast": os.path.join(os.path.dirname(SHIPPED_MODEL), "generator_fast.keras"),
}
DEFAULT_TILE = 512
DEFAULT_CACHE_BYTES = 1 << 30  # activations kept for paused tiles before switching to recompute


class ModelLoadError(Exception):
    """The generator cannot be loaded; str() is a one-line message."""


class ModelNotFoundError(ModelLoadError):
    """The model file (or the shipped model) does not exist."""


# ------------------------------------------------------------------------------ loading


def check_model_file(path=None) -> str:
    """Cheap checks (no TensorFlow): the file exists and looks like a Keras model. Returns the path.

    ``None`` is the shipped default generator; a name of ``SHIPPED_MODELS`` ("default", "fast")
    that is not also an existing path is that shipped generator.
    """
    if path is None:
        path = "default"
    if isinstance(path, str) and path in SHIPPED_MODELS and not os.path.lexists(path):
        shipped = SHIPPED_MODELS[path]
        if not os.path.isfile(shipped):
            raise ModelNotFoundError(
                f"the shipped model is not installed ({shipped} is missing); pass --model PATH "
                "to a generator .keras file (train.py writes one)"
            )
        path = shipped
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise ModelNotFoundError(f"model file {path} not found")
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ModelLoadError(f"{path} is a SavedModel (for serving); pass the generator .keras file")
        raise ModelLoadError(f"{path} is a directory; pass a generator .keras file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {one_line(e)}") from None
    if head.startswith(b"\x89HDF"):
        return path  # legacy .h5: let Keras try it
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path} is not a Keras model file (a .keras file is a zip archive)")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelLoadError(f"{path} is not a readable Keras model file ({one_line(e)})") from None
    if "config.json" not in names:
        raise ModelLoadError(f"{path} is a zip file but not a Keras model (no config.json inside)")
    return path


def load_model(path=None, precision: str = "float32"):
    """Load a generator (``.keras``); ``None`` loads the shipped one (``tfdeblur/pretrained/generator.keras``),
    ``"fast"`` the shipped 4-block one (``generator_fast.keras``). It computes in ``precision``
    whatever policy it was saved with (:func:`tfdeblur.models.with_precision`): float32 by default,
    also for a generator trained under a mixed policy; ``"bfloat16"`` is faster on CPUs with
    AVX512-BF16 or AMX.

    Raises :class:`ModelNotFoundError` when the file is missing and :class:`ModelLoadError` when it
    is not a loadable image-to-image generator; both carry a one-line message.
    """
    import keras

    from tfdeblur.models import PRECISIONS, with_precision  # also registers the custom layers

    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    path = check_model_file(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for bad files; the user needs one line
        raise ModelLoadError(f"cannot load model {path}: {one_line(e)}") from None
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(f"{path} is not a generator (expected one image input and one image output)")
    shape_in, shape_out = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(shape_in) != 4 or shape_in[-1] != 3 or len(shape_out) != 4 or shape_out[-1] != 3:
        raise ModelLoadError(
            f"{path} is not a generator: input {shape_in}, output {shape_out} (expected [N, H, W, 3] both)"
        )
    try:
        return with_precision(model, precision)
    except Exception as e:  # noqa: BLE001  e.g. a layer that cannot be rebuilt from its config
        raise ModelLoadError(f"cannot run {path} in {precision}: {one_line(e)}") from None


def model_multiple(model) -> int:
    """The size multiple the generator pads its input to (1 if it has no ``pad_to_multiple`` layer)."""
    try:
        return int(model.get_layer("pad_to_multiple").multiple)
    except (ValueError, AttributeError):
        return 1


def min_input_size(model) -> int:
    """Smallest H and W the generator handles: its reflect paddings need a few pixels at the
    bottleneck. Smaller images are edge-padded up to this and cropped back."""
    return max(2 * model_multiple(model), 16)


# ------------------------------------------------------------------------------ deblur


def _to_float(images_uint8):
    return images_uint8.astype(np.float32) / 127.5 - 1.0


def _to_uint8(x):
    return np.rint(np.clip((np.asarray(x, np.float32) + 1.0) * 127.5, 0.0, 255.0)).astype(np.uint8)


def _run_model(model, x):
    import tensorflow as tf

    fn = getattr(model, "_tfdeblur_fn", None)
    if fn is None:
        # One graph for every input size (eager Keras spends ~1 ms of Python per layer: 4.6x
        # slower than the graph at 128x128 for the lean generator, measured side by side).
        fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        object.__setattr__(model, "_tfdeblur_fn", fn)  # not tracked by Keras
    return fn(tf.constant(x)).numpy().astype(np.float32)


def deblur(model, image, tile: int | None = DEFAULT_TILE, overlap: int | None = None, batch_size: int = 4,
           cache_bytes: int = DEFAULT_CACHE_BYTES):
    """Deblur uint8 images with a generator.

    ``image``: uint8 ``[H, W, 3]`` (any H, W) or a batch ``[N, H, W, 3]`` of equal size; also
    ``[H, W]`` / ``[H, W, 1]`` grayscale and ``[H, W, 4]`` RGBA (alpha passed through). Returns
    uint8 of the same shape. Images larger than ``tile`` in either side are processed in tiles of
    ``tile`` pixels overlapping by ``overlap`` (default ``tile // 8``) with whole-image
    normalisation statistics (see the module docstring); ``tile=None`` or ``0`` never tiles.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"deblur expects uint8 images (0..255), got dtype {arr.dtype}")
    if arr.ndim == 2:
        return deblur(model, arr[..., None], tile, overlap, batch_size, cache_bytes)[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        rgb = np.repeat(arr, 3, axis=-1)
        out = deblur(model, rgb, tile, overlap, batch_size, cache_bytes)
        return luma(out)[..., None]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        out = deblur(model, arr[..., :3], tile, overlap, batch_size, cache_bytes)
        return np.concatenate([out, arr[..., 3:]], axis=-1)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return deblur(model, arr[None], tile, overlap, batch_size, cache_bytes)[0]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"deblur expects [H, W, 3] or [N, H, W, 3] uint8 images, got shape {arr.shape}")
    n, h, w = arr.shape[:3]
    if n == 0 or h == 0 or w == 0:
        return arr.copy()
    batch_size = max(1, int(batch_size))

    # Tiny images: edge-pad up to the generator's minimum (its reflect paddings need room), crop back.
    lo = min_input_size(model)
    ph, pw = max(0, lo - h), max(0, lo - w)
    x = arr
    if ph or pw:
        x = np.pad(arr, [(0, 0), (0, ph), (0, pw), (0, 0)], mode="edge")
    hh, ww = x.shape[1:3]

    m = model_multiple(model)
    tile = check_tile(tile, model)
    if tile is None or (round_up(hh, m) <= tile and round_up(ww, m) <= tile):
        outs = [_run_model(model, _to_float(x[i : i + batch_size])) for i in range(0, n, batch_size)]
        y = np.concatenate(outs)
    else:
        ov = default_overlap(tile, m) if overlap is None else round_up(max(0, int(overlap)), m)
        if ov >= tile // 2 + 1:
            raise ValueError(f"overlap={overlap} is too large for tile={tile} (at most tile / 2)")
        y = np.stack([deblur_tiled(model, _to_float(x[i]), tile, ov, m, batch_size, cache_bytes,
                                   lambda b: _run_model(model, b)) for i in range(n)])
    return _to_uint8(y[:, :h, :w, :])


def luma(rgb):
    """RGB uint8 -> gray uint8 (ITU-R BT.601 weights)."""
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def check_tile(tile, model):
    """``tile`` rounded down to the generator's multiple (None: no tiling); ValueError if too small."""
    if tile is None or int(tile) == 0:
        return None
    m = model_multiple(model)
    t = int(tile) // m * m
    lo = max(min_input_size(model), 4 * m)
    if t < lo:
        raise ValueError(f"tile={tile} is too small for this generator (at least {lo}, or 0 for no tiling)")
    return t
