"""What every benchmark section shares: timing settings, the measurement loop, the row
recorder (GMAC, GFLOP/s and fraction of the measured matmul peak per row) and small helpers."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_CONFIG = os.path.join(REPO, "configs", "cpu.yaml")
PAPER_CONFIG = os.path.join(REPO, "configs", "paper.yaml")
FAST_CONFIG = os.path.join(REPO, "configs", "cpu-fast-finetune.yaml")
NAF_CONFIG = os.path.join(REPO, "configs", "cpu-naf-distill.yaml")  # the NAFNet-style family (issue 20)
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


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def block_on(out):
    """Wait for ``out`` to be computed (GPU ops are asynchronous): fetch one element of a leaf."""
    import tensorflow as tf

    leaves = [t for t in tf.nest.flatten(out) if hasattr(t, "numpy")]
    if leaves:
        tf.reshape(leaves[0], [-1])[:1].numpy()


def measure(fn, items_per_call, s: Settings, block=block_on):
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
        log(f"  {section:5s} {what:28s} {config[:44]:44s} {row['input']!s:>9s} b{batch!s:<3s} "
             + (f"{rate:10.2f} {unit}" if rate else f"ERROR {error}" if error else "-"))
        return row

    def fail(self, section, what, config, size, batch, exc, unit="img/s", device="CPU", **extra):
        from tfdeblur.errors import one_line

        msg = f"{type(exc).__name__}: {one_line(exc)}"
        tb = traceback.extract_tb(exc.__traceback__)
        log(f"  error at {tb[-1].filename}:{tb[-1].lineno}: {msg}" if tb else f"  error: {msg}")
        return self.add(section, what, config, size, batch, None, unit=unit, device=device, error=msg, **extra)

    def speedup(self, section, what, baseline, optimised, note=""):
        """Record optimised/baseline from two rows (rates of the same unit)."""
        ratio = None
        if baseline and optimised and baseline.get("rate") and optimised.get("rate"):
            ratio = optimised["rate"] / baseline["rate"]
        entry = {
            "section": section,
            "what": what,
            "baseline": label(baseline),
            "optimised": label(optimised),
            "baseline_rate": baseline.get("rate") if baseline else None,
            "optimised_rate": optimised.get("rate") if optimised else None,
            "unit": (optimised or baseline or {}).get("unit"),
            "speedup": ratio,
            "note": note,
        }
        self.speedups.append(entry)
        return entry


def label(row):
    if not row:
        return None
    return f"{row['what']} [{row['config']}] {row['input']} b{row['batch']}"


def cpu_scope():
    """Pin the CPU sections to the CPU even where a GPU is visible."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.device("/CPU:0")
    return contextlib.nullcontext()


def load_cfg(path):
    from tfdeblur.config import load_config

    return load_config(path)


def gen_desc(g: dict) -> str:
    if g.get("arch") == "naf":
        return f"naf w{g.get('ngf')} b{g.get('n_blocks')} down{g.get('n_down')} ps{g.get('pixel_shuffle', 1)}"
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


def gmac(model, size):
    """GMAC per image at ``size`` x ``size``, cached by architecture (not id(): ids are reused)."""
    from tfdeblur.models import count_macs

    k = (json.dumps(model.get_config(), sort_keys=True, default=str), size)
    if k not in _MAC_CACHE:
        _MAC_CACHE[k] = count_macs(model, size, size) / 1e9
    return _MAC_CACHE[k]


def random_images(batch, size, seed=0):
    import tensorflow as tf

    return tf.random.stateless_uniform([batch, size, size, 3], [seed, size], -1.0, 1.0)


def measure_peak(s: Settings, device="/CPU:0", n=None):
    """Best-of-``peak_reps`` fp32 matmul GFLOP/s (``n`` x ``n`` @ ``n`` x ``n``)."""
    import tensorflow as tf

    n = n or s.peak_n
    with tf.device(device):
        a = tf.random.stateless_normal([n, n], [1, 2])
        b = tf.random.stateless_normal([n, n], [3, 4]) / (n**0.5)
        mm = tf.function(lambda: tf.matmul(a, b))
        block_on(mm())
        best = float("inf")
        for _ in range(s.peak_reps):
            t0 = time.perf_counter()
            for _ in range(s.peak_calls):
                out = mm()
            block_on(out)
            best = min(best, (time.perf_counter() - t0) / s.peak_calls)
    return {"gflops": 2.0 * n**3 / best / 1e9, "n": n, "reps": s.peak_reps, "calls": s.peak_calls,
            "device": device, "best_seconds": best}


def infer_row(rec, section, what, model, desc, size, batch, s, xla=False, note="", device="CPU", **extra):
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), jit_compile=xla)
    x = random_images(batch, size)
    timing = measure(lambda: fn(x), batch, s)
    return rec.add(section, what, desc, size, batch, timing, gmac=gmac(model, size), note=note, device=device, **extra)


def guarded(rec, section, what, config, size, batch, fn, unit="img/s", device="CPU"):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return rec.fail(section, what, config, size, batch, e, unit=unit, device=device)
