"""Camera-shake blur kernels: random trajectories -> PSFs, presets, and kernel banks on disk.

Trajectories follow Boracchi & Foi (2012), as used by DeblurGAN (Kupyn et al. 2018), with the
reference implementation's defects fixed:

* kernels sum to 1 (the reference's ``cv2.normalize`` min-max call does not normalise the sum);
* the PSF's centre of mass sits on the kernel centre, so blurred and sharp images are aligned
  (the reference lands up to ~7 px off, which a network then learns as a shift);
* the canvas is sized to contain the whole path, so nothing is clamped (the reference clamps with
  an off-by-one at the canvas edge and piles mass on the border);
* no near-delta "short exposure" kernels unless ``p_identity`` / ``length`` ask for them.

Generation is vectorised over the bank: one numpy loop over trajectory *time steps*, with every
array holding all ``n`` trajectories at once. This module is numpy only; applying kernels to
images (TensorFlow) is :mod:`tfdeblur.blur`, which also re-exports everything here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

__all__ = [
    "KernelParams",
    "PRESETS",
    "kernel_params_from_config",
    "trajectories",
    "kernel_bank",
    "kernel_bank_loop",
    "linear_kernel_bank",
    "preset_bank",
    "indexed_bank",
    "save_bank",
    "load_bank",
    "kernel_centroid",
    "pad_kernels",
]


def _range(value, name, lo=None, hi=None):
    """Normalise a scalar or (min, max) pair and validate it; errors name the parameter."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        pair = (float(value), float(value))
    else:
        try:
            pair = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}") from None
        if len(pair) != 2:
            raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
    if not all(math.isfinite(v) for v in pair):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if pair[0] > pair[1]:
        raise ValueError(f"{name} must have min <= max, got {value!r}")
    if lo is not None and pair[0] < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value!r}")
    if hi is not None and pair[1] > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value!r}")
    return pair


