"""The benchmark: ``python -m bench [--quick] [--json PATH] [--only SECTION,...]``.

Sections (default: all):

* ``blur``  - blur kernel bank and blur pipeline throughput (``bench.blur_bench.run``).
* ``train`` - GAN training-step img/s for gan / lsgan / wgan-gp, shipped CPU config, 128² and 256².
* ``infer`` - inference img/s, Keras / SavedModel / TFLite fp32-fp16-int8, lean vs paper generator.
* ``opts``  - measured optimisations, each against its baseline in the same run: XLA, tf.data
  parallelism, fused instance norm, oneDNN on/off, mixed precision (float16: GPU only; bfloat16 in train/infer).
* ``gpu``   - only when a GPU is visible: paper-setting training and inference on the GPU.

Every row gives img/s (or items/s), GMAC per image counted from the model
(``tfdeblur.models.count_macs``), the achieved GFLOP/s (= 2 x GMAC x img/s) and that as a
fraction of an fp32 matmul peak measured at the start of the same run. A fraction far below 1 is
normal for these convolution nets; comparing it between rows shows where time goes beyond maths.

Timings: each measurement is warmed up (graph tracing, allocation), then run for at least
``min_iters`` calls and ``min_time`` seconds, ``repeats`` times; the row gives the median rate
(``rate``) and the best (``rate_best``). ``--quick`` runs each once: it checks that everything
works and its numbers mean nothing. Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace

SECTIONS = ("blur", "train", "infer", "opts", "gpu")
GAN_KINDS = ("gan", "lsgan", "wgan-gp")
FORMATS = ("keras", "keras-bf16", "savedmodel", "tflite-fp32", "tflite-fp16", "tflite-int8")
MODELS = ("lean", "fast", "paper")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_CONFIG = os.path.join(REPO, "configs", "cpu.yaml")
PAPER_CONFIG = os.path.join(REPO, "configs", "paper.yaml")
FAST_CONFIG = os.path.join(REPO, "configs", "cpu-fast-finetune.yaml")
TFLITE_THREADS = 2

# Goals from the project's issue: a shipped model >= 9x the paper generator and >= 50 img/s at
# 256², batch 8 (Keras). Reported, never asserted.
GOAL_RATIO = 9.0
GOAL_IMG_S = 50.0
BF16_NOTE = "bfloat16 compute, fraction is of the fp32 peak"


@dataclass(frozen=True)
class Settings:
    warmup: int
    min_iters: int
    min_time: float
    repeats: int
    peak_n: int
    peak_reps: int
    peak_calls: int
    calib_samples: int
    data_images: int


FULL = Settings(warmup=2, min_iters=3, min_time=2.0, repeats=3, peak_n=2048, peak_reps=5, peak_calls=5,
                calib_samples=8, data_images=64)
QUICK = Settings(warmup=1, min_iters=1, min_time=0.0, repeats=1, peak_n=2048, peak_reps=2, peak_calls=1,
                 calib_samples=1, data_images=8)


# ------------------------------------------------------------------------------------ helpers

def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _block(out):
    """Wait for ``out`` to be computed (GPU ops are asynchronous): fetch one element of a leaf."""
    import tensorflow as tf

    leaves = [t for t in tf.nest.flatten(out) if hasattr(t, "numpy")]
    if leaves:
        tf.reshape(leaves[0], [-1])[:1].numpy()


def measure(fn, items_per_call, s: Settings, block=_block):
    """Run ``fn`` repeatedly; returns rates in items/s (median and best over ``s.repeats``)."""
    for _ in range(s.warmup):
        block(fn())
    rates, iters = [], 0
    for _ in range(s.repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            block(fn())
            n += 1
            elapsed = time.perf_counter() - t0
            if n >= s.min_iters and elapsed >= s.min_time:
                break
        iters += n
        rates.append(n * items_per_call / elapsed)
    return {"rate": statistics.median(rates), "rate_best": max(rates), "rates": rates, "iters": iters}


class Recorder:
    """Collects rows; turns timings into GMAC / GFLOP/s / fraction-of-peak columns."""

    def __init__(self, peak_gflops=None, gpu_peak_gflops=None):
        self.rows = []
        self.speedups = []
        self.peak = peak_gflops
        self.gpu_peak = gpu_peak_gflops

    def add(self, section, what, config, size, batch, timing=None, unit="img/s", gmac=None, note="",
            device="CPU", error=None, **extra):
        rate = timing["rate"] if timing else None
        peak = self.gpu_peak if device.startswith("GPU") else self.peak
        gflops = 2.0 * gmac * rate if (gmac and rate) else None
        row = {
            "section": section,
            "what": what,
            "config": config,
            "input": f"{size}x{size}" if isinstance(size, int) else size,
            "batch": batch,
            "rate": rate,
            "unit": unit,
            "rate_best": timing["rate_best"] if timing else None,
            "iters": timing["iters"] if timing else 0,
            "gmac_per_img": gmac,
            "gflops": gflops,
            "frac_peak": (gflops / peak) if (gflops and peak) else None,
            "device": device,
            "note": note,
        }
        if error:
            row["error"] = error
        row.update(extra)
        self.rows.append(row)
        _log(f"  {section:5s} {what:28s} {config[:44]:44s} {row['input']!s:>9s} b{batch!s:<3s} "
             + (f"{rate:10.2f} {unit}" if rate else f"ERROR {error}" if error else "-"))
        return row

    def fail(self, section, what, config, size, batch, exc, unit="img/s", device="CPU", **extra):
        from tfdeblur.imageio import one_line

        msg = f"{type(exc).__name__}: {one_line(exc)}"
        tb = traceback.extract_tb(exc.__traceback__)
        _log(f"  error at {tb[-1].filename}:{tb[-1].lineno}: {msg}" if tb else f"  error: {msg}")
        return self.add(section, what, config, size, batch, None, unit=unit, device=device, error=msg, **extra)

    def speedup(self, section, what, baseline, optimised, note=""):
        """Record optimised/baseline from two rows (rates of the same unit)."""
        ratio = None
        if baseline and optimised and baseline.get("rate") and optimised.get("rate"):
            ratio = optimised["rate"] / baseline["rate"]
        entry = {
            "section": section,
            "what": what,
            "baseline": _label(baseline),
            "optimised": _label(optimised),
            "baseline_rate": baseline.get("rate") if baseline else None,
            "optimised_rate": optimised.get("rate") if optimised else None,
            "unit": (optimised or baseline or {}).get("unit"),
            "speedup": ratio,
            "note": note,
        }
        self.speedups.append(entry)
        return entry


def _label(row):
    if not row:
        return None
    return f"{row['what']} [{row['config']}] {row['input']} b{row['batch']}"


def _cpu_scope():
    """Pin the CPU sections to the CPU even where a GPU is visible."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.device("/CPU:0")
    return contextlib.nullcontext()


