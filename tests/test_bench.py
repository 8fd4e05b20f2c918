"""Smoke test for ``python -m bench``: it runs and writes the documented JSON.

Benchmarks are not tests: nothing here checks a speed, only that the entry point works end to
end (peak measurement, the infer section on the lean model, the table and the JSON layout).
"""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROW_KEYS = {"section", "what", "config", "input", "batch", "rate", "unit", "rate_best", "iters",
            "gmac_per_img", "gflops", "frac_peak", "device", "note"}


def test_bench_quick_infer_smoke(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", "infer", "--models", "lean,fast", "--sizes", "32",
           "--formats", "keras,keras-bf16,tflite-fp32", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GMAC/img" in proc.stdout and "%peak" in proc.stdout  # the printed table

    res = json.loads(out.read_text())
    assert {"meta", "peak", "sections", "rows", "speedups"} <= set(res)
    assert res["meta"]["quick"] is True
    assert res["peak"]["gflops"] > 0 and res["peak"]["n"] == 2048
    assert res["sections"]["infer"]["status"] == "ok"
    assert list(res["sections"]) == ["infer"]  # --only is honoured

    rows = res["rows"]
    assert [(r["model"], r["format"], r["input"], r["batch"]) for r in rows] == [
        ("lean", "keras", "32x32", 8),
        ("lean", "keras-bf16", "32x32", 8),
        ("lean", "tflite-fp32", "32x32", 1),
        ("fast", "keras", "32x32", 8),
        ("fast", "keras-bf16", "32x32", 8),
        ("fast", "tflite-fp32", "32x32", 1),
    ]
    # the fast model has fewer ResNet blocks than the shipped one: fewer MACs
    assert rows[3]["gmac_per_img"] < rows[0]["gmac_per_img"]
    assert rows[1]["gmac_per_img"] == rows[0]["gmac_per_img"]  # same model, other precision
    for r in rows:
        assert ROW_KEYS <= set(r), r
        assert "error" not in r, r["error"]
        assert r["section"] == "infer" and r["unit"] == "img/s"
        assert r["rate"] > 0 and r["gmac_per_img"] > 0
        assert abs(r["gflops"] - 2 * r["gmac_per_img"] * r["rate"]) < 1e-6 * r["gflops"]
        assert abs(r["frac_peak"] - r["gflops"] / res["peak"]["gflops"]) < 1e-9
    # the TFLite model computes what the Keras model computes (a broken conversion gives NaN)
    assert rows[2]["max_abs_diff_vs_keras"] < 0.05 and rows[5]["max_abs_diff_vs_keras"] < 0.05
    # bfloat16 rows are compared with float32 Keras too (close, not equal)
    assert 0 < rows[1]["max_abs_diff_vs_keras"] < 0.05 and 0 < rows[4]["max_abs_diff_vs_keras"] < 0.05
    assert isinstance(res["meta"]["cpu_bf16"], list)
    bf16 = [x for x in res["speedups"] if x["what"].startswith("bfloat16 vs float32")]
    assert [x["what"].split(", ")[-2] for x in bf16] == ["lean", "fast"]
    assert all(x["speedup"] == pytest.approx(x["optimised_rate"] / x["baseline_rate"]) for x in bf16)
