"""Export a generator for serving: a SavedModel with a uint8 any-size signature, and TFLite.

Both formats take and return **uint8 RGB** images (0..255): the conversion to the generator's
float [-1, 1] range, the padding and the rounding back all happen inside the exported graph, so a
client sends pixels and gets pixels.

* SavedModel, ``serving_default``: ``images`` uint8 ``[batch, H, W, 3]`` (any H, W) ->
  ``restored`` uint8, same shape. Tiny images are edge-padded to the generator's minimum, every
  image is reflect-padded to the generator's size multiple, and the output is cropped back.
* TFLite: a fixed ``[1, size, size, 3]`` uint8 input and output (``serving_default`` signature,
  same tensor names), float32 inside unless quantised: ``float16`` weights, ``dynamic`` int8
  weights with float activations, or ``int8`` weights and activations calibrated on blurred faces
  (uint8 in and out at the boundary, float only for the conversion ops there).

Every export verifies itself: the SavedModel is reloaded and compared with the Keras model; the
TFLite model is run with LiteRT's interpreter (``ai-edge-litert``) on sample images and its difference to Keras,
PSNR, size and latency are printed. Files are written to a temporary path and renamed into place,
so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings

import numpy as np

from tfdeblur.errors import one_line, output_folder_problem
from tfdeblur.files import atomic_path
from tfdeblur.inference import deblur, min_input_size, model_multiple
from tfdeblur.options import QUANTIZE_MODES

__all__ = [
    "ExportError",
    "QUANTIZE_MODES",
    "MAX_SERVE_PIXELS",
    "serving_module",
    "export_saved_model",
    "tflite_model",
    "export_tflite",
    "run_tflite",
    "verify_tflite",
    "sample_images",
]

PARITY_TOLERANCE = 2  # /255, float32 exports vs Keras


class ExportError(Exception):
    """An export that cannot be done; str() is a one-line message."""


# ------------------------------------------------------------------------------ graph


_TO_FLOAT, _TO_UINT8 = "uint8_to_float", "float_to_uint8"
# Per image, in the any-size signature: larger requests would need tens of GB untiled (tile them
# client-side, or use `tfdeblur deblur`, which tiles).
MAX_SERVE_PIXELS = 4096 * 4096


def _checked(images):
    """``images`` after run-time checks with clear errors: the loaded signature does not check rank
    or channels itself, and a malformed tensor failed deep inside the generator (Tile, MirrorPad)."""
    import tensorflow as tf

    # The shape of an unknown-rank view: the graph optimiser folds the rank of `images` to the
    # signature's 4, which would remove the rank check.
    shape = tf.shape(tf.compat.v1.placeholder_with_default(images, shape=None))

    def check(ok, what):
        return tf.debugging.Assert(ok, [f"images must {what}; got shape", shape], summarize=8)

    rank_ok = check(tf.equal(tf.size(shape), 4), "be uint8 [batch, height, width, 3]")
    with tf.control_dependencies([rank_ok]):  # index the shape only once it has 4 entries
        shape = tf.identity(shape)
    pixels = tf.cast(shape[1], tf.int64) * tf.cast(shape[2], tf.int64)
    checks = [
        check(tf.equal(shape[3], 3), "have 3 channels (RGB)"),
        check(tf.reduce_all(shape > 0), "not be empty"),
        check(pixels <= MAX_SERVE_PIXELS,
              f"have at most {MAX_SERVE_PIXELS} pixels (height x width) each; tile larger ones"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def _serve_fn(model, fixed_size: int | None = None):
    """uint8 [N, H, W, 3] -> uint8, with padding, cropping and rounding in the graph."""
    import tensorflow as tf

    m = model_multiple(model)
    lo = min_input_size(model)

    def serve(images):
        if fixed_size is None:
            images = _checked(images)
        shape = tf.shape(images)
        h, w = shape[1], shape[2]
        with tf.name_scope(_TO_FLOAT):
            x = tf.cast(images, tf.float32) / 127.5 - 1.0
        if fixed_size is None or fixed_size < lo:
            # Edge-pad tiny images (the generator's reflect paddings need a few pixels).
            ph, pw = tf.maximum(lo - h, 0), tf.maximum(lo - w, 0)
            x = tf.concat([x, tf.tile(x[:, -1:], [1, ph, 1, 1])], axis=1)
            x = tf.concat([x, tf.tile(x[:, :, -1:], [1, 1, pw, 1])], axis=2)
        if fixed_size is None or fixed_size % m:
            hh, ww = tf.shape(x)[1], tf.shape(x)[2]
            x = tf.pad(x, [[0, 0], [0, (m - hh % m) % m], [0, (m - ww % m) % m], [0, 0]], mode="REFLECT")
        y = model(x, training=False)
        y = y[:, :h, :w, :]
        with tf.name_scope(_TO_UINT8):
            y = tf.round(tf.clip_by_value((tf.cast(y, tf.float32) + 1.0) * 127.5, 0.0, 255.0))
            y = tf.cast(y, tf.uint8)
        return {"restored": y}

    return serve


def serving_module(model, fixed_size: int | None = None):
    """A ``tf.Module`` holding ``model`` with a ``serve`` tf.function: uint8 ``[N, H, W, 3]``
    (``[1, size, size, 3]`` when ``fixed_size``) -> ``{"restored": uint8 same shape}``."""
    import tensorflow as tf

    shape = [None, None, None, 3] if fixed_size is None else [1, fixed_size, fixed_size, 3]
    module = tf.Module(name="tfdeblur")
    module.model = model
    module.serve = tf.function(
        _serve_fn(model, fixed_size), input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")]
    )
    return module


# ------------------------------------------------------------------------------ files


def _tmp_sibling(path, suffix=""):
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(os.path.abspath(path))
    return os.path.join(parent, f".{base}.tmp-{os.getpid()}{suffix}")


def _check_output(path, is_dir):
    path = os.path.abspath(path)
    if os.path.exists(path) and os.path.isdir(path) != is_dir:
        kind = "a folder" if os.path.isdir(path) else "a file"
        raise ExportError(f"output {path} exists and is {kind}")
    problem = output_folder_problem(os.path.dirname(path))
    if problem:
        raise ExportError(f"cannot write the export: {problem}")


def _move_into_place(tmp, dest):
    """Rename ``tmp`` to ``dest``; an existing ``dest`` folder is swapped out and removed after."""
    if os.path.isdir(dest):
        old = _tmp_sibling(dest, ".old")
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


# ------------------------------------------------------------------------------ SavedModel


def export_saved_model(model, output_dir, verify: bool = True, log=print) -> dict:
    """Write a SavedModel with a uint8 any-size ``serving_default`` signature to ``output_dir``.

    Written to a temporary sibling folder, optionally verified (reloaded and compared with the
    Keras model on odd-sized images), then renamed into place. Returns a report dict.
    """
    import tensorflow as tf

    _check_output(output_dir, is_dir=True)
    tmp = _tmp_sibling(output_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    report = {"format": "saved_model", "path": os.path.abspath(output_dir)}
    try:
        module = serving_module(model)
        signature = module.serve.get_concrete_function()
        tf.saved_model.save(module, tmp, signatures={"serving_default": signature})
        report["size_bytes"] = _tree_size(tmp)
        if verify:
            report.update(_verify_saved_model(model, tmp))
        _move_into_place(tmp, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verify:
        log(
            f"SavedModel: {_mb(report['size_bytes'])}, serving_default uint8 [batch, H, W, 3] -> uint8; "
            f"max |SavedModel - Keras| = {report['max_abs_diff']}/255 on {report['checked']}"
        )
        if report["max_abs_diff"] > PARITY_TOLERANCE:
            report["ok"] = False
    return report


def _verify_saved_model(model, path):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["serving_default"]
    rng = np.random.default_rng(0)
    worst, sizes = 0, []
    for h, w in ((61, 83), (9, 13)):
        img = _smooth_images(rng, 2, h, w)
        got = fn(images=tf.constant(img))["restored"].numpy()
        want = deblur(model, img, tile=None)
        if got.shape != img.shape or got.dtype != np.uint8:
            raise ExportError(f"SavedModel returned {got.dtype} {got.shape} for uint8 {img.shape}")
        worst = max(worst, int(np.abs(got.astype(int) - want.astype(int)).max()))
        sizes.append(f"{h}x{w}")
    return {"max_abs_diff": worst, "checked": "2 images each of " + ", ".join(sizes), "ok": True}


def _tree_size(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _mb(n):
    return f"{n / 1e6:.2f} MB"


# ------------------------------------------------------------------------------ TFLite


def tflite_model(model, size: int = 256, quantize: str = "none", representative=None) -> bytes:
    """Convert to a TFLite flatbuffer with a uint8 ``[1, size, size, 3]`` input and output.

    ``representative``: uint8 ``[N, size, size, 3]`` blurred images, required for ``int8``.
    Keras 3 variables are frozen into constants first (``convert_variables_to_constants_v2``):
    converting the live function keeps them as resource variables that the interpreter cannot read.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    lo = min_input_size(model)
    if size < lo:
        raise ExportError(f"--size {size} is too small for this generator (at least {lo})")
    module = serving_module(model, fixed_size=int(size))
    frozen = convert_variables_to_constants_v2(module.serve.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], module)
    if quantize == "none":
        with _quiet_tf():
            return _convert(converter)
    if quantize in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        with _quiet_tf():
            return _convert(converter)
    # int8: weights and activations int8, calibrated on ``representative``. Two parts stay float
    # (selective quantisation): the uint8 <-> [-1, 1] conversions at the boundary, whose int8
    # ranges the calibrator gets wrong (0..2 at a scale of 1.0: 25 dB lost), and the instance-norm
    # layers (per-image mean of squares and rsqrt are fragile in 8 bits). The convolutions, most
    # of the compute, are int8. Measured on a partly trained lean generator, 128x128 faces: PSNR
    # vs Keras 16.9 dB plain int8, 42.1 dB with float I/O, 44.1 dB with float I/O and norms.
    if representative is None or len(representative) == 0:
        raise ExportError("--quantize int8 needs calibration images (--calibration-dir)")
    rep = np.asarray(representative, np.uint8)

    def dataset():
        for img in rep:
            yield [img[None]]

    with _quiet_tf():
        names = _tensor_names(_convert(converter))
        keep_float = [n for n in names if n.startswith((_TO_FLOAT, _TO_UINT8)) or n in ("Cast", "Round")
                      or any(f"/{layer}" in n for layer in _norm_layer_names(model))]
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], module)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float),
        )
        try:
            return debugger.get_nondebug_quantized_model()
        except Exception as e:
            raise ExportError(f"TFLite int8 conversion failed: {one_line(e)}") from None