def _load_cfg(path):
    from tfdeblur.config import load_config

    return load_config(path)


def _gen_desc(g: dict) -> str:
    parts = [f"ngf{g.get('ngf', 64)}", f"b{g.get('n_blocks', 6)}"]
    if g.get("block", "basic") != "basic":
        parts.append(g["block"])
    parts.append(f"k{g.get('stem_kernel', 7)}")
    if g.get("pixel_shuffle", 1) > 1:
        parts.append(f"ps{g['pixel_shuffle']}")
    if g.get("n_down", 2) != 2:
        parts.append(f"down{g['n_down']}")
    if g.get("upsample", "transpose") != "transpose":
        parts.append(g["upsample"])
    parts.append(g.get("norm", "group"))
    return " ".join(parts)


_MAC_CACHE = {}


def _gmac(model, size):
    """GMAC per image at ``size`` x ``size``, cached by architecture (not id(): ids are reused)."""
    from tfdeblur.models import count_macs

    k = (json.dumps(model.get_config(), sort_keys=True, default=str), size)
    if k not in _MAC_CACHE:
        _MAC_CACHE[k] = count_macs(model, size, size) / 1e9
    return _MAC_CACHE[k]


def _random_images(batch, size, seed=0):
    import tensorflow as tf

    return tf.random.stateless_uniform([batch, size, size, 3], [seed, size], -1.0, 1.0)


# --------------------------------------------------------------------------------------- peak

def measure_peak(s: Settings, device="/CPU:0", n=None):
    """Best-of-``peak_reps`` fp32 matmul GFLOP/s (``n`` x ``n`` @ ``n`` x ``n``)."""
    import tensorflow as tf

    n = n or s.peak_n
    with tf.device(device):
        a = tf.random.stateless_normal([n, n], [1, 2])
        b = tf.random.stateless_normal([n, n], [3, 4]) / (n**0.5)
        mm = tf.function(lambda: tf.matmul(a, b))
        _block(mm())
        best = float("inf")
        for _ in range(s.peak_reps):
            t0 = time.perf_counter()
            for _ in range(s.peak_calls):
                out = mm()
            _block(out)
            best = min(best, (time.perf_counter() - t0) / s.peak_calls)
    return {"gflops": 2.0 * n**3 / best / 1e9, "n": n, "reps": s.peak_reps, "calls": s.peak_calls,
            "device": device, "best_seconds": best}


# --------------------------------------------------------------------------------------- blur

def section_blur(rec: Recorder, s: Settings, quick: bool):
    try:
        from bench.blur_bench import run as blur_run
    except ImportError as e:
        note = f"skipped: bench/blur_bench.py not available ({e})"
        _log(f"  blur  {note}")
        return {"status": note}
    raw = blur_run(quick=quick)
    _rows_from_blur(rec, raw)
    return {"status": "ok", "raw": raw}


def _rows_from_blur(rec, raw):
    """Turn ``blur_bench.run()``'s dict into rows, whatever its exact layout.

    Accepts ``{"rows": [{"what"/"name", "rate"/"value", "unit", ...}, ...]}`` or a nested dict
    of numbers; keys with ``speedup``/``ratio`` become speedup entries, other numbers rows.
    """
    if isinstance(raw, dict) and isinstance(raw.get("rows"), list):
        for r in raw["rows"]:
            if not isinstance(r, dict):
                continue
            rate = r.get("rate", r.get("value", r.get("items_per_s")))
            timing = {"rate": rate, "rate_best": r.get("rate_best", rate), "iters": r.get("iters", 0)} if rate else None
            rec.add("blur", str(r.get("what", r.get("name", "blur"))), str(r.get("config", "")),
                    r.get("input", r.get("size", "-")), r.get("batch", r.get("n", "-")), timing,
                    unit=r.get("unit", "items/s"), note=str(r.get("note", "")))
        return
    for key, value in _flatten(raw):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low = key.lower()
        if "speedup" in low or "ratio" in low:
            rec.speedups.append({"section": "blur", "what": key, "baseline": None, "optimised": None,
                                 "baseline_rate": None, "optimised_rate": None, "unit": None,
                                 "speedup": float(value), "note": "from bench.blur_bench"})
            continue
        leaf = low.rsplit(".", 1)[-1]
        if not (leaf.endswith(("_per_s", "_per_sec", "_per_second", "/s", "_s")) or "rate" in leaf
                or "throughput" in leaf):
            continue  # a parameter (n, batch, size...), kept in the section's raw dict
        unit = "kernels/s" if "kernel" in low else "pairs/s" if "pair" in low else "items/s"
        rec.add("blur", key, "bench.blur_bench", "-", "-", {"rate": float(value), "rate_best": float(value), "iters": 0},
                unit=unit)


def _flatten(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}{k}." if not isinstance(v, (int, float)) else f"{prefix}{k}")
    elif isinstance(d, (int, float)):
        yield prefix.rstrip("."), d


# -------------------------------------------------------------------------------------- train

_CONTENT_CACHE = {}


def _content_loss(terms: dict):
    """The configured content loss; VGG19 without its weights (offline) -> Charbonnier, noted."""
    from tfdeblur.losses import ContentLossUnavailable, build_content_loss

    key = tuple(sorted(terms.items()))
    if key not in _CONTENT_CACHE:
        note = ""
        try:
            loss = build_content_loss(terms)
        except ContentLossUnavailable:
            fallback = {k: v for k, v in terms.items() if k != "vgg19"} or {"charbonnier": 1.0}
            loss = build_content_loss(fallback)
            note = "VGG19 weights unavailable: content loss " + "+".join(f"{k}{v:g}" for k, v in fallback.items())
        _CONTENT_CACHE[key] = (loss, note)
    return _CONTENT_CACHE[key]


def build_gan(kind, cfg, gen_overrides=None, mixed_precision=False):
    """GAN for config ``cfg`` (as loaded by tfdeblur.config), compiled and ready to step."""
    import keras
    import tensorflow as tf

    from tfdeblur.gan import make_compiled_gan
    from tfdeblur.models import build_discriminator, build_generator

    t = cfg["train"]
    keras.utils.set_random_seed(0)
    gen_cfg = {**cfg["model"]["generator"], **(gen_overrides or {})}
    gen = build_generator(**gen_cfg)
    disc = build_discriminator(**cfg["model"]["discriminator"])
    content, note = _content_loss(t["content"])
    gan = make_compiled_gan(kind, gen, disc, content, t, mixed_precision)
    gan.rng = tf.random.Generator.from_seed(0)
    return gan, gen_cfg, note