@dataclass(frozen=True)
class KernelParams:
    """Parameters of the random trajectory distribution.

    Ranges are ``(min, max)`` and drawn uniformly per trajectory. ``length`` is the path length in
    pixels for images of ``image_size`` pixels (the shorter side); ``for_size`` rescales the bank
    for another image size (e.g. 128 for 128-pixel training images).
    """

    length: tuple = (10.0, 40.0)  # path length, px at image_size
    image_size: int = 256
    for_size: int | None = None
    anxiety: tuple = (0.0, 0.1)  # exploration factor ("expl" in Boracchi & Foi)
    centripetal: tuple = (0.0, 0.7)  # pull back towards the start
    gaussian_shake: tuple = (0.0, 10.0)  # random component of each new direction
    prob_big_shake: tuple = (0.0, 0.2)  # probability of an impulsive reversal (times anxiety)
    iters: int = 1000  # samples along the path
    p_identity: float = 0.0  # fraction of delta kernels (sharp pairs), 0 unless asked
    kernel_size: int | None = None  # odd canvas size; None = smallest that holds every path
    # Recorded camera shake is knottier than the smooth paths above (tfdeblur.knots):
    knots: tuple = (0, 0)  # sharp turns (90-180 degrees) per path, an integer range
    dwell: tuple = (0, 0)  # dwell points per path (the camera nearly stops: mass piles up)
    speed_jitter: float = 0.0  # uneven speed: std of the smooth log-speed profile
    defocus: tuple = (0.0, 0.0)  # disk radius, px at image_size, convolved with the path's PSF

    def validated(self) -> "KernelParams":
        length = _range(self.length, "length", lo=0.0)
        anxiety = _range(self.anxiety, "anxiety", lo=0.0, hi=1.0)
        centripetal = _range(self.centripetal, "centripetal", lo=0.0)
        shake = _range(self.gaussian_shake, "gaussian_shake", lo=0.0)
        big = _range(self.prob_big_shake, "prob_big_shake", lo=0.0, hi=1.0)
        if not isinstance(self.image_size, (int, np.integer)) or self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.for_size is not None and (
            not isinstance(self.for_size, (int, np.integer)) or self.for_size < 1
        ):
            raise ValueError(f"for_size must be a positive integer or None, got {self.for_size!r}")
        if not isinstance(self.iters, (int, np.integer)) or self.iters < 2:
            raise ValueError(f"iters must be an integer >= 2, got {self.iters!r}")
        if not (0.0 <= float(self.p_identity) <= 1.0):
            raise ValueError(f"p_identity must be in [0, 1], got {self.p_identity!r}")
        knots = _range(self.knots, "knots", lo=0.0, hi=16.0)
        dwell = _range(self.dwell, "dwell", lo=0.0, hi=16.0)
        defocus = _range(self.defocus, "defocus", lo=0.0, hi=20.0)
        if not (isinstance(self.speed_jitter, (int, float)) and 0.0 <= float(self.speed_jitter) <= 3.0):
            raise ValueError(f"speed_jitter must be in [0, 3], got {self.speed_jitter!r}")
        if self.kernel_size is not None and (
            not isinstance(self.kernel_size, (int, np.integer))
            or self.kernel_size < 1
            or self.kernel_size % 2 == 0
        ):
            raise ValueError(f"kernel_size must be an odd positive integer or None, got {self.kernel_size!r}")
        return replace(
            self,
            length=length,
            anxiety=anxiety,
            centripetal=centripetal,
            gaussian_shake=shake,
            prob_big_shake=big,
            p_identity=float(self.p_identity),
            knots=knots,
            dwell=dwell,
            defocus=defocus,
            speed_jitter=float(self.speed_jitter),
        )

    @property
    def knotty(self) -> bool:
        return self.knots[1] > 0 or self.dwell[1] > 0 or self.speed_jitter > 0

    @property
    def scale(self) -> float:
        return 1.0 if self.for_size is None else self.for_size / self.image_size

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# Named presets. "eval" is calibrated so that MTCNN misses 20-24% of blurred LFW faces at 256^2
# (the paper's blurred condition: 21.9%): on 1267 training-split LFW faces (every 3rd image),
# preset_bank("eval", n, seed=12345) -> 20.0% missed (Wilson 95% CI 17.9-22.3%; seed 2024: 21.2%),
# sharp 0%. See scripts/calibrate_eval_blur.py and the README's blur section.
PRESETS: dict[str, KernelParams] = {
    # Training covers the evaluation preset and more: shorter and longer, straighter and shakier
    # paths, plus 5% identity kernels so that sharp faces learn to pass through unharmed.
    "train": KernelParams(length=(5.0, 65.0), anxiety=(0.0, 0.1), p_identity=0.05),
    "eval": KernelParams(length=(40.0, 60.0), anxiety=(0.0, 0.05)),
    # Second-stage fine-tuning: mostly strong blur, where short-training-budget models gain most
    # (a side-by-side probe: +0.41 dB after 800 steps on strong blur vs +0.0 dB on "train").
    "train-heavy": KernelParams(length=(15.0, 70.0), anxiety=(0.0, 0.08), p_identity=0.05),
    # Frames and recorded-like shake (issue 17): stage 4's lengths with knots, dwell points,
    # uneven speed and mild defocus, so the model sees what real hand shake does.
    "train-knotty": KernelParams(length=(20.0, 65.0), anxiety=(0.0, 0.06), p_identity=0.05, knots=(0, 2),
                                 dwell=(0, 2), speed_jitter=0.5, defocus=(0.0, 1.0)),
    # Held out, never trained on: more knots, always a dwell point, stronger defocus (evaluation
    # adds noise and JPEG 60 on top: docs/blur.md). Nobody tunes to it.
    "eval-knotty": KernelParams(length=(35.0, 55.0), anxiety=(0.0, 0.05), knots=(2, 4), dwell=(1, 3),
                                speed_jitter=0.8, defocus=(0.5, 1.5)),
}


def _uniform(rng, pair, n):
    lo, hi = pair
    return rng.uniform(lo, hi, size=n) if hi > lo else np.full(n, lo)


