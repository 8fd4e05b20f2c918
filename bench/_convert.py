"""Model conversion used by the benchmark, through the project's exporters (``tfdeblur.export``).

``export_saved_model`` and ``tflite_model`` give what a client runs: uint8 pixels in and out, the
[-1, 1] conversion, padding and rounding inside the graph. Every function returns what it produced
*and* a short string naming the converter, which the benchmark records per row. Callers must feed
the dtype the converted model asks for (``input_dtype`` / the interpreter's input details).
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from tfdeblur import export

__all__ = ["QUANT_MODES", "save_serving", "load_serving", "tflite_model", "tflite_interpreter", "smooth_images"]

QUANT_MODES = ("fp32", "fp16", "int8")
_PROJECT_QUANT = {"fp32": "none", "fp16": "float16", "int8": "int8"}  # tfdeblur.export's names

def smooth_images(n, size, seed=0):
    """uint8 ``[n, size, size, 3]`` photo-like images (smooth colour fields plus noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, 8, 8, 3)).astype(np.float32)
    img = tf.image.resize(coarse, [size, size], method="bicubic").numpy()
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def save_serving(model, path: str) -> str:
    """Write a SavedModel with a ``serving_default`` signature to ``path``; returns the converter."""
    export.export_saved_model(model, path, verify=False, log=lambda *a, **k: None)
    return "tfdeblur.export.export_saved_model"


def load_serving(path: str):
    """``tf.saved_model.load`` the export; returns ``(fn, input_dtype)`` with ``fn(x) -> restored``
    through the ``serving_default`` signature."""
    loaded = tf.saved_model.load(path)
    sig = loaded.signatures["serving_default"]
    ((in_name, spec),) = list(sig.structured_input_signature[1].items())
    out_names = list(sig.structured_outputs.keys())
    out_name = "restored" if "restored" in out_names else out_names[0]

    def fn(x):
        return sig(**{in_name: x})[out_name]

    fn.loaded = loaded  # keep the object (and its variables) alive
    return fn, spec.dtype.as_numpy_dtype


def tflite_model(model, size: int, quant: str = "fp32", calib_samples: int = 4, seed: int = 0):
    """TFLite flatbuffer for ``model`` at a fixed ``[1, size, size, 3]`` input; returns ``(bytes, how)``.

    ``int8`` is calibrated on synthetic smooth images: right for timing, not for accuracy.
    """
    if quant not in QUANT_MODES:
        raise ValueError(f"quant must be one of {QUANT_MODES}, got {quant!r}")
    calib = smooth_images(max(1, calib_samples), size, seed) if quant == "int8" else None
    blob = export.tflite_model(model, size, _PROJECT_QUANT[quant], representative=calib)
    return blob, f"tfdeblur.export.tflite_model (quantize={_PROJECT_QUANT[quant]})"


def tflite_interpreter(content: bytes, num_threads: int = 2):
    """An allocated ``tf.lite.Interpreter`` (XNNPACK applies to float models by default)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's LiteRT deprecation notice
        interp = tf.lite.Interpreter(model_content=content, num_threads=num_threads)
    interp.allocate_tensors()
    return interp