def train_gmac(gan, kind, size, n_critic):
    """Estimated MACs per training image: G step 3G + 2D (backward ~ 2x forward; D's weight
    gradients are not needed), each D step G + 6D (two D passes), the gradient penalty ~ 4D.
    Content-loss networks (MTCNN, VGG19) are not counted."""
    g = _gmac(gan.generator, size)
    d = _gmac(gan.discriminator, size)
    d_step = g + 6 * d + (4 * d if kind == "wgan-gp" else 0)
    steps = n_critic if kind == "wgan-gp" else 1
    return steps * d_step + 3 * g + 2 * d


def _train_desc(cfg, gen_cfg, content_note=""):
    t = cfg["train"]
    content = content_note.split(": content loss ")[-1] if content_note else "+".join(
        f"{k}{v:g}" for k, v in t["content"].items())
    return f"G {_gen_desc(gen_cfg)}, D ndf{cfg['model']['discriminator']['ndf']}, {content}"


def time_train_step(rec, section, kind, cfg, size, batch, s, what=None, gen_overrides=None, xla=False,
                    device="CPU", mixed_precision=False, note="", **extra):
    import tensorflow as tf

    gan, gen_cfg, content_note = build_gan(kind, cfg, gen_overrides, mixed_precision=mixed_precision)
    config = _train_desc(cfg, gen_cfg, content_note)
    n_critic = int(cfg["train"]["n_critic"])
    if kind == "wgan-gp":
        config += f", n_critic {n_critic}"
    step = tf.function(gan.train_step, jit_compile=xla)
    data = (_random_images(batch, size, 1), _random_images(batch, size, 2))
    timing = measure(lambda: step(data), batch, s)
    notes = "; ".join(n for n in (note, content_note) if n)
    return rec.add(section, what or f"train step {kind}", config, size, batch, timing,
                   gmac=train_gmac(gan, kind, size, n_critic), note=notes, device=device, **extra)


def section_train(rec, s, sizes, kinds):
    """Each GAN loss at each size in float32, then under ``mixed_bfloat16`` (``train.py
    --mixed-precision bfloat16``: G, D and the content loss's networks built under that policy)."""
    import keras

    cfg = _load_cfg(CPU_CONFIG)
    batch = int(cfg["train"]["batch_size"])
    note = "random batch; GMAC/img is the fwd+bwd estimate (see docs)"
    for kind in kinds:
        for size in sizes:
            rows = {}
            for policy in ("float32", "mixed_bfloat16"):
                what = f"train step {kind}" + (" bfloat16" if policy != "float32" else "")
                _CONTENT_CACHE.clear()  # the content loss's networks follow the policy, as in training
                keras.mixed_precision.set_global_policy(policy)
                try:
                    with _cpu_scope():
                        rows[policy] = time_train_step(
                            rec, "train", kind, cfg, size, batch, s, what=what, precision=policy,
                            note=note + ("; " + BF16_NOTE if policy != "float32" else ""))
                except Exception as e:  # noqa: BLE001
                    rows[policy] = rec.fail("train", what, "configs/cpu.yaml", size, batch, e, precision=policy)
                finally:
                    keras.mixed_precision.set_global_policy("float32")
                    _CONTENT_CACHE.clear()
                gc.collect()
            rec.speedup("train", f"mixed_bfloat16 vs float32, train step {kind}, {size}x{size}",
                        rows["float32"], rows["mixed_bfloat16"])
    return {"config": os.path.relpath(CPU_CONFIG, REPO), "batch": batch, "sizes": list(sizes), "losses": list(kinds),
            "precisions": ["float32", "mixed_bfloat16"]}


# -------------------------------------------------------------------------------------- infer

def _infer_batch(size):
    return 8 if size <= 256 else 2


def _load_trained(path, cfg):
    """``(model, cfg, note)`` for a trained generator file; cfg is corrected to the file's own
    width and depth, which may differ from the config's (e.g. fewer blocks)."""
    from tfdeblur.inference import load_model
    from tfdeblur.models import count_res_blocks

    model = load_model(path)
    cfg = dict(cfg, n_blocks=count_res_blocks(model), ngf=model.get_layer("stem_conv").filters)
    return model, cfg, f"trained weights ({os.path.relpath(path, REPO)}; {model.count_params()} params)"


def load_models(which, fast_model=None):
    """``{"lean": (model, desc, note), "fast": ..., "paper": ...}``. lean: the shipped generator
    (untrained weights from configs/cpu.yaml if it is absent); fast: ``fast_model`` (a .keras
    file), else the shipped 4-block generator, else untrained weights from
    configs/cpu-fast-finetune.yaml (speed does not depend on weights); paper: untrained ngf 64,
    6 blocks."""
    import keras

    from tfdeblur.inference import SHIPPED_MODELS
    from tfdeblur.models import build_generator

    shipped, shipped_fast = SHIPPED_MODELS["default"], SHIPPED_MODELS["fast"]
    out = {}
    keras.utils.set_random_seed(0)
    if "lean" in which:
        lean_cfg = _load_cfg(CPU_CONFIG)["model"]["generator"]
        model, note = None, ""
        if os.path.isfile(shipped):
            try:
                model, lean_cfg, note = _load_trained(shipped, lean_cfg)
            except Exception as e:  # noqa: BLE001
                note = f"{os.path.relpath(shipped, REPO)} failed to load ({type(e).__name__}); untrained weights"
        if model is None:
            model = build_generator(**lean_cfg)
            note = note or f"untrained weights ({os.path.relpath(shipped, REPO)} absent)"
        out["lean"] = (model, f"lean: {_gen_desc(lean_cfg)}", note)
    if "fast" in which:
        fast_cfg = _load_cfg(FAST_CONFIG)["model"]["generator"]
        fast_model = fast_model or (shipped_fast if os.path.isfile(shipped_fast) else None)
        if fast_model:
            model, fast_cfg, note = _load_trained(fast_model, fast_cfg)
        else:
            model = build_generator(**fast_cfg)
            note = "untrained weights (speed only)"
        out["fast"] = (model, f"fast: {_gen_desc(fast_cfg)}", note)
    if "paper" in which:
        out["paper"] = (build_generator(64, 6), f"paper: {_gen_desc({'ngf': 64, 'n_blocks': 6})}",
                        "untrained weights (speed only)")
    return out


