"""Export a generator to ONNX with tf2onnx, verified with onnxruntime.

The ONNX graph is the SavedModel's serving function (:func:`tfdeblur.export.serving_module`), so it
takes and returns the same tensors: ``images`` uint8 ``[N, H, W, 3]`` of any N, H and W ->
``restored`` uint8 of the same shape, with the uint8 <-> [-1, 1] conversion, the padding to the
generator's size multiple and the rounding inside the graph. tf2onnx converts the traced
``tf.function`` (``tf2onnx.convert.from_function``); no op of the generator needs a custom handler.

Every export is checked before it is written: onnxruntime runs the converted model on images of
several sizes and its uint8 output is compared with the Keras model's (:data:`PARITY_TOLERANCE`).
The file is written to a temporary sibling and renamed into place, so a failure leaves no file.
"""

from __future__ import annotations

import os

import numpy as np

from tfdeblur.errors import one_line
from tfdeblur.export import ExportError, _check_output, _psnr, _quiet_tf, _smooth_images
from tfdeblur.files import atomic_path

__all__ = [
    "DEFAULT_OPSET",
    "PARITY_SIZES",
    "PARITY_TOLERANCE",
    "OnnxExportError",
    "OnnxUnavailableError",
    "require_onnx",
    "onnx_model",
    "run_onnx",
    "parity_images",
    "verify_onnx",
    "export_onnx",
]

DEFAULT_OPSET = 17  # tf2onnx 1.17 converts up to opset 18; 17 runs on onnxruntime >= 1.13
PARITY_TOLERANCE = 1  # /255: uint8 ONNX output vs uint8 Keras output
# Square, a non-square multiple of 8 (the shipped generators' size multiple) and an odd size that
# exercises the in-graph padding and cropping.
PARITY_SIZES = ((256, 256), (200, 264), (61, 83))


_NEEDS = "--format onnx needs tf2onnx and onnxruntime (pip install 'tfdeblur[onnx]')"


class OnnxExportError(ExportError):
    """An ONNX export that cannot be done (conversion or check failed); str() is one line."""


class OnnxUnavailableError(OnnxExportError):
    """tf2onnx or onnxruntime is missing or cannot be imported on this platform."""


def require_onnx(import_now: bool = True):
    """Import and return ``(tf2onnx, onnxruntime)``, or raise :class:`OnnxUnavailableError`.

    ``import_now=False`` only checks that both are installed, without importing them (tf2onnx
    imports TensorFlow): for a command to refuse before it loads TensorFlow; returns None.
    """
    if not import_now:
        import importlib.util

        for name in ("tf2onnx", "onnxruntime"):
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
                found = False
            if not found:
                raise OnnxUnavailableError(f"{_NEEDS}: {name} is not installed")
        return None
    try:
        with _quiet_tf():
            import onnxruntime
            import tf2onnx
    except Exception as e:  # ImportError, or a protobuf/numpy clash raised while importing
        raise OnnxUnavailableError(f"{_NEEDS}: {one_line(e)}") from None
    return tf2onnx, onnxruntime


