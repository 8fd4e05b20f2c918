"""scripts/select_by_identity.py: the checkpoint with the least identity drift among those near the best PSNR."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import select_by_identity as sel  # noqa: E402


def test_selects_the_least_drift_within_the_psnr_tolerance():
    rows = [{"name": "a", "psnr": 23.50, "identity_drift": 0.20},
            {"name": "b", "psnr": 23.47, "identity_drift": 0.15},
            {"name": "c", "psnr": 23.30, "identity_drift": 0.05}]  # least drift, but 0.2 dB down
    assert sel.select(rows, 0.05) == "b"
    assert sel.select(rows, 0.5) == "c"
    assert sel.select(rows, 0.0) == "a"


def test_a_run_without_kept_generators_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "select_by_identity.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: no generator_<step>.keras in {str(tmp_path)!r} "
                                             "(train with train.keep_generators: true)"]