def section_infer(rec, s, sizes, which, formats, fast_model=None):
    import numpy as np
    import tensorflow as tf

    from bench import _convert

    info = {"models": {}, "conversion": {}, "tflite_threads": TFLITE_THREADS,
            "inputs": "synthetic smooth uint8 images; Keras gets them as float [-1, 1], the exports in their "
                      "own input dtype (uint8 for tfdeblur.export)"}
    with _cpu_scope():
        models = load_models(which, fast_model)
    tfl_sizes = [z for z in sizes if z <= 256]
    pixels = {z: _convert.smooth_images(_infer_batch(z), z) for z in sizes}

    def as_float(u8):
        return tf.constant(u8.astype(np.float32) / 127.5 - 1.0)

    for key, (model, desc, wnote) in models.items():
        info["models"][key] = {"config": desc, "weights": wnote, "params": int(model.count_params())}
        fp32_rows = {}
        # Keras, through tf.function
        if "keras" in formats:
            fn = tf.function(lambda x, m=model: m(x, training=False))
            for size in sizes:
                b = _infer_batch(size)
                try:
                    with _cpu_scope():
                        x = as_float(pixels[size])
                        timing = measure(lambda: fn(x), b, s)
                    fp32_rows[size] = rec.add("infer", "keras tf.function", desc, size, b, timing,
                                              gmac=_gmac(model, size), note=wnote, model=key, format="keras")
                except Exception as e:  # noqa: BLE001
                    rec.fail("infer", "keras tf.function", desc, size, b, e, model=key, format="keras")
        # Keras computing in bfloat16 (float32 norms and output; tfdeblur.models.with_precision)
        if "keras-bf16" in formats:
            from tfdeblur.models import with_precision

            try:
                bf16 = with_precision(model, "bfloat16")
            except Exception as e:  # noqa: BLE001
                bf16 = None
                rec.fail("infer", "keras bfloat16", desc, "-", "-", e, model=key, format="keras-bf16")
            fn16 = tf.function(lambda x, m=bf16: m(x, training=False))
            for size in sizes if bf16 is not None else []:
                b = _infer_batch(size)
                try:
                    with _cpu_scope():
                        x = as_float(pixels[size])
                        timing = measure(lambda: fn16(x), b, s)
                        diff = _max_diff(fn16(x[:1]), model(x[:1], training=False))
                    note = wnote + "; " + BF16_NOTE
                    # Trained generators stay within ~0.02 of float32 (a residual near the input);
                    # untrained ones output large random residuals that amplify the rounding, so
                    # for them only a non-finite output is a failure.
                    if not diff <= (0.05 if wnote.startswith("trained") else float("inf")):
                        note += f"; OUTPUT MISMATCH vs Keras float32 (max |diff| {diff})"
                    row = rec.add("infer", "keras bfloat16", desc, size, b, timing, gmac=_gmac(model, size),
                                  note=note, model=key, format="keras-bf16", max_abs_diff_vs_keras=diff)
                    if size in fp32_rows:
                        rec.speedup("infer", f"bfloat16 vs float32, Keras inference, {key}, {size}x{size}",
                                    fp32_rows[size], row)
                except Exception as e:  # noqa: BLE001
                    rec.fail("infer", "keras bfloat16", desc, size, b, e, model=key, format="keras-bf16")
            del bf16
            gc.collect()
        # SavedModel serving export, reloaded with tf.saved_model.load
        if "savedmodel" in formats:
            with tempfile.TemporaryDirectory(prefix="bench_sm_") as tmp:
                serve = None
                try:
                    how = _convert.save_serving(model, os.path.join(tmp, "serving"))
                    serve, in_dtype = _convert.load_serving(os.path.join(tmp, "serving"))
                    info["conversion"]["savedmodel"] = how
                except Exception as e:  # noqa: BLE001
                    rec.fail("infer", "savedmodel", desc, "-", "-", e, model=key, format="savedmodel")
                for size in sizes if serve else []:
                    b = _infer_batch(size)
                    what = f"savedmodel serving ({np.dtype(in_dtype).name})"
                    try:
                        with _cpu_scope():
                            u8 = pixels[size]
                            x = tf.constant(u8) if in_dtype == np.uint8 else as_float(u8)
                            timing = measure(lambda: serve(x), b, s)
                            diff = _max_diff(serve(x[:1]), model(as_float(u8[:1]), training=False))
                        note = wnote if diff <= 0.02 else f"{wnote}; OUTPUT MISMATCH vs Keras (max |diff| {diff})"
                        rec.add("infer", what, desc, size, b, timing, gmac=_gmac(model, size), note=note,
                                model=key, format="savedmodel", max_abs_diff_vs_keras=diff, converter=how)
                    except Exception as e:  # noqa: BLE001
                        rec.fail("infer", what, desc, size, b, e, model=key, format="savedmodel")
                del serve
                gc.collect()
        # TFLite, batch 1, num_threads=2 (XNNPACK for float models)
        for fmt in [f for f in formats if f.startswith("tflite-")]:
            quant = fmt.split("-", 1)[1]
            for size in tfl_sizes:
                what = f"tflite {quant} ({TFLITE_THREADS} thr)"
                try:
                    content, how = _convert.tflite_model(model, size, quant, calib_samples=s.calib_samples)
                    info["conversion"][fmt] = how
                    interp = _convert.tflite_interpreter(content, TFLITE_THREADS)
                    inp = interp.get_input_details()[0]
                    out = interp.get_output_details()[0]
                    u8 = pixels[size][:1]
                    x = u8 if inp["dtype"] == np.uint8 else u8.astype(np.float32) / 127.5 - 1.0

                    def call(interp=interp, inp=inp, out=out, x=x):
                        interp.set_tensor(inp["index"], x)
                        interp.invoke()
                        return interp.get_tensor(out["index"])

                    timing = measure(call, 1, s, block=lambda _: None)
                    diff = _max_diff(call(), model(as_float(u8), training=False))
                    note = wnote + {"int8": "; int8 calibrated on synthetic images (speed only); fraction is of the fp32 peak",
                                    "fp16": "; fp16 weights, fp32 compute on x86"}.get(quant, "")
                    # NaN (or, for float models, garbage) means a broken conversion. int8 error depends
                    # on the weights and the calibration data, so it is recorded, not judged.
                    if not diff <= (float("inf") if quant == "int8" else 0.05):
                        note += f"; OUTPUT MISMATCH vs Keras (max |diff| {diff})"
                    rec.add("infer", what, desc, size, 1, timing, gmac=_gmac(model, size), note=note,
                            model=key, format=fmt, tflite_bytes=len(content), max_abs_diff_vs_keras=diff,
                            converter=how, io_dtype=np.dtype(inp["dtype"]).name)
                    del interp
                except Exception as e:  # noqa: BLE001
                    rec.fail("infer", what, desc, size, 1, e, model=key, format=fmt)
                gc.collect()
    info["lean_vs_paper"] = _lean_vs_paper(rec)
    return info


