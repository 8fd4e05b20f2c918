"""What the evaluation modules share: the conditions, sizes and thresholds, the paper's numbers,
and the one error type."""

from __future__ import annotations

import math

__all__ = ["EVAL_SIZE", "IOU_THRESHOLD", "CONDITIONS", "REPORT_ROWS", "PAPER_TABLE1", "EvaluationError",
           "finite_or_none"]

EVAL_SIZE = 256
IOU_THRESHOLD = 0.5
CONDITIONS = ("sharp", "blurred", "restored", "sharp_restored")
REPORT_ROWS = (("blurred", "Blurred"), ("restored", "Restored"), ("sharp_restored", "Sharp-restored"), ("sharp", "Sharp"))
# Fan & Luo, Table 1: MTCNN failure rates on LFW (mean confidence ~0.99 in every row).
PAPER_TABLE1 = {
    "failure_rate": {"blurred": 0.219, "restored_gan": 0.0736, "restored_lsgan": 0.0661,
                     "restored_wgan_gp": 0.0623, "sharp": 0.0323},
    "confidence_mean": 0.99,
}


class EvaluationError(Exception):
    """A user error (bad folder, bad model, unmatched pairs); str() is one line."""


def finite_or_none(x):
    """``x`` as a float, or None when it is missing or not finite (JSON has no inf / nan)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
