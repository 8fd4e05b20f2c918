"""The benchmark: ``python -m bench [--quick] [--json PATH] [--only SECTION,...]``.

Sections (default: all):

* ``blur``  - blur kernel bank and blur pipeline throughput (``bench/blur_bench.py``).
* ``train`` - GAN training-step img/s for gan / lsgan / wgan-gp, shipped CPU config, 128² and 256²
  (``bench/train_bench.py``).
* ``infer`` - inference img/s, Keras / SavedModel / TFLite fp32-fp16-int8, lean vs paper generator
  (``bench/infer.py``).
* ``faces`` - a 640x480 frame with five faces through ``deblur_faces`` (proposals, restoration),
  against whole-frame ``deblur``, default and fast model (``bench/faces_bench.py``).
* ``opts``  - measured optimisations, each against its baseline in the same run: XLA, tf.data
  parallelism, fused instance norm, oneDNN on/off, mixed precision (float16: GPU only; bfloat16 in
  train/infer) (``bench/opts.py``).
* ``gpu``   - only when a GPU is visible: paper-setting training and inference on the GPU (``bench/gpu.py``).

Every row gives img/s (or items/s), GMAC per image counted from the model
(``tfdeblur.models.count_macs``), the achieved GFLOP/s (= 2 x GMAC x img/s) and that as a
fraction of an fp32 matmul peak measured at the start of the same run. A fraction far below 1 is
normal for these convolution nets; comparing it between rows shows where time goes beyond maths.

Timings: each measurement is warmed up (graph tracing, allocation), then run for at least
``min_iters`` calls and ``min_time`` seconds, ``repeats`` times; the row gives the median rate
(``rate``) and the best (``rate_best``). ``--quick`` runs each once: it checks that everything
works and its numbers mean nothing. Benchmarks are not tests: nothing here asserts a speed.
(Shared timing and row code: ``bench/common.py``; the table and metadata: ``bench/report.py``.)
"""


from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

from bench.common import FULL, QUICK, REPO, Recorder, log, measure_peak
from tfdeblur.config import GAN_LOSSES
from tfdeblur.files import write_json

SECTIONS = ("blur", "train", "infer", "faces", "opts", "gpu")
FORMATS = ("keras", "keras-bf16", "savedmodel", "tflite-fp32", "tflite-fp16", "tflite-int8")
MODELS = ("lean", "fast", "naf", "paper")


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
    p.add_argument("--models", default=",".join(MODELS), help="infer: models out of lean,fast,naf,paper (default all)")
    p.add_argument("--fast-model", default=None, metavar="PATH",
                   help="infer: .keras file for the fast model (default: the shipped generator_fast.keras)")
    p.add_argument("--formats", default=",".join(FORMATS), help=f"infer: formats out of {','.join(FORMATS)}")
    p.add_argument("--losses", default=",".join(GAN_LOSSES), help=f"train: GAN losses (default {','.join(GAN_LOSSES)})")
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
    args.losses = split(args.losses, GAN_LOSSES, "GAN loss")
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

    from bench.report import format_table, run_meta, summary_lines

    if args.worker == "onednn":
        from bench.opts import worker_onednn

        infer_size, train_size = (args.sizes + args.sizes)[:2] if args.sizes else (256, 128)
        rec, peak = worker_onednn(s, infer_size, train_size)
        write_json(args.json, {"meta": run_meta(args, s), "peak": peak, "rows": rec.rows})
        return 0
    if args.worker:
        raise SystemExit(f"unknown worker {args.worker!r}")

    t_start = time.perf_counter()
    meta = run_meta(args, s)
    if meta["loadavg_start"] and meta["loadavg_start"][0] > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {meta['loadavg_start'][0]:.1f} on {os.cpu_count()} cores: "
            "the machine is busy, timings are unreliable")
    if args.quick:
        log("--quick: one timed call per row; the numbers only show that everything runs")

    log("peak: fp32 matmul ...")
    peak = measure_peak(s)
    rec = Recorder(peak["gflops"])
    log(f"  peak  {peak['gflops']:.1f} GFLOP/s")
    results = {"meta": meta, "peak": peak, "sections": _run_sections(args, rec, s)}
    results["rows"] = rec.rows
    results["speedups"] = rec.speedups
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta["loadavg_end"] = list(load) if load else None
    meta["seconds"] = time.perf_counter() - t_start
    print(format_table(rec.rows, rec.speedups, peak, summary_lines(results["sections"], args.quick)))

    write_json(args.json, results, default=str)
    log(f"wrote {args.json} ({len(rec.rows)} rows, {meta['seconds']:.0f} s)")
    return 0


def _run_sections(args, rec, s) -> dict:
    """Each section of ``args.only`` in order: ``{name: info}`` (an error is that section's
    status; one broken section must not lose the others)."""
    import tensorflow as tf

    from bench.blur_bench import section_blur
    from bench.faces_bench import section_faces
    from bench.gpu import section_gpu
    from bench.infer import section_infer
    from bench.opts import section_opts
    from bench.train_bench import section_train

    gpus = tf.config.list_physical_devices("GPU")
    sizes = args.sizes
    plan = {
        "blur": lambda: section_blur(rec, s, args.quick),
        "train": lambda: section_train(rec, s, sizes or [128, 256], args.losses),
        "infer": lambda: section_infer(rec, s, sizes or [128, 256, 512], args.models, args.formats, args.fast_model),
        "faces": lambda: section_faces(rec, s, args.quick),
        "opts": lambda: section_opts(rec, s, args.quick, (sizes or [256])[0], (sizes or [128])[0], bool(gpus)),
        "gpu": lambda: section_gpu(rec, s, args.gpu_device, (sizes or [None])[0]) if (gpus or args.gpu_device != "/GPU:0") else
        {"status": "skipped: no GPU visible (tf.config.list_physical_devices('GPU') is empty)"},
    }
    sections = {}
    for name in SECTIONS:
        if name not in args.only:
            continue
        log(f"{name}:")
        t0 = time.perf_counter()
        try:
            info = plan[name]() or {}
            info.setdefault("status", "ok")
        except Exception as e:  # noqa: BLE001  one broken section must not lose the others
            log(traceback.format_exc())
            info = {"status": f"error: {type(e).__name__}: {str(e)[:300]}"}
        info["seconds"] = time.perf_counter() - t0
        sections[name] = info
        if name == "gpu" and info.get("status", "").startswith("skipped"):
            log(f"  {info['status']}")
    return sections


if __name__ == "__main__":
    sys.exit(main())