def _max_diff(a, b):
    """max |a - b| in the model's [-1, 1] units; uint8 outputs (the exports) are mapped there first."""
    import numpy as np

    def f(t):
        t = np.asarray(t)
        return t.astype(np.float32) / 127.5 - 1.0 if t.dtype == np.uint8 else t.astype(np.float32)

    a, b = f(a), f(b)
    return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("nan")


def _lean_vs_paper(rec):
    """model/paper img/s for every (format, size, batch) measured for both, for the lean (shipped)
    and the fast model; the headline of each is Keras at 256², batch 8."""
    by = {}
    for r in rec.rows:
        if r["section"] == "infer" and r.get("rate") and r.get("model"):
            by[(r["format"], r["input"], r["batch"], r["model"])] = r["rate"]
    ratios = []
    for (fmt, inp, b, m), rate in sorted(by.items()):
        if m != "paper" and (fmt, inp, b, "paper") in by:
            ratios.append({"model": m, "format": fmt, "input": inp, "batch": b, "img_s": rate,
                           "paper_img_s": by[(fmt, inp, b, "paper")], "ratio": rate / by[(fmt, inp, b, "paper")]})
    out = {"ratios": ratios, "goal": {"ratio": GOAL_RATIO, "img_s": GOAL_IMG_S}, "headlines": {}}
    # Headlines: Keras at 256², batch 8, in float32 and (``headlines_bf16``) with both models in bfloat16.
    out["headlines_bf16"] = {}
    for r in ratios:
        if r["format"] in ("keras", "keras-bf16") and r["input"] == "256x256" and r["batch"] == 8:
            key = "headlines" if r["format"] == "keras" else "headlines_bf16"
            out[key][r["model"]] = {**r, "ratio_goal_met": r["ratio"] >= GOAL_RATIO,
                                    "img_s_goal_met": r["img_s"] >= GOAL_IMG_S}
    return out


# --------------------------------------------------------------------------------------- opts

def _infer_row(rec, section, what, model, desc, size, batch, s, xla=False, note="", device="CPU", **extra):
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), jit_compile=xla)
    x = _random_images(batch, size)
    timing = measure(lambda: fn(x), batch, s)
    return rec.add(section, what, desc, size, batch, timing, gmac=_gmac(model, size), note=note, device=device, **extra)


def _guarded(rec, section, what, config, size, batch, fn, unit="img/s", device="CPU"):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return rec.fail(section, what, config, size, batch, e, unit=unit, device=device)


def section_opts(rec, s, quick, infer_size, train_size, gpu_present):
    from tfdeblur.models import build_generator

    cfg = _load_cfg(CPU_CONFIG)
    lean_cfg = cfg["model"]["generator"]
    kind = cfg["train"]["gan"]
    batch = int(cfg["train"]["batch_size"])
    ib = _infer_batch(infer_size)
    info = {}
    lean_desc = f"lean: {_gen_desc(lean_cfg)}"
    paper_desc = f"paper: {_gen_desc({'ngf': 64, 'n_blocks': 6})}"

    with _cpu_scope():
        lean = build_generator(**lean_cfg)
        paper = build_generator(64, 6)

        # 1. XLA, inference and training step
        for model, desc in ((lean, lean_desc), (paper, paper_desc)):
            rows = []
            for xla in (False, True):
                what = f"infer xla={'on' if xla else 'off'}"
                rows.append(_guarded(rec, "opts", what, desc, infer_size, ib,
                                     lambda: _infer_row(rec, "opts", what, model, desc, infer_size, ib, s, xla=xla,
                                                        opt="xla", variant="on" if xla else "off")))
            rec.speedup("opts", f"XLA jit_compile, inference, {desc.split(':')[0]}", rows[0], rows[1])
        # The shipped content loss's face term resizes with antialias=True (ScaleAndTranslate), which
        # has no XLA kernel: that pair records the error; the Charbonnier-only pair measures XLA.
        pixel_cfg = copy.deepcopy(cfg)
        pixel_cfg["train"]["content"] = {"charbonnier": 1.0}
        for label, tcfg in (("shipped content loss", cfg), ("charbonnier only", pixel_cfg)):
            rows = []
            for xla in (False, True):
                what = f"train {kind} xla={'on' if xla else 'off'}"
                rows.append(_guarded(rec, "opts", what, f"{lean_desc}, {label}", train_size, batch,
                                     lambda: time_train_step(rec, "opts", kind, tcfg, train_size, batch, s, what=what,
                                                             xla=xla, opt="xla", variant="on" if xla else "off")))
            rec.speedup("opts", f"XLA jit_compile, train step {kind}, lean, {label}", rows[0], rows[1],
                        note="" if rows[1] and rows[1].get("rate") else (rows[1] or {}).get("error", ""))
            gc.collect()

        # 2. tf.data: parallel map + prefetch vs sequential, alone and feeding the train step
        info["tf_data"] = _opts_tf_data(rec, s, cfg, kind, train_size, batch)
        gc.collect()

        # 3. fused instance norm vs GroupNormalization(groups=-1)
        rows = {}
        for norm in ("group", "fused"):
            g = build_generator(**{**lean_cfg, "norm": norm})
            desc = f"lean: {_gen_desc({**lean_cfg, 'norm': norm})}"
            what = f"infer norm={norm}"
            rows[norm] = _guarded(rec, "opts", what, desc, infer_size, ib,
                                  lambda: _infer_row(rec, "opts", what, g, desc, infer_size, ib, s, opt="norm", variant=norm))
        rec.speedup("opts", "fused instance norm vs group, inference, lean", rows["group"], rows["fused"])
        rows = {}
        for norm in ("group", "fused"):
            what = f"train {kind} norm={norm}"
            rows[norm] = _guarded(rec, "opts", what, lean_desc, train_size, batch,
                                  lambda: time_train_step(rec, "opts", kind, cfg, train_size, batch, s, what=what,
                                                          gen_overrides={"norm": norm}, opt="norm", variant=norm))
        rec.speedup("opts", f"fused instance norm vs group, train step {kind}, lean", rows["group"], rows["fused"])
        gc.collect()

    # 4. oneDNN off/on: the switch is read at TF import, so each side runs in its own process
    info["onednn"] = _opts_onednn(rec, quick, infer_size, train_size)

    # 5. mixed precision: only meaningful on a GPU (CPUs here have no fast fp16 path)
    if gpu_present:
        info["mixed_precision"] = "measured in the gpu section"
    else:
        note = ("skipped on CPU: mixed_float16 needs a GPU (no fast fp16 on this CPU); measured in the gpu section when one "
                "is visible. bfloat16 on CPU is measured in the train and infer sections")
        rec.add("opts", "mixed precision", "-", "-", "-", None, note=note, opt="mixed_precision", variant="skipped")
        info["mixed_precision"] = note
    return info


