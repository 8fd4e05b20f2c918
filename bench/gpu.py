"""The ``gpu`` section (only when a GPU is visible): the paper setting's training step and
paper-generator inference on the GPU, float32 and mixed_float16, XLA off and on."""

from __future__ import annotations

import gc
import os

from bench.common import PAPER_CONFIG, REPO, gen_desc, guarded, infer_row, load_cfg, measure_peak
from bench.train_bench import time_train_step
from tfdeblur.config import GAN_LOSSES

def section_gpu(rec, s, device="/GPU:0", size=None):
    """Paper setting on the GPU: training step (paper config, 256², batch 1 as in the paper and
    batch 8) and paper-generator inference, fp32 and mixed_float16, XLA off/on."""
    import keras

    from tfdeblur.models import build_generator

    dev = device.strip("/").replace("device:", "")
    cfg = load_cfg(PAPER_CONFIG)
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
            for k in GAN_LOSSES:
                what = f"train step {k}"
                guarded(rec, "gpu", what, "configs/paper.yaml", size, b,
                         lambda: time_train_step(rec, "gpu", k, cfg, size, b, s, what=what, device=dev,
                                                 note="paper config, random batch"), device=dev)
                gc.collect()
        desc = f"paper: {gen_desc({'ngf': 64, 'n_blocks': 6})}"
        for policy in ("float32", "mixed_float16"):
            keras.mixed_precision.set_global_policy(policy)
            try:
                keras.utils.set_random_seed(0)
                model = build_generator(64, 6)
                rows = {}
                for xla in (False, True):
                    for b in (1, 8):
                        what = f"infer {policy} xla={'on' if xla else 'off'}"
                        rows[(xla, b)] = guarded(
                            rec, "gpu", what, desc, size, b,
                            lambda: infer_row(rec, "gpu", what, model, desc, size, b, s, xla=xla, device=dev,
                                               precision=policy), device=dev)
                rec.speedup("gpu", f"XLA, inference {policy}, paper, batch 8", rows[(False, 8)], rows[(True, 8)])
                what = f"train step {kind} {policy}"
                rows[policy] = guarded(
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