def _convert(converter):
    try:
        return converter.convert()
    except Exception as e:
        raise ExportError(f"TFLite conversion failed: {one_line(e)}") from None


def _tensor_names(blob):
    return [d["name"] for d in _interpreter(blob, 1).get_tensor_details()]


def _norm_layer_names(model):
    import keras

    from tfdeblur.models import FusedInstanceNorm

    return [layer.name for layer in model.layers
            if isinstance(layer, (FusedInstanceNorm, keras.layers.GroupNormalization))]


class _quiet_tf:
    """Silence Python warnings and absl INFO/WARNING lines during conversion."""

    def __enter__(self):
        import logging

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")
        self._loggers = [(lg, lg.level) for lg in (logging.getLogger("absl"), logging.getLogger("tensorflow"))]
        for lg, _ in self._loggers:
            lg.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        for lg, level in self._loggers:
            lg.setLevel(level)
        self._w.__exit__(*exc)
        return False


def _interpreter(blob, num_threads=None):
    from tfdeblur.quiet import litert_interpreter

    return litert_interpreter(model_content=blob, num_threads=num_threads or os.cpu_count())


def run_tflite(blob, images, num_threads=None):
    """Run a TFLite model from :func:`tflite_model` on uint8 ``[N, S, S, 3]``; returns uint8 outputs."""
    it = _interpreter(blob, num_threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for img in np.asarray(images, np.uint8):
        it.set_tensor(inp["index"], img[None])
        it.invoke()
        results.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(results)


def _psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _median_ms(fn, repeats=10, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def verify_tflite(model, blob, blurred, sharp=None, repeats: int = 10, num_threads=None) -> dict:
    """Compare a TFLite model with the Keras model on ``blurred`` uint8 ``[N, S, S, 3]`` images.

    Returns max abs difference and PSNR (TFLite vs Keras), the flatbuffer size, median latencies
    of TFLite (``invoke``) and Keras (one image) on this CPU, and with ``sharp`` the restoration
    PSNR against the sharp images of blurred input, Keras and TFLite outputs.
    """
    import tensorflow as tf

    blurred = np.asarray(blurred, np.uint8)
    lite = run_tflite(blob, blurred, num_threads)
    keras_out = deblur(model, blurred, tile=None, batch_size=1)
    diff = np.abs(lite.astype(int) - keras_out.astype(int))
    report = {
        "size_bytes": len(blob),
        "images": int(len(blurred)),
        "max_abs_diff": int(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "psnr_vs_keras": _psnr(lite, keras_out),
    }
    it = _interpreter(blob, num_threads)
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], blurred[:1])
    report["tflite_ms"] = _median_ms(it.invoke, repeats)
    x = tf.constant(blurred[:1].astype(np.float32) / 127.5 - 1.0)
    call = tf.function(lambda t: model(t, training=False))
    report["keras_ms"] = _median_ms(lambda: call(x).numpy(), repeats)
    if sharp is not None:
        sharp = np.asarray(sharp, np.uint8)
        report["psnr_blurred"] = _psnr(blurred, sharp)
        report["psnr_keras"] = _psnr(keras_out, sharp)
        report["psnr_tflite"] = _psnr(lite, sharp)
    return report


def sample_images(size: int, calibration_dir=None, n_calibration: int = 64, n_eval: int = 8, seed: int = 0,
                  log=None):
    """``(calibration_blurred, eval_blurred, eval_sharp)`` uint8 images of ``size`` x ``size``.

    Faces come from ``calibration_dir`` (any layout; sorted, the first ``n_calibration`` for
    calibration, the next ``n_eval`` held out for evaluation), blurred with the training blur
    (``preset_bank("train")``, ``make_eval_pairs``). Without a folder, smooth synthetic images
    (no sharp reference) are used for the parity checks only.
    """
    from tfdeblur import blur
    from tfdeblur.data import load_faces, make_eval_pairs
    from tfdeblur.imageio import SkipLog, find_images

    if calibration_dir is None:
        rng = np.random.default_rng(seed)
        return None, _smooth_images(rng, n_eval, size, size), None
    skip = log if log is not None else SkipLog()
    paths = [p for p, _ in find_images(calibration_dir, log=skip)]
    faces, _ = load_faces(paths, size=size, log=skip, limit=n_calibration + n_eval)
    if len(faces) < 2:
        raise ExportError(f"need at least 2 readable images in {calibration_dir}, found {len(faces)}")
    n_eval = min(n_eval, max(1, len(faces) // 4))
    kernels = blur.preset_bank("train", len(faces), seed=seed)
    blurred = make_eval_pairs(faces, kernels, seed=seed)
    cal = blurred[: len(faces) - n_eval]
    return cal, blurred[len(faces) - n_eval :], faces[len(faces) - n_eval :]


def _smooth_images(rng, n, h, w):
    """Deterministic photo-like test images: smooth colour fields with edges and a little noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for _ in range(n):
        a = rng.uniform(0.01, 0.08, size=(3, 2))
        p = rng.uniform(0, 6.3, size=3)
        img = np.stack([np.sin(a[c, 0] * xx + a[c, 1] * yy + p[c]) for c in range(3)], -1) * 90 + 128
        img[(xx - w * rng.uniform(0.3, 0.7)) ** 2 + (yy - h * rng.uniform(0.3, 0.7)) ** 2 < (min(h, w) / 4) ** 2] -= 60
        img += rng.normal(0, 4, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def export_tflite(model, output_path, size: int = 256, quantize: str = "none", calibration_dir=None,
                  verify: bool = True, log=print, skip_log=None) -> dict:
    """Convert, verify and write a ``.tflite`` (temp file, then rename). Returns the report dict.

    ``skip_log``: a :class:`tfdeblur.imageio.SkipLog` collecting unreadable calibration images."""
    _check_output(output_path, is_dir=False)
    cal, blurred, sharp = None, None, None
    if quantize == "int8" or verify:
        if quantize == "int8" and calibration_dir is None:
            raise ExportError("--quantize int8 needs --calibration-dir (a folder of sharp face images)")
        cal, blurred, sharp = sample_images(size, calibration_dir, log=skip_log)
    blob = tflite_model(model, size, quantize, representative=cal)
    report = {"format": "tflite", "quantize": quantize, "path": os.path.abspath(output_path), "size": size}
    if verify:
        report.update(verify_tflite(model, blob, blurred, sharp))
        report["ok"] = _report_tflite(report, calibration_dir, log)
    with atomic_path(output_path) as tmp, open(tmp, "wb") as f:
        f.write(blob)
    return report


def _report_tflite(r, calibration_dir, log) -> bool:
    q = r["quantize"]
    src = f"{r['images']} blurred faces from {calibration_dir}" if calibration_dir else f"{r['images']} synthetic images"
    log(f"TFLite ({'float32' if q == 'none' else q}), input/output uint8 [1, {r['size']}, {r['size']}, 3]: "
        f"{_mb(r['size_bytes'])}")
    log(f"  vs Keras on {src}: max |diff| {r['max_abs_diff']}/255, mean {r['mean_abs_diff']:.3f}/255, "
        f"PSNR {r['psnr_vs_keras']:.2f} dB")
    log(f"  latency on this CPU ({os.cpu_count()} cores, median of 10, one {r['size']}x{r['size']} image): "
        f"TFLite {r['tflite_ms']:.1f} ms, Keras {r['keras_ms']:.1f} ms")
    ok = True
    if q == "none":
        ok = r["max_abs_diff"] <= PARITY_TOLERANCE
        target = f"target: max |diff| <= {PARITY_TOLERANCE}/255"
    elif q == "float16":
        ok = r["psnr_vs_keras"] >= 40.0
        target = "target: PSNR vs Keras >= 40 dB"
    else:
        target = ""
    if "psnr_keras" in r:
        drop = r["psnr_keras"] - r["psnr_tflite"]
        log(f"  restoration PSNR vs sharp: blurred {r['psnr_blurred']:.2f} dB, Keras {r['psnr_keras']:.2f} dB, "
            f"TFLite {r['psnr_tflite']:.2f} dB (loss {drop:.2f} dB)")
        if q in ("float16", "dynamic", "int8"):
            ok = ok and drop <= 1.0
            target = (target + "; " if target else "target: ") + "restoration PSNR within 1 dB of Keras"
    if target:
        log(f"  {'OK' if ok else 'WARNING: missed'} ({target})")
    return ok