def _opts_tf_data(rec, s, cfg, kind, crop, batch):
    import numpy as np
    import tensorflow as tf

    from tfdeblur import blur
    from tfdeblur.data import train_dataset

    d = cfg["data"]
    images = np.random.default_rng(0).integers(0, 256, size=(s.data_images, d["image_size"], d["image_size"], 3),
                                                dtype=np.uint8)
    preset = dict(d["blur"] or {}).pop("preset", "train")
    params = blur.PRESETS[preset]
    desc = f"train_dataset crop {crop}, blur preset {preset}, noise {d['noise_sigma']}"

    def dataset(parallel):
        return train_dataset(images, batch, crop, seed=0, kernel_params=params, noise_sigma=d["noise_sigma"],
                             parallel=parallel)

    # Longer runs than elsewhere: batches prefetched during warm-up must not flatter the parallel
    # pipeline (the median of the repeats is taken after the buffer has drained to steady state).
    ds_settings = replace(s, min_time=2 * s.min_time, min_iters=5 * s.min_iters)
    rows = {}
    for parallel in (False, True):
        name = "parallel+prefetch" if parallel else "sequential"
        what = f"tf.data {name}"

        def run(parallel=parallel, what=what):
            it = iter(dataset(parallel))
            timing = measure(lambda: next(it), batch, ds_settings)
            return rec.add("opts", what, desc, crop, batch, timing, unit="pairs/s", note="pipeline alone",
                           opt="tf_data", variant=name)

        rows[name] = _guarded(rec, "opts", what, desc, crop, batch, run, unit="pairs/s")
    rec.speedup("opts", "tf.data AUTOTUNE map + prefetch vs sequential (pipeline alone)",
                rows["sequential"], rows["parallel+prefetch"])

    gan, gen_cfg, content_note = build_gan(kind, cfg)
    step = tf.function(gan.train_step)
    n_critic = int(cfg["train"]["n_critic"])
    rows = {}
    for parallel in (False, True):
        name = "parallel+prefetch" if parallel else "sequential"
        what = f"train {kind} fed by tf.data {name}"

        def run(parallel=parallel, what=what, name=name):
            it = iter(dataset(parallel))
            timing = measure(lambda: step(next(it)), batch, s)
            return rec.add("opts", what, _train_desc(cfg, gen_cfg, content_note), crop, batch, timing,
                           gmac=train_gmac(gan, kind, crop, n_critic), note="train step + input pipeline",
                           opt="tf_data", variant=name)

        rows[name] = _guarded(rec, "opts", what, desc, crop, batch, run)
    rec.speedup("opts", f"tf.data AUTOTUNE map + prefetch vs sequential (feeding train step {kind})",
                rows["sequential"], rows["parallel+prefetch"])
    return {"images": "random uint8 (throughput only)", "n_images": s.data_images}


