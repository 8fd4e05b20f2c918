"""Model conversion used by the benchmark: SavedModel serving export and TFLite conversion.

This is the one swap point between the benchmark and the project's exporters. It uses
``tfdeblur.export`` (``export_saved_model``, ``tflite_model``: uint8 pixels in and out, the
[-1, 1] conversion, padding and rounding inside the graph, exactly what a client runs) when that
module imports, and otherwise falls back to minimal local code (float [-1, 1] in and out):
``tf.saved_model.save`` of a ``tf.Module`` with a serving signature, and
``tf.lite.TFLiteConverter.from_concrete_functions`` of the frozen function.

Every function returns what it produced *and* a short string naming the converter, which the
benchmark records per row. Callers must feed the dtype the converted model asks for
(``input_dtype`` / the interpreter's input details): uint8 for the project's exports.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import tensorflow as tf

__all__ = ["QUANT_MODES", "save_serving", "load_serving", "tflite_model", "tflite_interpreter", "smooth_images"]

QUANT_MODES = ("fp32", "fp16", "int8")
_PROJECT_QUANT = {"fp32": "none", "fp16": "float16", "int8": "int8"}  # tfdeblur.export's names
_LOCAL = "bench-local"


def _project_export():
    """``tfdeblur.export`` or None (written separately; absent in early checkouts)."""
    try:
        from tfdeblur import export
    except ImportError:
        return None
    if not all(hasattr(export, n) for n in ("export_saved_model", "tflite_model")):
        return None
    return export


def smooth_images(n, size, seed=0):
    """uint8 ``[n, size, size, 3]`` photo-like images (smooth colour fields plus noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, 8, 8, 3)).astype(np.float32)
    img = tf.image.resize(coarse, [size, size], method="bicubic").numpy()
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------- SavedModel

class _Serving(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="blurred")])
    def serve(self, blurred):
        return {"restored": self.model(blurred, training=False)}


def save_serving(model, path: str) -> str:
    """Write a SavedModel with a ``serving_default`` signature to ``path``; returns the converter."""
    export = _project_export()
    if export is not None:
        export.export_saved_model(model, path, verify=False, log=lambda *a, **k: None)
        return "tfdeblur.export.export_saved_model"
    module = _Serving(model)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return f"{_LOCAL} (tf.saved_model.save of a tf.Module)"


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


# ------------------------------------------------------------------------------------- TFLite

def _local_tflite(model, shape, quant, calib):
    from tensorflow.python.framework import convert_to_constants

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="blurred"))
    # Freeze first: on TF 2.21 + Keras 3, converting the live function (``from_concrete_functions(
    # [f], model)`` or ``from_saved_model``) keeps the weights as resource variables the
    # interpreter never initialises: a ~60 kB flatbuffer whose output is all NaN.
    frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)  # "please provide trackable_obj": not needed for a frozen graph
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    finally:
        absl_log.setLevel(level)
    if quant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "int8":
        # int8 weights and activations where TFLite has int8 kernels; float I/O, float fallback
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        floats = calib.astype(np.float32) / 127.5 - 1.0
        converter.representative_dataset = lambda: ([img[None]] for img in floats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def tflite_model(model, size: int, quant: str = "fp32", calib_samples: int = 4, seed: int = 0):
    """TFLite flatbuffer for ``model`` at a fixed ``[1, size, size, 3]`` input; returns ``(bytes, how)``.

    ``int8`` is calibrated on synthetic smooth images: right for timing, not for accuracy.
    """
    if quant not in QUANT_MODES:
        raise ValueError(f"quant must be one of {QUANT_MODES}, got {quant!r}")
    calib = smooth_images(max(1, calib_samples), size, seed) if quant == "int8" else None
    export = _project_export()
    if export is not None:
        blob = export.tflite_model(model, size, _PROJECT_QUANT[quant], representative=calib)
        return blob, f"tfdeblur.export.tflite_model (quantize={_PROJECT_QUANT[quant]})"
    return _local_tflite(model, [1, size, size, 3], quant, calib), f"{_LOCAL} (frozen from_concrete_functions)"


def tflite_interpreter(content: bytes, num_threads: int = 2):
    """An allocated ``tf.lite.Interpreter`` (XNNPACK applies to float models by default)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's LiteRT deprecation notice
        interp = tf.lite.Interpreter(model_content=content, num_threads=num_threads)
    interp.allocate_tensors()
    return interp