def trajectories(n, p: KernelParams, rng: np.random.Generator) -> np.ndarray:
    """Complex positions [n, iters] of n camera-shake paths, each of its drawn length.

    Per path (complex numbers; ``v`` a unit velocity, ``ds`` the step length)::

        v <- normalise(v + impulse + expl * (shake * g * sqrt(ds) - centripetal * x * ds))
        x <- x + v * ds

    The loop runs over time steps with all ``n`` paths at once. What does not depend on the path
    state (the noise term, where and how impulses fire) is computed before the loop; the state is
    kept as interleaved (re, im) float arrays, updated in place. Every float operation is the one
    numpy's complex arithmetic does (a real times a complex is two real products; a complex
    divided by a real ``m`` is a product with ``1 / m``), and ``|v|`` and the impulse product still
    use numpy's complex routines, so a bank is bit-identical to the plain complex-array
    formulation (``tests/test_blur.py`` checks it against one).
    """
    T = p.iters
    length = _uniform(rng, p.length, n)
    expl = _uniform(rng, p.anxiety, n)
    centripetal = _uniform(rng, p.centripetal, n)
    shake = _uniform(rng, p.gaussian_shake, n)
    big = _uniform(rng, p.prob_big_shake, n)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    step_ref = length / (T - 1)  # each step has this length, so the path totals `length`

    # Draw all randomness up front (fixed order -> bit-identical banks for one seed), reusing one
    # [T-1, n] buffer: rng.random(out=) is rng.uniform(0, 1, size), value for value and draw for
    # draw, and g = normal + 1j * normal is stored interleaved, as a complex array would be.
    buf = np.empty((T - 1, n))
    u_big = rng.random(out=buf)
    # Impulsive reversals (probability big * expl per step): 2 v exp(i (pi + u - 1/2)).
    fire_t, fire_j = np.nonzero(u_big < big * expl)  # sorted by step
    u_dir = rng.random(size=(T - 1, n))
    turn = np.exp(1j * (np.pi + u_dir[fire_t, fire_j] - 0.5))
    del u_dir
    bounds = np.searchsorted(fire_t, np.arange(T), side="left")

    # As in the reference: perturbation relative to the unit velocity, pull towards the start
    # measured in pixels (at image_size, so the shape does not depend on for_size).
    # Rates are per pixel of path (noise ~ sqrt(ds), drift ~ ds), so a path's shape does not
    # depend on how finely it is sampled (the reference's does: more iters, more tangle).
    noise = np.empty((T - 1, n, 2))  # (shake * g) * sqrt(ds), interleaved (re, im)
    np.multiply(rng.standard_normal(out=buf), shake, out=noise[..., 0])
    np.multiply(rng.standard_normal(out=buf), shake, out=noise[..., 1])
    del buf, u_big
    noise = noise.reshape(T - 1, 2 * n)
    noise *= np.repeat(np.sqrt(step_ref), 2)

    centripetal2, step2, expl2 = np.repeat(centripetal, 2), np.repeat(step_ref, 2), np.repeat(expl, 2)
    v0 = np.exp(1j * angle)  # unit velocity; inertia keeps it, perturbations bend it
    v = v0.copy()
    V = v.view(np.float64)  # [2n] interleaved view of the complex state
    X = np.zeros((T, 2 * n))  # positions, interleaved; viewed as complex at the end
    tmp = np.empty(2 * n)
    mag = np.empty(n)
    for t in range(T - 1):
        a, b = bounds[t], bounds[t + 1]
        if a < b:
            j = fire_j[a:b]
            vj = v[j]
            v[j] = vj + 2.0 * vj * turn[a:b]
        # v += expl * (noise - (centripetal * x) * ds)
        np.multiply(centripetal2, X[t], out=tmp)
        tmp *= step2
        np.subtract(noise[t], tmp, out=tmp)
        tmp *= expl2
        V += tmp
        np.abs(v, out=mag)
        if mag.min() > 1e-12:
            np.divide(1.0, mag, out=mag)
            np.multiply(v, mag, out=v)  # complex * real: (re * m, im * m) exactly
        else:  # a vanishing velocity restarts in the initial direction
            small = mag <= 1e-12
            np.maximum(mag, 1e-12, out=mag)
            np.divide(1.0, mag, out=mag)
            np.multiply(v, mag, out=v)
            v[small] = v0[small]
        np.multiply(V, step2, out=tmp)
        np.add(X[t], tmp, out=X[t + 1])
    x = X.view(np.complex128)  # [T, n]
    if p.scale != 1.0:
        x = x * p.scale
    return x.T  # [n, T] (a view: time-major in memory)


