"""The ``opts`` section: measured optimisations, each against its baseline in the same run: XLA,
tf.data parallelism, fused instance norm, oneDNN off/on (each side in its own process: the switch
is read when TensorFlow starts), and where mixed float16 is measured."""

from __future__ import annotations

import copy
import gc
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace

from bench.common import (CPU_CONFIG, REPO, Recorder, cpu_scope, gen_desc, guarded, infer_row, load_cfg, log, measure,
                          measure_peak)
from bench.infer import infer_batch
from bench.train_bench import build_gan, time_train_step, train_desc, train_gmac

def section_opts(rec, s, quick, infer_size, train_size, gpu_present):
    from tfdeblur.models import build_generator

    cfg = load_cfg(CPU_CONFIG)
    lean_cfg = cfg["model"]["generator"]
    kind = cfg["train"]["gan"]
    batch = int(cfg["train"]["batch_size"])
    ib = infer_batch(infer_size)
    info = {}
    lean_desc = f"lean: {gen_desc(lean_cfg)}"
    paper_desc = f"paper: {gen_desc({'ngf': 64, 'n_blocks': 6})}"

    with cpu_scope():
        lean = build_generator(**lean_cfg)
        paper = build_generator(64, 6)

        # 1. XLA, inference and training step
        for model, desc in ((lean, lean_desc), (paper, paper_desc)):
            rows = []
            for xla in (False, True):
                what = f"infer xla={'on' if xla else 'off'}"
                rows.append(guarded(rec, "opts", what, desc, infer_size, ib,
                                     lambda: infer_row(rec, "opts", what, model, desc, infer_size, ib, s, xla=xla,
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
                rows.append(guarded(rec, "opts", what, f"{lean_desc}, {label}", train_size, batch,
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
            desc = f"lean: {gen_desc({**lean_cfg, 'norm': norm})}"
            what = f"infer norm={norm}"
            rows[norm] = guarded(rec, "opts", what, desc, infer_size, ib,
                                  lambda: infer_row(rec, "opts", what, g, desc, infer_size, ib, s, opt="norm", variant=norm))
        rec.speedup("opts", "fused instance norm vs group, inference, lean", rows["group"], rows["fused"])
        rows = {}
        for norm in ("group", "fused"):
            what = f"train {kind} norm={norm}"
            rows[norm] = guarded(rec, "opts", what, lean_desc, train_size, batch,
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
    preset = dict(d["blur"] or {}).get("preset", "train")
    params = blur.kernel_params_from_config(d["blur"])
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

        rows[name] = guarded(rec, "opts", what, desc, crop, batch, run, unit="pairs/s")
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
            return rec.add("opts", what, train_desc(cfg, gen_cfg, content_note), crop, batch, timing,
                           gmac=train_gmac(gan, kind, crop, n_critic), note="train step + input pipeline",
                           opt="tf_data", variant=name)

        rows[name] = guarded(rec, "opts", what, desc, crop, batch, run)
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
            log(f"  opts  oneDNN {'on' if flag == '1' else 'off'}: {' '.join(cmd[1:])} (subprocess)")
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
            log(f"  opts  {r['what']:40s} {r['rate'] or 0:10.2f} {r['unit']}")
    for key, pair in by_flag.items():
        if "off" in pair and "on" in pair:
            rec.speedup("opts", f"oneDNN on vs off: {key}", pair["off"], pair["on"])
    return {flag: (res["meta"] if res else None) for flag, res in results.items()}


def worker_onednn(s, infer_size, train_size):
    """Runs in a subprocess with TF_ENABLE_ONEDNN_OPTS set: matmul peak, lean/paper inference and
    the lean training step, so the main process can compare oneDNN off and on."""
    from tfdeblur.models import build_generator

    cfg = load_cfg(CPU_CONFIG)
    lean_cfg = cfg["model"]["generator"]
    kind = cfg["train"]["gan"]
    batch = int(cfg["train"]["batch_size"])
    peak = measure_peak(s)
    rec = Recorder(peak["gflops"])
    rec.add("opts", "matmul fp32 peak", f"{peak['n']}x{peak['n']} @ {peak['n']}x{peak['n']}", peak["n"], 1,
            {"rate": peak["gflops"], "rate_best": peak["gflops"], "iters": peak["reps"]}, unit="GFLOP/s", key="matmul")
    ib = infer_batch(infer_size)
    for name, model, desc in (("lean", build_generator(**lean_cfg), f"lean: {gen_desc(lean_cfg)}"),
                              ("paper", build_generator(64, 6), f"paper: {gen_desc({'ngf': 64, 'n_blocks': 6})}")):
        guarded(rec, "opts", "infer", desc, infer_size, ib,
                 lambda: infer_row(rec, "opts", "infer", model, desc, infer_size, ib, s, key=f"infer {name}"))
    guarded(rec, "opts", f"train {kind}", "lean", train_size, batch,
             lambda: time_train_step(rec, "opts", kind, cfg, train_size, batch, s, what=f"train {kind}",
                                     key=f"train {kind} lean"))
    return rec, peak
