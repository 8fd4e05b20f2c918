"""Blur benchmark: kernel-bank generation (vectorised vs per-kernel loop) and the tf.data pipeline.

    python bench/blur_bench.py            # ~1-2 min on 2 cores
    python bench/blur_bench.py --quick    # smoke test, numbers meaningless
    python -m bench.blur_bench --json blur.json

Measured side by side in one run:

* kernels/s of ``blur.kernel_bank`` (one call for a bank of 1000, and batches of 8 as the training
  pipeline draws them) against ``blur.kernel_bank_loop`` (the same algorithm one kernel and one
  time step at a time), all with the ``train`` preset. The calls are interleaved (vectorised,
  loop, vectorised, ...) so that a change in machine load hits both alike, and the speedup is
  also given from process CPU time, which other processes on a shared machine disturb less.
* blurred pairs/s through ``tfdeblur.data.train_dataset`` (the training input pipeline: random
  crop with a kernel-radius margin, fresh ``train``-preset kernel per sample, valid convolution,
  noise sigma in [0, 0.01], 8-bit rounding; AUTOTUNE map + prefetch) at 256x256 (crop 256) and
  128x128 crops of 256x256 faces, batch 8, on the CPU.

``run(quick=False) -> dict`` returns ``{"rows": [...], "speedups": [...], "meta": {...}}``; each row
has ``what, config, input, batch, rate, rate_best, unit, iters, note`` (the layout of
``bench/run.py``'s rows).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tfdeblur.files import write_json  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["run", "section_blur"]


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _row(what, config, size, batch, rates, unit, iters, note="", **extra):
    return {"what": what, "config": config, "input": size, "batch": batch,
            "rate": statistics.median(rates), "rate_best": max(rates), "rates": rates,
            "unit": unit, "iters": iters, "note": note, **extra}


def _faces(n, size=256):
    """Up to ``n`` LFW faces (training persons) at ``size``^2, or random images when absent."""
    import numpy as np

    data_dir = os.path.join(os.environ.get("TFDEBLUR_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")), "lfw")
    if os.path.isdir(data_dir):
        from tfdeblur.data import load_faces, load_split
        from tfdeblur.imageio import SkipLog

        split = load_split(data_dir)
        with open(os.devnull, "w") as devnull:
            images, kept = load_faces(split.train[:: max(1, len(split.train) // n)], size, log=SkipLog(stream=devnull),
                                      limit=n)
        if len(kept):
            return images, f"{len(kept)} LFW training faces"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8), f"{n} random uint8 images (no LFW found)"


def bench_kernels(quick=False):
    from tfdeblur import blur

    params = blur.PRESETS["train"]
    n_bank, n_loop, n_step = (200, 4, 8) if quick else (1000, 16, 8)
    reps = 1 if quick else 3
    blur.kernel_bank(n_bank, seed=0, params=params)  # warm-up (imports, allocator, page cache)
    blur.kernel_bank(n_step, seed=0, params=params)
    blur.kernel_bank_loop(1, seed=0, params=params)
    wall = {"bank": [], "loop": [], "step": []}
    cpu = {"bank": [], "loop": [], "step": []}
    for r in range(reps):
        w, c = _timed(lambda: blur.kernel_bank(n_bank, seed=100 + r, params=params))
        wall["bank"].append(n_bank / w)
        cpu["bank"].append(n_bank / c)
        w, c = _timed(lambda: blur.kernel_bank_loop(n_loop, seed=200 + r, params=params))
        wall["loop"].append(n_loop / w)
        cpu["loop"].append(n_loop / c)
        steps = 2 if quick else 20
        w, c = _timed(lambda: [blur.kernel_bank(n_step, seed=[300 + r, s], params=params) for s in range(steps)])
        wall["step"].append(n_step * steps / w)
        cpu["step"].append(n_step * steps / c)
    cfg = f"train preset (length {params.length[0]:g}-{params.length[1]:g} px, iters {params.iters})"
    rows = [
        _row(f"kernel_bank (vectorised), bank of {n_bank}", cfg, "-", n_bank, wall["bank"], "kernels/s", reps,
             rate_cpu=statistics.median(cpu["bank"])),
        _row(f"kernel_bank (vectorised), batches of {n_step} (per training step)", cfg, "-", n_step, wall["step"],
             "kernels/s", reps * (2 if quick else 20), rate_cpu=statistics.median(cpu["step"])),
        _row("kernel_bank_loop (per kernel, per time step)", cfg, "-", n_loop, wall["loop"], "kernels/s", reps,
             rate_cpu=statistics.median(cpu["loop"]), note="baseline"),
    ]
    speedups = [
        {"what": f"kernel_bank vs kernel_bank_loop (bank of {n_bank})", "baseline": rows[2]["what"],
         "optimised": rows[0]["what"], "speedup": rows[0]["rate"] / rows[2]["rate"],
         "speedup_cpu_time": rows[0]["rate_cpu"] / rows[2]["rate_cpu"], "goal": 50.0},
        {"what": f"kernel_bank vs kernel_bank_loop (batches of {n_step})", "baseline": rows[2]["what"],
         "optimised": rows[1]["what"], "speedup": rows[1]["rate"] / rows[2]["rate"],
         "speedup_cpu_time": rows[1]["rate_cpu"] / rows[2]["rate_cpu"]},
    ]
    return rows, speedups


def bench_pipeline(quick=False, crops=(256, 128), batch=8):
    import tensorflow as tf

    from tfdeblur import blur
    from tfdeblur.data import train_dataset

    with tf.device("/CPU:0"):
        images, source = _faces(16 if quick else 64)
        rows = []
        for crop in crops:
            ds = train_dataset(images, batch, crop, seed=0, kernel_params=blur.PRESETS["train"],
                               noise_sigma=(0.0, 0.01))
            it = iter(ds)
            next(it)[0].numpy()  # tracing
            reps, min_time = (1, 0.0) if quick else (3, 2.0)
            rates, total = [], 0
            # The first window runs down what prefetch and the parallel map built up meanwhile
            # and is not counted: the others (>= min_time s each) measure the steady rate.
            for r in range(reps + 1):
                n_batches, t0 = 0, time.perf_counter()
                while True:
                    next(it)[0].numpy()
                    n_batches += 1
                    if time.perf_counter() - t0 >= min_time:
                        break
                if r:
                    rates.append(n_batches * batch / (time.perf_counter() - t0))
                    total += n_batches
            rows.append(_row("train_dataset blurred pairs", "train preset, noise sigma 0-0.01, AUTOTUNE map + prefetch",
                             f"{crop}x{crop}", batch, rates, "pairs/s", total,
                             note=f"crops of 256x256 faces ({source}), fresh kernel per sample"))
    return rows


def run(quick: bool = False) -> dict:
    """Run both parts; see the module docstring for the layout."""
    t0 = time.perf_counter()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    krows, speedups = bench_kernels(quick)
    prows = bench_pipeline(quick)
    import numpy as np
    import tensorflow as tf

    meta = {
        "quick": bool(quick), "seconds": round(time.perf_counter() - t0, 1),
        "cpu_count": os.cpu_count(), "loadavg_start": load0,
        "loadavg_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(), "processor": platform.processor() or None,
        "python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
        "device": "CPU",
    }
    return {"rows": krows + prows, "speedups": speedups, "meta": meta}



def section_blur(rec, s, quick: bool):
    """The ``blur`` section of ``python -m bench``: :func:`run`'s rows, recorded in ``rec``."""
    raw = run(quick=quick)
    for r in raw["rows"]:
        timing = {"rate": r["rate"], "rate_best": r["rate_best"], "iters": r["iters"]} if r["rate"] else None
        rec.add("blur", str(r["what"]), str(r["config"]), r["input"], r["batch"], timing, unit=r["unit"],
                note=str(r["note"]))
    return {"status": "ok", "raw": raw}