def _rasterise(x: np.ndarray, identity: np.ndarray, kernel_size: int | None) -> np.ndarray:
    """Bilinear sub-pixel splatting of centred paths into [n, k, k] PSFs summing to 1."""
    n, T = x.shape
    # Centre every path on its own centroid: bilinear splatting preserves the centroid, so the
    # PSF's centre of mass lands exactly on the kernel centre. (Centring happens block by block
    # below; identity paths are set to their mean, so they centre to exactly 0.)
    mean = x.mean(axis=1)
    if identity.any():
        x = x.copy()
        x[identity] = mean[identity, None]
    mr, mi = mean.real, mean.imag
    # Largest |coordinate| of the centred paths. Rounding is monotonic, so the largest |x - m|
    # over a path is max(xmax - m, m - xmin), computed exactly as elementwise would give.
    extent = float(max((x.real.max(axis=1) - mr).max(), (mr - x.real.min(axis=1)).max(),
                       (x.imag.max(axis=1) - mi).max(), (mi - x.imag.min(axis=1)).max()))
    needed = 2 * int(math.floor(extent)) + 3  # +1 per side for the bilinear neighbour
    if kernel_size is None:
        k = needed
    else:
        k = int(kernel_size)
        if k < needed:
            raise ValueError(
                f"kernel_size={k} is too small for these paths (needs {needed}); "
                "raise kernel_size or lower length"
            )
    c = (k - 1) / 2.0
    w = 1.0 / T
    kk = k * k
    out = np.empty((n, k, k), np.float32)
    xt = x.T  # [T, n]
    # A block of paths at a time, so temporaries and the histogram stay in cache. Splats are laid
    # out [corner, step, path]: neighbouring adds hit different paths' bins (no dependency
    # chains), while each bin still receives its adds in the order (corner, step), so the sums
    # are the same, bit for bit, as one bincount over [path, corner, step].
    m = min(n, 32)
    bufs = None
    for i0 in range(0, n, m):
        xs = xt[:, i0 : i0 + m]
        mm = xs.shape[1]
        if bufs is None or mm != m:
            bufs = _splat_buffers(T, mm, kk)
        pos, fl, g, lin, idx, wts, offs = bufs
        np.subtract(xs.real, mr[i0 : i0 + mm], out=pos[0])
        np.subtract(xs.imag, mi[i0 : i0 + mm], out=pos[1])
        pos += c
        np.floor(pos, out=fl)
        pos -= fl  # fractional parts (fx, fy)
        np.multiply(fl[1], k, out=lin)
        lin += fl[0]
        lin += offs
        idx[0] = lin
        if fl.max() >= k - 1:
            # A neighbour with zero weight would fall one past the edge: keep it on the canvas
            # (its weight is exactly 0, so no mass moves -- unlike the reference's off-by-one).
            edge = fl >= k - 1
            dx = (~edge[0]).astype(np.int64)
            np.add(idx[0], dx, out=idx[1])
            np.add(idx[0], (~edge[1]).astype(np.int64) * k, out=idx[2])
            np.add(idx[2], dx, out=idx[3])
        else:
            np.add(idx[0], 1, out=idx[1])
            np.add(idx[0], k, out=idx[2])
            np.add(idx[0], k + 1, out=idx[3])
        np.subtract(1, pos, out=g)  # (1 - fx, 1 - fy)
        np.multiply(g[0], g[1], out=wts[0])
        np.multiply(pos[0], g[1], out=wts[1])
        np.multiply(g[0], pos[1], out=wts[2])
        np.multiply(pos[0], pos[1], out=wts[3])
        wts *= w
        psf = np.bincount(idx.reshape(-1), weights=wts.reshape(-1), minlength=mm * kk).reshape(mm, k, k)
        np.divide(psf, psf.sum(axis=(1, 2), keepdims=True), out=out[i0 : i0 + mm], casting="same_kind")
    return out


def _splat_buffers(T, m, kk):
    f = lambda *shape: np.empty(shape)  # noqa: E731
    return (f(2, T, m), f(2, T, m), f(2, T, m), f(T, m), np.empty((4, T, m), np.int64), f(4, T, m),
            np.arange(0, m * kk, kk, dtype=np.float64))


