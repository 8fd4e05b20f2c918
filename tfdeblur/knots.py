"""Knottier camera shake: sharp turns, dwell points, uneven speed and mild defocus.

Camera shake recorded in real photographs (e.g. Köhler et al. 2012) is not the smooth random walk
of Boracchi & Foi: the hand stops and starts, so the PSF has bright dwell points and uneven
brightness along the path; it turns sharply; and the lens is rarely perfectly focused. These
post-process the trajectories of :func:`tfdeblur.kernels.trajectories` (complex positions
``[n, T]``, uniform in arc length) and the rasterised PSFs. All randomness comes from the bank's
own generator, so a bank is still a pure function of its seed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["roughen_paths", "defocus_margin", "defocus_kernels", "disk"]


def _counts(rng, pair, n):
    lo, hi = int(round(pair[0])), int(round(pair[1]))
    return rng.integers(lo, hi + 1, size=n)


def roughen_paths(x: np.ndarray, p, rng: np.random.Generator) -> np.ndarray:
    """Knots (the rest of the path turned by 90-180 degrees at a random point) and a new timing:
    a smooth log-normal speed profile with ``dwell`` near-stops, so exposure (PSF mass) is uneven
    along the path while its shape and length stay the same."""
    n, T = x.shape
    inc = np.diff(x, axis=1)  # [n, T-1], equal lengths
    for j, k in enumerate(_counts(rng, p.knots, n)):
        for t in np.sort(rng.integers(T // 10, T - T // 10, size=k)):
            turn = rng.uniform(0.5 * np.pi, np.pi) * rng.choice([-1.0, 1.0])
            inc[j, t:] *= np.exp(1j * turn)
    path = np.concatenate([np.zeros((n, 1), inc.dtype), np.cumsum(inc, axis=1)], axis=1)

    # Speed over time: exp of a few random low-frequency sinusoids, times dips at dwell points.
    tau = np.linspace(0.0, 1.0, T - 1)[None, :]
    log_speed = np.zeros((n, T - 1))
    if p.speed_jitter > 0:
        for _ in range(3):
            freq = rng.uniform(0.5, 3.0, size=(n, 1))
            phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
            log_speed += p.speed_jitter / math.sqrt(3) * rng.standard_normal((n, 1)) * np.sin(2 * np.pi * freq * tau + phase)
    speed = np.exp(log_speed)
    for j, k in enumerate(_counts(rng, p.dwell, n)):
        for _ in range(k):
            centre, width = rng.uniform(0.0, 1.0), rng.uniform(0.02, 0.08)
            depth = rng.uniform(0.9, 0.98)  # speed drops to 2-10%: the camera nearly stops
            speed[j] *= 1.0 - depth * np.exp(-0.5 * ((tau[0] - centre) / (width / 2)) ** 2)
    # Arc-length index reached at each (uniform) time step; sampling the path there makes a
    # slow stretch hold many samples, i.e. much PSF mass.
    u = np.concatenate([np.zeros((n, 1)), np.cumsum(speed, axis=1)], axis=1)
    u *= (T - 1) / u[:, -1:]
    i0 = np.minimum(np.floor(u).astype(np.int64), T - 2)
    frac = u - i0
    rows = np.arange(n)[:, None]
    return path[rows, i0] * (1 - frac) + path[rows, i0 + 1] * frac


def defocus_margin(p) -> int:
    """Pixels per side that defocus can add to a PSF."""
    return int(math.ceil(p.defocus[1] * p.scale)) if p.defocus[1] > 0 else 0


def disk(radius: float, size: int | None = None) -> np.ndarray:
    """An antialiased uniform disk of ``radius`` px (a defocus PSF), odd ``size``, sum 1."""
    r = max(float(radius), 0.0)
    size = size or 2 * int(math.ceil(r)) + 1
    c = (size - 1) / 2
    sub = (np.arange(size * 4) + 0.5) / 4 - 0.5 - c  # 4x4 supersampling per pixel
    yy, xx = np.meshgrid(sub, sub, indexing="ij")
    inside = (xx ** 2 + yy ** 2 <= max(r, 0.5) ** 2).astype(np.float64)
    d = inside.reshape(size, 4, size, 4).mean(axis=(1, 3))
    return (d / d.sum()).astype(np.float32)


def defocus_kernels(psf: np.ndarray, p, rng: np.random.Generator, identity=None) -> np.ndarray:
    """Convolve each PSF with a disk of a radius drawn from ``p.defocus`` (identity kernels stay
    deltas); the canvas grows by :func:`defocus_margin` per side, or to ``p.kernel_size``."""
    from scipy.signal import fftconvolve

    margin = defocus_margin(p)
    n, k, _ = psf.shape
    size = p.kernel_size or k + 2 * margin
    radii = rng.uniform(p.defocus[0], p.defocus[1], size=n) * p.scale if p.defocus[1] > 0 else np.zeros(n)
    out = np.zeros((n, size, size), np.float32)
    o = (size - k) // 2
    for i in range(n):
        kernel = psf[i]
        if radii[i] > 0.25 and not (identity is not None and identity[i]):
            kernel = fftconvolve(kernel, disk(radii[i], 2 * margin + 1), mode="full")
            kernel = np.clip(kernel, 0, None)
            oo = (size - kernel.shape[0]) // 2
            out[i, oo:oo + kernel.shape[0], oo:oo + kernel.shape[1]] = kernel
        else:
            out[i, o:o + k, o:o + k] = kernel
        out[i] /= out[i].sum()
    return out