def _print(res):
    print(f"\n{'what':68s} {'input':>9s} {'batch':>5s} {'rate':>10s}  unit")
    for r in res["rows"]:
        print(f"{r['what']:68s} {r['input']:>9s} {r['batch']:>5d} {r['rate']:10.1f}  {r['unit']}"
              + (f"  (CPU-time rate {r['rate_cpu']:.1f})" if "rate_cpu" in r else ""))
    for s in res["speedups"]:
        goal = f", goal >= {s['goal']:g}x" if s.get("goal") else ""
        print(f"speedup {s['what']}: {s['speedup']:.1f}x wall clock, {s['speedup_cpu_time']:.1f}x CPU time{goal}")
    m = res["meta"]
    print(f"({m['cpu_count']} CPUs, load average {m['loadavg_start'][0] if m['loadavg_start'] else '?'} at start; "
          f"{m['seconds']} s)")


def main(argv=None):
    p = argparse.ArgumentParser(description="Blur benchmark (kernel bank and tf.data pipeline).")
    p.add_argument("--quick", action="store_true", help="one short repeat each: a smoke test")
    p.add_argument("--json", default=None, help="also write the result as JSON")
    args = p.parse_args(argv)
    res = run(quick=args.quick)
    _print(res)
    if args.json:
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