def onnx_model(model, opset: int = DEFAULT_OPSET) -> bytes:
    """Convert ``model``'s uint8 any-size serving function to a serialized ONNX ``ModelProto``."""
    import logging

    import tensorflow as tf

    from tfdeblur.export import serving_module

    tf2onnx, _ = require_onnx()
    module = serving_module(model)
    spec = [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    tf2onnx_log = logging.getLogger("tf2onnx")
    level = tf2onnx_log.level
    tf2onnx_log.setLevel(logging.ERROR)  # its INFO lines list every rewrite pass
    try:
        with _quiet_tf():
            proto, _ = tf2onnx.convert.from_function(module.serve, input_signature=spec, opset=int(opset))
    except Exception as e:  # tf2onnx raises many types (ValueError, KeyError, its own) for one cause
        raise OnnxExportError(f"tf2onnx could not convert the generator (opset {opset}): {one_line(e)}") from None
    finally:
        tf2onnx_log.setLevel(level)
    return proto.SerializeToString()


def _session(blob):
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise OnnxExportError(f"onnxruntime cannot load the converted model: {one_line(e)}") from None


def run_onnx(blob_or_path, images, session=None) -> np.ndarray:
    """Run an ONNX model from :func:`onnx_model` (bytes or a file path) on uint8 ``[N, H, W, 3]``."""
    sess = session or _session(blob_or_path)
    return sess.run(["restored"], {"images": np.asarray(images, np.uint8)})[0]


def parity_images(faces_dir=None, sizes=PARITY_SIZES, n: int = 4, seed: int = 0, log=None) -> list[np.ndarray]:
    """One uint8 ``[n, h, w, 3]`` batch per ``(h, w)`` in ``sizes`` for the parity check.

    With ``faces_dir``: its first ``n`` readable images (sorted), resized to the largest side in
    ``sizes``, blurred with the training blur (``preset_bank("train")``) and centre-cropped to each
    size, so every size shows real blur without resampling. Without it: smooth synthetic images.
    ``log``: a :class:`tfdeblur.imageio.SkipLog` collecting unreadable files.
    """
    if faces_dir is None:
        rng = np.random.default_rng(seed)
        return [_smooth_images(rng, n, h, w) for h, w in sizes]
    from tfdeblur import blur
    from tfdeblur.data import load_faces, make_eval_pairs
    from tfdeblur.imageio import SkipLog, find_images

    side = max(max(s) for s in sizes)
    skip = log if log is not None else SkipLog()
    faces, _ = load_faces([p for p, _ in find_images(faces_dir, log=skip)], size=side, log=skip, limit=n)
    if len(faces) == 0:
        raise OnnxExportError(f"no readable images in {faces_dir} for the ONNX parity check")
    blurred = make_eval_pairs(faces, blur.preset_bank("train", len(faces), seed=seed), seed=seed)
    batches = []
    for h, w in sizes:
        top, left = (side - h) // 2, (side - w) // 2
        batches.append(np.ascontiguousarray(blurred[:, top : top + h, left : left + w]))
    return batches


def verify_onnx(model, blob, batches) -> dict:
    """Compare the ONNX model (run by onnxruntime) with Keras on uint8 ``batches``.

    Returns the max and mean abs difference and PSNR (ONNX vs Keras, in uint8 steps) over all
    batches, and the sizes checked. Raises :class:`OnnxExportError` on a wrong output shape/dtype.
    """
    from tfdeblur.inference import deblur

    sess = _session(blob)
    got_all, want_all = [], []
    for batch in batches:
        got = run_onnx(None, batch, session=sess)
        if got.shape != batch.shape or got.dtype != np.uint8:
            raise OnnxExportError(f"the ONNX model returned {got.dtype} {got.shape} for uint8 {batch.shape}")
        got_all.append(got.ravel())
        want_all.append(deblur(model, batch, tile=None).ravel())
    got, want = np.concatenate(got_all), np.concatenate(want_all)
    diff = np.abs(got.astype(int) - want.astype(int))
    return {
        "max_abs_diff": int(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "psnr_vs_keras": _psnr(got, want),
        "checked": [f"{len(b)}x{b.shape[1]}x{b.shape[2]}" for b in batches],
    }


def export_onnx(model, path, opset: int = DEFAULT_OPSET, verify: bool = True, faces_dir=None, batches=None,
                log=print, skip_log=None) -> dict:
    """Convert ``model`` to ONNX, check it with onnxruntime, and write it to ``path``.

    ``batches``: uint8 ``[N, H, W, 3]`` images for the check (default :func:`parity_images` of
    ``faces_dir``; ``skip_log`` collects its unreadable files). Returns a report dict (``path``,
    ``opset``, ``size_bytes``, and with ``verify`` ``max_abs_diff``, ``mean_abs_diff``,
    ``psnr_vs_keras``, ``checked``, ``ok``: max abs difference within :data:`PARITY_TOLERANCE`).
    Raises :class:`OnnxExportError`; nothing is written unless conversion and check ran.
    """
    require_onnx()
    _check_output(path, is_dir=False)
    blob = onnx_model(model, opset)
    report = {"format": "onnx", "path": os.path.abspath(path), "opset": int(opset), "size_bytes": len(blob)}
    if verify:
        report.update(verify_onnx(model, blob, parity_images(faces_dir, log=skip_log) if batches is None else batches))
        report["ok"] = report["max_abs_diff"] <= PARITY_TOLERANCE
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(blob)
    source = "the given images" if batches is not None else (
        f"blurred faces from {faces_dir}" if faces_dir else "synthetic images")
    _log_report(report, source, log)
    return report


def _log_report(r, source, log):
    log(f"ONNX (opset {r['opset']}), images uint8 [N, H, W, 3] -> restored uint8: {r['size_bytes'] / 1e6:.2f} MB")
    if "max_abs_diff" in r:
        log(f"  onnxruntime vs Keras on {source} ({', '.join(r['checked'])}): max |diff| {r['max_abs_diff']}/255, "
            f"mean {r['mean_abs_diff']:.2g}/255, PSNR {r['psnr_vs_keras']:.2f} dB")
        log(f"  {'OK' if r['ok'] else 'WARNING: missed'} (target: max |diff| <= {PARITY_TOLERANCE}/255)")