def _opts_onednn(rec, quick, infer_size, train_size):
    results = {}
    for flag in ("0", "1"):
        with tempfile.TemporaryDirectory(prefix="bench_onednn_") as tmp:
            out = os.path.join(tmp, "worker.json")
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
            env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
            cmd = [sys.executable, "-m", "bench", "--worker", "onednn", "--json", out,
                   "--sizes", f"{infer_size},{train_size}"] + (["--quick"] if quick else [])
            _log(f"  opts  oneDNN {'on' if flag == '1' else 'off'}: {' '.join(cmd[1:])} (subprocess)")
            try:
                proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                                      timeout=600 if quick else 1800)
                if proc.returncode != 0 or not os.path.isfile(out):
                    raise RuntimeError(f"worker exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
                with open(out) as f:
                    results[flag] = json.load(f)
            except Exception as e:  # noqa: BLE001
                rec.fail("opts", f"oneDNN {'on' if flag == '1' else 'off'}", "subprocess", "-", "-", e,
                         opt="onednn", variant="on" if flag == "1" else "off")
                results[flag] = None
    by_flag = {}
    for flag, res in results.items():
        if not res:
            continue
        variant = "on" if flag == "1" else "off"
        for r in res["rows"]:
            r = {**r, "section": "opts", "what": f"{r['what']} oneDNN={variant}", "opt": "onednn", "variant": variant,
                 "note": "; ".join(n for n in (r.get("note"), f"subprocess, TF_ENABLE_ONEDNN_OPTS={flag}, "
                                                  f"oneDNN reported {res['meta'].get('onednn_enabled')}") if n)}
            # this run's peak, so fractions compare across both processes
            if r.get("gflops") and rec.peak:
                r["frac_peak"] = r["gflops"] / rec.peak
            rec.rows.append(r)
            by_flag.setdefault(r.get("key", r["what"]), {})[variant] = r
            _log(f"  opts  {r['what']:40s} {r['rate'] or 0:10.2f} {r['unit']}")
    for key, pair in by_flag.items():
        if "off" in pair and "on" in pair:
            rec.speedup("opts", f"oneDNN on vs off: {key}", pair["off"], pair["on"])
    return {flag: (res["meta"] if res else None) for flag, res in results.items()}


def worker_onednn(s, infer_size, train_size):
    """Runs in a subprocess with TF_ENABLE_ONEDNN_OPTS set: matmul peak, lean/paper inference and
    the lean training step, so the main process can compare oneDNN off and on."""
    from tfdeblur.models import build_generator

    cfg = _load_cfg(CPU_CONFIG)
    lean_cfg = cfg["model"]["generator"]
    kind = cfg["train"]["gan"]
    batch = int(cfg["train"]["batch_size"])
    peak = measure_peak(s)
    rec = Recorder(peak["gflops"])
    rec.add("opts", "matmul fp32 peak", f"{peak['n']}x{peak['n']} @ {peak['n']}x{peak['n']}", peak["n"], 1,
            {"rate": peak["gflops"], "rate_best": peak["gflops"], "iters": peak["reps"]}, unit="GFLOP/s", key="matmul")
    ib = _infer_batch(infer_size)
    for name, model, desc in (("lean", build_generator(**lean_cfg), f"lean: {_gen_desc(lean_cfg)}"),
                              ("paper", build_generator(64, 6), f"paper: {_gen_desc({'ngf': 64, 'n_blocks': 6})}")):
        _guarded(rec, "opts", "infer", desc, infer_size, ib,
                 lambda: _infer_row(rec, "opts", "infer", model, desc, infer_size, ib, s, key=f"infer {name}"))
    _guarded(rec, "opts", f"train {kind}", "lean", train_size, batch,
             lambda: time_train_step(rec, "opts", kind, cfg, train_size, batch, s, what=f"train {kind}",
                                     key=f"train {kind} lean"))
    return rec, peak


# ---------------------------------------------------------------------------------------- gpu

def section_gpu(rec, s, device="/GPU:0", size=None):
    """Paper setting on the GPU: training step (paper config, 256², batch 1 as in the paper and
    batch 8) and paper-generator inference, fp32 and mixed_float16, XLA off/on."""
    import keras

    from tfdeblur.models import build_generator

    dev = device.strip("/").replace("device:", "")
    cfg = _load_cfg(PAPER_CONFIG)
    size = int(size or cfg["data"]["crop"])
    kind = cfg["train"]["gan"]
    info = {"device": device, "config": os.path.relpath(PAPER_CONFIG, REPO),
            "note": "fp32 matmuls may use TF32 on Ampere+ GPUs (TensorFlow's default)"}
    peak = measure_peak(s, device=device, n=8192 if dev.startswith("GPU") else None)
    rec.gpu_peak = peak["gflops"]
    info["peak"] = peak
    import tensorflow as tf

    with tf.device(device):
        for b in sorted({int(cfg["train"]["batch_size"]), 8}):
            for k in GAN_KINDS:
                what = f"train step {k}"
                _guarded(rec, "gpu", what, "configs/paper.yaml", size, b,
                         lambda: time_train_step(rec, "gpu", k, cfg, size, b, s, what=what, device=dev,
                                                 note="paper config, random batch"), device=dev)
                gc.collect()
        desc = f"paper: {_gen_desc({'ngf': 64, 'n_blocks': 6})}"
        for policy in ("float32", "mixed_float16"):
            keras.mixed_precision.set_global_policy(policy)
            try:
                keras.utils.set_random_seed(0)
                model = build_generator(64, 6)
                rows = {}
                for xla in (False, True):
                    for b in (1, 8):
                        what = f"infer {policy} xla={'on' if xla else 'off'}"
                        rows[(xla, b)] = _guarded(
                            rec, "gpu", what, desc, size, b,
                            lambda: _infer_row(rec, "gpu", what, model, desc, size, b, s, xla=xla, device=dev,
                                               precision=policy), device=dev)
                rec.speedup("gpu", f"XLA, inference {policy}, paper, batch 8", rows[(False, 8)], rows[(True, 8)])
                what = f"train step {kind} {policy}"
                rows[policy] = _guarded(
                    rec, "gpu", what, "configs/paper.yaml", size, 8,
                    lambda: time_train_step(rec, "gpu", kind, cfg, size, 8, s, what=what, device=dev,
                                            mixed_precision=policy != "float32", precision=policy), device=dev)
                info.setdefault("rows_by_policy", {})[policy] = {"infer_b8": rows[(False, 8)], "train_b8": rows[policy]}
            finally:
                keras.mixed_precision.set_global_policy("float32")
        bp = info.get("rows_by_policy", {})
        if "float32" in bp and "mixed_float16" in bp:
            rec.speedup("gpu", "mixed_float16 vs float32, inference, paper, batch 8",
                        bp["float32"]["infer_b8"], bp["mixed_float16"]["infer_b8"])
            rec.speedup("gpu", f"mixed_float16 vs float32, train step {kind}, paper, batch 8",
                        bp["float32"]["train_b8"], bp["mixed_float16"]["train_b8"])
        info.pop("rows_by_policy", None)
    return info


# -------------------------------------------------------------------------------------- output

_COLS = [("section", 7), ("what", 34), ("config", 44), ("input", 9), ("batch", 5), ("rate", 18),
         ("GMAC/img", 9), ("GFLOP/s", 8), ("%peak", 6), ("note", 0)]


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_table(rows, speedups, peak, extra_lines=()):
    lines = []
    head = "  ".join(f"{name:<{w}}" if w else name for name, w in _COLS)
    lines += [head, "-" * len(head)]
    for r in rows:
        rate = f"{r['rate']:.2f} {r['unit']}" if r.get("rate") else ("ERROR" if r.get("error") else "-")
        note = r.get("error") or r.get("note") or ""
        vals = [r["section"], r["what"], r["config"], str(r["input"]), str(r["batch"]), rate,
                _fmt(r.get("gmac_per_img"), ".3f"), _fmt(r.get("gflops"), ".1f"),
                _fmt(r["frac_peak"] * 100 if r.get("frac_peak") is not None else None, ".1f"), note]
        lines.append("  ".join(f"{str(v)[:w]:<{w}}" if w else str(v) for v, (_, w) in zip(vals, _COLS)))
    if speedups:
        lines += ["", "Speedups (optimised / baseline, same run):"]
        for sp in speedups:
            ratio = f"{sp['speedup']:.2f}x" if sp.get("speedup") else "n/a"
            lines.append(f"  {ratio:>7s}  {sp['what']}")
    lines += list(extra_lines)
    if peak:
        lines += ["", f"fp32 matmul peak: {peak['gflops']:.1f} GFLOP/s ({peak['n']}x{peak['n']}, best of {peak['reps']})"]
    return "\n".join(lines)


def _cpu_bf16_flags():
    """The CPU's native bfloat16 features (Linux /proc/cpuinfo); [] where none or unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(x for x in set(flags) if x in ("avx512_bf16", "amx_bf16", "amx_tile"))


def _meta(args, s):
    import keras
    import tensorflow as tf

    try:
        from tensorflow.python.util import _pywrap_util_port

        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001
        onednn = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": args.argv,
        "quick": args.quick,
        "settings": asdict(s),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "cpu_bf16": _cpu_bf16_flags(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "onednn_enabled": onednn,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "loadavg_start": list(load) if load else None,
    }


# ----------------------------------------------------------------------------------------- main

def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description="Throughput benchmark for tfdeblur: prints a table and writes JSON "
                                "(img/s, GMAC/img, GFLOP/s, fraction of a measured fp32 matmul peak).",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Sections: " + ", ".join(SECTIONS) + ". See the README's Performance section.")
    p.add_argument("--quick", action="store_true", help="tiny iteration counts: a smoke test, numbers meaningless")
    p.add_argument("--json", default="bench_results.json", metavar="PATH", help="write results here (default %(default)s)")
    p.add_argument("--only", default=",".join(SECTIONS), metavar="SECTION,...",
                   help=f"comma-separated sections out of {','.join(SECTIONS)} (default: all)")
    p.add_argument("--sizes", default=None, metavar="N,...",
                   help="override image sizes (train default 128,256; infer 128,256,512; opts and gpu use the first)")
    p.add_argument("--models", default=",".join(MODELS), help="infer: models out of lean,fast,paper (default all)")
    p.add_argument("--fast-model", default=None, metavar="PATH",
                   help="infer: .keras file for the fast model (default: the shipped generator_fast.keras)")
    p.add_argument("--formats", default=",".join(FORMATS), help=f"infer: formats out of {','.join(FORMATS)}")
    p.add_argument("--losses", default=",".join(GAN_KINDS), help="train: GAN losses (default gan,lsgan,wgan-gp)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: oneDNN subprocess
    p.add_argument("--gpu-device", default="/GPU:0", help=argparse.SUPPRESS)  # internal: test the gpu section on CPU
    args = p.parse_args(argv)

    def split(v, allowed, what):
        items = [x.strip() for x in v.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad:
            p.error(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
        return items

    args.only = split(args.only, SECTIONS, "section")
    args.models = split(args.models, MODELS, "model")
    args.formats = split(args.formats, FORMATS, "format")
    if args.fast_model and not os.path.isfile(args.fast_model):
        p.error(f"--fast-model {args.fast_model!r}: no such file")
    args.losses = split(args.losses, GAN_KINDS, "GAN loss")
    if args.sizes:
        try:
            args.sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        except ValueError:
            p.error("--sizes takes comma-separated integers, e.g. 128,256")
        if not args.sizes or min(args.sizes) < 16:
            p.error("--sizes must be integers >= 16")
    args.argv = list(argv)
    return args


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    s = QUICK if args.quick else FULL
    if REPO not in sys.path:
        sys.path.insert(0, REPO)

    import tensorflow as tf

    if args.worker == "onednn":
        infer_size, train_size = (args.sizes + args.sizes)[:2] if args.sizes else (256, 128)
        rec, peak = worker_onednn(s, infer_size, train_size)
        with open(args.json, "w") as f:
            json.dump({"meta": _meta(args, s), "peak": peak, "rows": rec.rows}, f, indent=1)
        return 0
    if args.worker:
        raise SystemExit(f"unknown worker {args.worker!r}")

    t_start = time.perf_counter()
    meta = _meta(args, s)
    gpus = tf.config.list_physical_devices("GPU")
    if meta["loadavg_start"] and meta["loadavg_start"][0] > 0.5 * (os.cpu_count() or 1):
        _log(f"warning: load average {meta['loadavg_start'][0]:.1f} on {os.cpu_count()} cores: "
             "the machine is busy, timings are unreliable")
    if args.quick:
        _log("--quick: one timed call per row; the numbers only show that everything runs")

    _log("peak: fp32 matmul ...")
    peak = measure_peak(s)
    rec = Recorder(peak["gflops"])
    _log(f"  peak  {peak['gflops']:.1f} GFLOP/s")
    results = {"meta": meta, "peak": peak, "sections": {}}

    sizes = args.sizes
    plan = {
        "blur": lambda: section_blur(rec, s, args.quick),
        "train": lambda: section_train(rec, s, sizes or [128, 256], args.losses),
        "infer": lambda: section_infer(rec, s, sizes or [128, 256, 512], args.models, args.formats, args.fast_model),
        "opts": lambda: section_opts(rec, s, args.quick, (sizes or [256])[0], (sizes or [128])[0], bool(gpus)),
        "gpu": lambda: section_gpu(rec, s, args.gpu_device, (sizes or [None])[0]) if (gpus or args.gpu_device != "/GPU:0") else
        {"status": "skipped: no GPU visible (tf.config.list_physical_devices('GPU') is empty)"},
    }
    for name in SECTIONS:
        if name not in args.only:
            continue
        _log(f"{name}:")
        t0 = time.perf_counter()
        try:
            info = plan[name]() or {}
            info.setdefault("status", "ok")
        except Exception as e:  # noqa: BLE001  one broken section must not lose the others
            _log(traceback.format_exc())
            info = {"status": f"error: {type(e).__name__}: {str(e)[:300]}"}
        info["seconds"] = time.perf_counter() - t0
        results["sections"][name] = info
        if name == "gpu" and info.get("status", "").startswith("skipped"):
            _log(f"  {info['status']}")

    results["rows"] = rec.rows
    results["speedups"] = rec.speedups
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta["loadavg_end"] = list(load) if load else None
    meta["seconds"] = time.perf_counter() - t_start

    extra = []
    lvp = results["sections"].get("infer", {}).get("lean_vs_paper", {})
    for m, h, how in ([(m, h, "Keras") for m, h in lvp.get("headlines", {}).items()]
                      + [(m, h, "Keras, both bfloat16") for m, h in lvp.get("headlines_bf16", {}).items()]):
        extra += ["", f"{m} / paper at 256x256, batch 8 ({how}): {h['ratio']:.1f}x "
                      f"(goal >= {GOAL_RATIO:g}x: {'met' if h['ratio_goal_met'] else 'NOT met'}); "
                      f"{m} {h['img_s']:.1f} img/s (goal >= {GOAL_IMG_S:g}: "
                      f"{'met' if h['img_s_goal_met'] else 'NOT met'})"]
    for name, info in results["sections"].items():
        if str(info.get("status", "ok")) != "ok":
            extra.append(f"{name}: {info['status']}")
    if args.quick:
        extra += ["", "QUICK MODE: one call per row; these numbers are not measurements."]
    print(format_table(rec.rows, rec.speedups, peak, extra))

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1, default=str)
    _log(f"wrote {args.json} ({len(rec.rows)} rows, {meta['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
