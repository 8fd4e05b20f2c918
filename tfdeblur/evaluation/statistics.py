"""Statistics of the evaluation: binomial intervals, McNemar's exact test, t-intervals of means."""

from __future__ import annotations

import numpy as np

__all__ = ["wilson_interval", "mcnemar_exact", "mcnemar_test", "mean_ci95", "paired_difference"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    Under the null each discordant pair goes either way with probability 1/2, so the p-value is
    the two-sided binomial test of ``b`` successes in ``b + c`` trials (= ``min(1, 2 *
    Binom(b + c, 1/2).cdf(min(b, c)))``). No discordant pairs gives p = 1.
    """
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(min(1.0, binomtest(b, b + c, 0.5).pvalue))


def mcnemar_test(success_a, success_b) -> dict:
    """Paired comparison of two boolean outcome vectors: ``{"p", "b", "c", "n"}`` where ``b``
    counts pairs that only A got right and ``c`` those only B got right."""
    a = np.asarray(success_a, bool)
    b_ = np.asarray(success_b, bool)
    if a.shape != b_.shape:
        raise ValueError(f"outcome vectors differ in length: {a.shape} vs {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    return {"p": mcnemar_exact(b, c), "b": b, "c": c, "n": int(a.size)}


def mean_ci95(values):
    """Mean of per-image values and its 95% Student-t interval: ``(mean, [lo, hi])``.

    ``(None, None)`` when a value is not finite (PSNR of an unchanged image is infinite) or
    there are none; the interval is ``None`` for a single value.
    """
    from scipy import stats

    x = np.asarray(values, np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        return None, None
    mean = float(x.mean())
    if x.size < 2:
        return mean, None
    sem = float(stats.sem(x))
    if sem == 0.0:
        return mean, [mean, mean]
    lo, hi = stats.t.interval(0.95, x.size - 1, loc=mean, scale=sem)
    return mean, [float(lo), float(hi)]


def paired_difference(a, b) -> dict:
    """Per-image ``b - a`` (e.g. restored minus blurred PSNR): mean, 95% interval, n."""
    mean, ci = mean_ci95(np.asarray(b, np.float64) - np.asarray(a, np.float64))
    return {"mean": mean, "ci95": ci, "n": int(np.size(a))}