def kernel_bank(n: int, seed: int | None = 0, params: KernelParams | None = None, **overrides) -> np.ndarray:
    """Return ``n`` random camera-shake PSFs as float32 ``[n, k, k]``, each summing to 1.

    ``params`` (a :class:`KernelParams`) or keyword overrides of its fields set the distribution,
    e.g. ``kernel_bank(100, seed=1, length=(20, 40))``. The same seed gives the same bank, bit
    for bit.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    unknown = set(overrides) - set(KernelParams.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown kernel parameter(s): {', '.join(sorted(unknown))}")
    p = replace(params or KernelParams(), **overrides).validated()
    rng = np.random.default_rng(seed)
    identity = rng.uniform(size=n) < p.p_identity
    x = trajectories(int(n), p, rng)
    if not (p.knotty or p.defocus[1] > 0):  # (so banks of the smooth presets stay bit-identical)
        return _rasterise(x, identity, p.kernel_size)
    from tfdeblur import knots

    if p.knotty:
        x = knots.roughen_paths(x, p, rng)
    margin = knots.defocus_margin(p)
    inner = None if p.kernel_size is None else p.kernel_size - 2 * margin
    if inner is not None and inner < 3:
        raise ValueError(f"kernel_size={p.kernel_size} is too small for defocus up to {p.defocus[1]} px")
    psf = _rasterise(x, identity, inner)
    return knots.defocus_kernels(psf, p, rng, identity)


def kernel_bank_loop(n: int, seed: int | None = 0, params: KernelParams | None = None, **overrides) -> np.ndarray:
    """Same algorithm as :func:`kernel_bank`, one sample at a time (the benchmark's baseline)."""
    p = replace(params or KernelParams(), **overrides).validated()
    out = []
    for i in range(n):
        rng = np.random.default_rng(None if seed is None else [seed, i])
        identity = rng.uniform(size=1) < p.p_identity
        T = p.iters
        length = _uniform(rng, p.length, 1)[0]
        expl = _uniform(rng, p.anxiety, 1)[0]
        centripetal = _uniform(rng, p.centripetal, 1)[0]
        shake = _uniform(rng, p.gaussian_shake, 1)[0]
        big = _uniform(rng, p.prob_big_shake, 1)[0]
        angle = rng.uniform(0.0, 2.0 * np.pi)
        step = length / (T - 1)
        v = complex(np.cos(angle), np.sin(angle))
        x = [0j]
        for t in range(T - 1):
            impulse = 0j
            if rng.uniform() < big * expl:
                impulse = 2.0 * v * np.exp(1j * (np.pi + rng.uniform() - 0.5))
            g = complex(rng.standard_normal(), rng.standard_normal())
            v = v + impulse + expl * (shake * g * np.sqrt(step) - centripetal * x[-1] * step)
            v = v / abs(v) if abs(v) > 1e-12 else complex(np.cos(angle), np.sin(angle))
            x.append(x[-1] + v * step)
        out.append((np.array(x) * p.scale, identity[0]))
    kernels = [_rasterise(x[None], np.array([ident]), None)[0] for x, ident in out]
    return pad_kernels(kernels, p.kernel_size)


def linear_kernel_bank(
    n: int, seed: int | None = 0, length=(25.0, 40.0), curvature=(0.0, 0.0), image_size: int = 256,
    for_size: int | None = None, iters: int = 256, kernel_size: int | None = None,
) -> np.ndarray:
    """Straight or circular-arc motion PSFs (a blur family unlike camera shake).

    ``curvature`` is the total turning angle of the arc in radians (0 = straight line).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    length = _range(length, "length", lo=0.0)
    curvature = _range(curvature, "curvature", lo=0.0, hi=2 * np.pi)
    if not isinstance(iters, (int, np.integer)) or iters < 2:
        raise ValueError(f"iters must be an integer >= 2, got {iters!r}")
    scale = 1.0 if for_size is None else for_size / image_size
    rng = np.random.default_rng(seed)
    L = _uniform(rng, length, n) * scale
    turn = _uniform(rng, curvature, n) * rng.choice([-1.0, 1.0], size=n)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    s = np.linspace(0.0, 1.0, iters)[None, :]
    theta = angle[:, None] + turn[:, None] * s  # heading along the path
    dtheta = np.exp(1j * theta) * (L[:, None] / (iters - 1))
    x = np.concatenate([np.zeros((n, 1)), np.cumsum(dtheta[:, :-1], axis=1)], axis=1)
    return _rasterise(x, np.zeros(n, dtype=bool), kernel_size)


def preset_bank(name: str, n: int, seed=0, **overrides) -> np.ndarray:
    """A bank drawn from a named preset ("train", "eval")."""
    if name not in PRESETS:
        raise ValueError(f"unknown blur preset {name!r}; choose from {sorted(PRESETS)}")
    return kernel_bank(n, seed=seed, params=PRESETS[name], **overrides)


def indexed_bank(name: str, n: int, seed: int = 0, chunk: int = 256) -> np.ndarray:
    """Like :func:`preset_bank`, but kernel ``i`` depends only on ``(seed, i)``, not on ``n``.

    Evaluating the first 10 or the first 1000 images then blurs image ``i`` the same way.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    chunks = [preset_bank(name, chunk, seed=[seed, c]) for c in range(-(-n // chunk))]
    return pad_kernels([k for bank in chunks for k in bank][:n])


def pad_kernels(kernels, kernel_size: int | None = None) -> np.ndarray:
    """Zero-pad a list of odd square kernels to one common odd size (centres stay centred)."""
    k = max(kk.shape[0] for kk in kernels)
    if kernel_size is not None:
        if kernel_size < k:
            raise ValueError(f"kernel_size={kernel_size} is smaller than a kernel ({k})")
        k = kernel_size
    out = np.zeros((len(kernels), k, k), np.float32)
    for i, kk in enumerate(kernels):
        o = (k - kk.shape[0]) // 2
        out[i, o : o + kk.shape[0], o : o + kk.shape[1]] = kk
    return out


def kernel_centroid(kernels: np.ndarray) -> np.ndarray:
    """Centre of mass of each kernel relative to the kernel centre, [n, 2] as (dy, dx) px."""
    kernels = np.asarray(kernels, np.float64)
    n, k, _ = kernels.shape
    coords = np.arange(k) - (k - 1) / 2.0
    mass = kernels.sum(axis=(1, 2))
    dy = (kernels.sum(axis=2) * coords).sum(axis=1) / mass
    dx = (kernels.sum(axis=1) * coords).sum(axis=1) / mass
    return np.stack([dy, dx], axis=1)


def save_bank(path, kernels: np.ndarray, params: KernelParams | dict | None = None, **extra) -> None:
    """Save a bank with its parameters (as JSON) to ``.npz``."""
    meta = params.to_dict() if isinstance(params, KernelParams) else dict(params or {})
    np.savez_compressed(path, kernels=np.asarray(kernels, np.float32), params=json.dumps(meta), **extra)


def load_bank(path) -> tuple[np.ndarray, dict]:
    """Load ``(kernels, params)`` saved by :func:`save_bank` (or any npz with ``kernels``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "kernels" not in z:
                raise ValueError(f"{path}: no 'kernels' array in this .npz")
            kernels = z["kernels"].astype(np.float32)
            params = json.loads(str(z["params"])) if "params" in z else {}
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable kernel bank ({e})") from None
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2] or kernels.shape[1] % 2 == 0:
        raise ValueError(f"{path}: kernels must have shape [n, k, k] with odd k, got {kernels.shape}")
    return kernels, params


def kernel_params_from_config(blur_cfg) -> KernelParams:
    """A config's ``data.blur`` (a preset name plus KernelParams fields overriding it) as
    validated KernelParams; a ConfigError names what is wrong."""
    from tfdeblur.config import ConfigError

    blur_cfg = dict(blur_cfg or {})
    preset = blur_cfg.pop("preset", "train")
    try:
        kparams = PRESETS[preset] if preset else KernelParams()
        return replace(kparams, **blur_cfg).validated() if blur_cfg else kparams.validated()
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"data.blur: {e}") from None
