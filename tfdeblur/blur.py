"""Motion-blur synthesis: camera-shake trajectories -> PSFs -> blurred images.

Trajectories follow Boracchi & Foi (2012), as used by DeblurGAN (Kupyn et al. 2018), with the
reference implementation's defects fixed:

* kernels sum to 1 (the reference's ``cv2.normalize`` min-max call does not normalise the sum);
* the PSF's centre of mass sits on the kernel centre, so blurred and sharp images are aligned
  (the reference lands up to ~7 px off, which a network then learns as a shift);
* the canvas is sized to contain the whole path, so nothing is clamped (the reference clamps with
  an off-by-one at the canvas edge and piles mass on the border);
* no near-delta "short exposure" kernels unless ``p_identity`` / ``length`` ask for them;
* blurred images are not min-max stretched: a pair differs by blur (and optional noise) only.

Generation is vectorised over the bank: one numpy loop over trajectory *time steps*, with every
array holding all ``n`` trajectories at once.

Application is a true convolution (kernel flipped, then correlated), done as a TensorFlow
depthwise convolution with the batch folded into channels, so it runs inside ``tf.data`` and on
GPU.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import tensorflow as tf

__all__ = [
    "KernelParams",
    "PRESETS",
    "kernel_bank",
    "kernel_bank_loop",
    "linear_kernel_bank",
    "preset_bank",
    "save_bank",
    "load_bank",
    "blur_images",
    "blur_valid",
    "add_noise",
    "jpeg_roundtrip",
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
        )

    @property
    def scale(self) -> float:
        return 1.0 if self.for_size is None else self.for_size / self.image_size

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# Named presets. "eval" is calibrated so that MTCNN misses ~20-24% of blurred LFW faces at 256^2
# (the paper's blurred condition: 21.9%); see README "Evaluation preset" for the calibration run.
PRESETS: dict[str, KernelParams] = {
    # Training covers the evaluation preset and more: shorter and longer, straighter and shakier
    # paths, plus 5% identity kernels so that sharp faces learn to pass through unharmed.
    "train": KernelParams(length=(5.0, 65.0), anxiety=(0.0, 0.1), p_identity=0.05),
    "eval": KernelParams(length=(40.0, 60.0), anxiety=(0.0, 0.05)),
}


def _uniform(rng, pair, n):
    lo, hi = pair
    return rng.uniform(lo, hi, size=n) if hi > lo else np.full(n, lo)


def _trajectories(n, p: KernelParams, rng: np.random.Generator) -> np.ndarray:
    """Complex positions [n, iters] of n camera-shake paths, each of its drawn length."""
    T = p.iters
    length = _uniform(rng, p.length, n)
    expl = _uniform(rng, p.anxiety, n)
    centripetal = _uniform(rng, p.centripetal, n)
    shake = _uniform(rng, p.gaussian_shake, n)
    big = _uniform(rng, p.prob_big_shake, n)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    step_ref = length / (T - 1)  # each step has this length, so the path totals `length`

    # Draw all randomness up front (fixed order -> bit-identical banks for one seed).
    u_big = rng.uniform(size=(T - 1, n))
    u_dir = rng.uniform(size=(T - 1, n))
    g = rng.standard_normal(size=(T - 1, n)) + 1j * rng.standard_normal(size=(T - 1, n))

    v = np.exp(1j * angle)  # unit velocity; inertia keeps it, perturbations bend it
    x = np.zeros((T, n), dtype=np.complex128)
    for t in range(T - 1):
        impulse = np.where(u_big[t] < big * expl, 2.0 * v * np.exp(1j * (np.pi + u_dir[t] - 0.5)), 0.0)
        # As in the reference: perturbation relative to the unit velocity, pull towards the start
        # measured in pixels (at image_size, so the shape does not depend on for_size).
        # Rates are per pixel of path (noise ~ sqrt(ds), drift ~ ds), so a path's shape does not
        # depend on how finely it is sampled (the reference's does: more iters, more tangle).
        v = v + impulse + expl * (shake * g[t] * np.sqrt(step_ref) - centripetal * x[t] * step_ref)
        mag = np.abs(v)
        v = np.where(mag > 1e-12, v / np.maximum(mag, 1e-12), np.exp(1j * angle))
        x[t + 1] = x[t] + v * step_ref
    return (x * p.scale).T  # [n, T]


def _rasterise(x: np.ndarray, identity: np.ndarray, kernel_size: int | None) -> np.ndarray:
    """Bilinear sub-pixel splatting of centred paths into [n, k, k] PSFs summing to 1."""
    n, T = x.shape
    # Centre every path on its own centroid: bilinear splatting preserves the centroid, so the
    # PSF's centre of mass lands exactly on the kernel centre.
    x = x - x.mean(axis=1, keepdims=True)
    x = np.where(identity[:, None], 0.0, x)
    extent = float(np.max(np.maximum(np.abs(x.real), np.abs(x.imag)))) if n else 0.0
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
    px = x.real + c
    py = x.imag + c
    x0 = np.floor(px).astype(np.int64)
    y0 = np.floor(py).astype(np.int64)
    fx = px - x0
    fy = py - y0
    # Neighbours with zero weight may fall one past the edge; clip them onto the canvas (their
    # weight is exactly 0, so no mass moves -- unlike the reference's off-by-one clamp).
    x1 = np.minimum(x0 + 1, k - 1)
    y1 = np.minimum(y0 + 1, k - 1)
    base = (np.arange(n, dtype=np.int64) * k * k)[:, None]
    w = 1.0 / T
    idx = np.concatenate([base + y0 * k + x0, base + y0 * k + x1, base + y1 * k + x0, base + y1 * k + x1], axis=1)
    wts = np.concatenate(
        [(1 - fx) * (1 - fy) * w, fx * (1 - fy) * w, (1 - fx) * fy * w, fx * fy * w], axis=1
    )
    psf = np.bincount(idx.ravel(), weights=wts.ravel(), minlength=n * k * k).reshape(n, k, k)
    psf /= psf.sum(axis=(1, 2), keepdims=True)
    return psf.astype(np.float32)


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
    x = _trajectories(int(n), p, rng)
    return _rasterise(x, identity, p.kernel_size)


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


def preset_bank(name: str, n: int, seed: int = 0, **overrides) -> np.ndarray:
    """A bank drawn from a named preset ("train", "eval")."""
    if name not in PRESETS:
        raise ValueError(f"unknown blur preset {name!r}; choose from {sorted(PRESETS)}")
    return kernel_bank(n, seed=seed, params=PRESETS[name], **overrides)


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


# ----------------------------------------------------------------------------- TensorFlow side


def _depthwise_batch(images, kernels, padding):
    """Convolve image b with kernel b (true convolution), batch folded into channels."""
    images = tf.convert_to_tensor(images)
    kernels = tf.cast(tf.convert_to_tensor(kernels), images.dtype)
    shape = tf.shape(images)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    x = tf.transpose(images, [1, 2, 0, 3])  # [H, W, B, C]
    x = tf.reshape(x, [1, h, w, b * c])
    k = tf.reverse(kernels, axis=[1, 2])  # flip: correlation with flipped kernel == convolution
    k = tf.transpose(k, [1, 2, 0])  # [k, k, B]
    k = tf.repeat(k, c, axis=2)[..., None]  # [k, k, B*C, 1], channel-major per image
    y = tf.nn.depthwise_conv2d(x, k, strides=[1, 1, 1, 1], padding=padding)
    ho, wo = tf.shape(y)[1], tf.shape(y)[2]
    y = tf.reshape(y, [ho, wo, b, c])
    return tf.transpose(y, [2, 0, 1, 3])


def blur_images(images, kernels):
    """Blur a float batch ``[B, H, W, C]`` with one kernel each ``[B, k, k]``; same-size output.

    Borders are reflect-padded (like ``cv2.BORDER_REFLECT_101``, cv2's default).
    """
    images = tf.convert_to_tensor(images)
    if images.dtype not in (tf.float16, tf.bfloat16, tf.float32, tf.float64):
        images = tf.cast(images, tf.float32)
    kernels = tf.convert_to_tensor(kernels)
    r = tf.shape(kernels)[1] // 2
    x = tf.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    return _depthwise_batch(x, kernels, "VALID")


def blur_valid(images, kernels):
    """Blur without padding: ``[B, H, W, C]`` -> ``[B, H-k+1, W-k+1, C]``.

    Used on crops that carry a k//2 margin of real image, so training pairs have no synthetic
    border at all.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype not in (tf.float16, tf.bfloat16, tf.float32, tf.float64):
        images = tf.cast(images, tf.float32)
    return _depthwise_batch(images, kernels, "VALID")


def add_noise(images, sigma, seed):
    """Additive Gaussian noise of std ``sigma`` (in the images' units), stateless ``seed`` [2]."""
    noise = tf.random.stateless_normal(tf.shape(images), seed=seed, dtype=images.dtype)
    return images + tf.cast(sigma, images.dtype) * noise


def jpeg_roundtrip(images01, quality: int):
    """JPEG-encode and decode each image of a [B, H, W, 3] batch in [0, 1] at ``quality``."""
    return tf.map_fn(
        lambda im: tf.image.adjust_jpeg_quality(im, quality), images01, fn_output_signature=images01.dtype
    )
