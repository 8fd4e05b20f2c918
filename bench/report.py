"""The benchmark's output: the printed table and the run's metadata (machine, versions, load)."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict

from bench.infer import GOAL_IMG_S, GOAL_RATIO

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


def run_meta(args, s):
    """What the numbers depend on: versions, the machine, threads, oneDNN, the load at the start."""
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


def summary_lines(sections: dict, quick: bool) -> list:
    """Lines under the table: the lean/fast vs paper headlines against the goals, sections that
    did not finish, and the quick-mode warning."""
    extra = []
    lvp = sections.get("infer", {}).get("lean_vs_paper", {})
    for m, h, how in ([(m, h, "Keras") for m, h in lvp.get("headlines", {}).items()]
                      + [(m, h, "Keras, both bfloat16") for m, h in lvp.get("headlines_bf16", {}).items()]):
        extra += ["", f"{m} / paper at 256x256, batch 8 ({how}): {h['ratio']:.1f}x "
                      f"(goal >= {GOAL_RATIO:g}x: {'met' if h['ratio_goal_met'] else 'NOT met'}); "
                      f"{m} {h['img_s']:.1f} img/s (goal >= {GOAL_IMG_S:g}: "
                      f"{'met' if h['img_s_goal_met'] else 'NOT met'})"]
    for name, info in sections.items():
        if str(info.get("status", "ok")) != "ok":
            extra.append(f"{name}: {info['status']}")
    if quick:
        extra += ["", "QUICK MODE: one call per row; these numbers are not measurements."]
    return extra
