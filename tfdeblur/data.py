"""Face data: discovery, person-level train/validation split, and blurred/sharp tf.data pipelines.

Training batches are a pure function of ``(seed, step)``: crops, flips, fresh blur kernels and
noise all come from stateless RNGs keyed by the step. Resuming at step N therefore continues with
exactly the batches an uninterrupted run would have seen, without checkpointing iterator state.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfdeblur import blur
from tfdeblur.imageio import ImageError, SkipLog, find_images, read_rgb

__all__ = [
    "MODEL_SELECTION_BLUR_SEED",
    "model_selection_pairs",
    "NoImagesError",
    "FaceSplit",
    "person_of",
    "split_by_person",
    "load_faces",
    "load_split",
    "train_dataset",
    "make_eval_pairs",
    "to_model",
    "from_model",
]


class NoImagesError(RuntimeError):
    """A data folder holds no usable images."""


def person_of(path: str) -> str:
    """LFW layout: ``<root>/<Person_Name>/<Person_Name>_NNNN.jpg`` -> ``Person_Name``."""
    return os.path.basename(os.path.dirname(os.path.abspath(path)))


def split_by_person(paths, val_fraction: float = 0.25, seed: int = 0):
    """Split image paths into (train, val) so that no person is on both sides.

    Each person goes to validation when a stable hash of ``(seed, name)`` falls below
    ``val_fraction``; the split does not depend on which other people are present.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    train, val = [], []
    for p in sorted(paths):
        h = zlib.crc32(f"{seed}:{person_of(p)}".encode()) / 2**32
        (val if h < val_fraction else train).append(p)
    return train, val


@dataclass
class FaceSplit:
    train: list
    val: list


def load_split(data_dir: str, val_fraction: float = 0.25, seed: int = 0, log: SkipLog | None = None) -> FaceSplit:
    """Find images under ``data_dir`` and split them by person. Raises NoImagesError if none."""
    if not os.path.isdir(data_dir):
        raise NoImagesError(
            f"data folder {data_dir!r} not found. Put LFW (one folder per person, e.g. "
            "lfw/George_W_Bush/George_W_Bush_0001.jpg) there, or pass --data-dir / set TFDEBLUR_DATA. "
            "LFW: http://vis-www.cs.umass.edu/lfw/"
        )
    paths = [p for p, _ in find_images(data_dir, log=log)]
    if not paths:
        raise NoImagesError(f"no images (.jpg/.png/.webp/.bmp) found under {data_dir!r}")
    train, val = split_by_person(paths, val_fraction, seed)
    return FaceSplit(train, val)


def load_faces(paths, size: int = 256, log: SkipLog | None = None, limit: int | None = None):
    """Decode and resize to ``size`` x ``size``: ``(uint8 [N, size, size, 3], kept_paths)``.

    Unreadable files are skipped with one warning line each.
    """
    log = log if log is not None else SkipLog()
    images, kept = [], []
    for p in paths:
        if limit is not None and len(images) >= limit:
            break
        try:
            rgb = read_rgb(p, size)
        except ImageError as e:
            log.skip(p, e)
            continue
        if min(rgb.shape[:2]) < 2:
            log.skip(p, "image too small")
            continue
        images.append(rgb)
        kept.append(p)
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), kept
    return np.stack(images), kept


def to_model(images_uint8):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def from_model(images):
    """float [-1, 1] -> uint8 [0, 255], rounded."""
    x = (tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0) + 1.0) * 127.5
    return tf.cast(tf.round(x), tf.uint8)


def _kernels_for_step(seed, step, batch, params: blur.KernelParams):
    def gen(s):
        return blur.kernel_bank(batch, seed=[int(seed), int(s)], params=params)

    k = tf.numpy_function(gen, [step], tf.float32, stateful=False)
    return tf.reshape(k, [batch, tf.shape(k)[1], tf.shape(k)[1]])


def _noise_range(noise_sigma) -> tuple[float, float]:
    """``noise_sigma`` (a number or ``[min, max]``) as ``(min, max)``."""
    if np.isscalar(noise_sigma):
        return float(noise_sigma), float(noise_sigma)
    lo, hi = map(float, noise_sigma)
    return lo, hi


def _step_seeds(seed, step):
    """``seed_of(k)``: the stateless seed of random draw ``k`` at ``step`` of a pipeline seeded ``seed``."""
    s = tf.cast(step, tf.int32)
    return lambda k: tf.stack([tf.constant(seed, tf.int32) * 7919 + k, s])


def _add_sensor_noise(images, seed_of, batch_size, lo, hi):
    """Gaussian noise of a std drawn per image in ``[lo, hi]`` (draws 6 and 7); none when ``hi`` is 0."""
    if hi <= 0:
        return images
    sigma = tf.random.stateless_uniform([batch_size, 1, 1, 1], seed_of(6), lo, hi)
    return images + sigma * tf.random.stateless_normal(tf.shape(images), seed_of(7))


def _maybe_jpeg(images, seed_of, batch_size, prob, quality):
    """JPEG round trip for a random ``prob`` share of the batch, quality per image."""
    lo, hi = int(quality[0]), int(quality[1])
    q = tf.random.stateless_uniform([batch_size], seed_of(11), lo, hi + 1, dtype=tf.int32)
    use = tf.random.stateless_uniform([batch_size], seed_of(12)) < prob

    def one(args):
        im, qi, u = args
        return tf.cond(u, lambda: tf.image.adjust_jpeg_quality(im, qi), lambda: im)

    out = tf.map_fn(one, (images, q, use), fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))
    return tf.reshape(out, tf.shape(images))


def train_dataset(
    images_uint8: np.ndarray,
    batch_size: int,
    crop: int,
    seed: int = 0,
    start_step: int = 0,
    total_steps: int | None = None,
    kernel_params: blur.KernelParams | None = None,
    kernel_bank: np.ndarray | None = None,
    noise_sigma=(0.0, 0.0),
    quantize: bool = True,
    flip: bool = True,
    parallel: bool = True,
    border_fraction: float = 0.0,
    jpeg_prob: float = 0.0,
    jpeg_quality=(50, 95),
):
    """Batches ``(blurred, sharp)`` in [-1, 1], ``[B, crop, crop, 3]``, for steps
    ``start_step .. total_steps-1`` (endless when ``total_steps`` is None).

    Each sample is a random crop with a kernel-radius margin of real pixels, blurred with "valid"
    convolution, so the blurred crop has no synthetic border. Kernels are fresh per sample and
    step (``kernel_params``), or drawn from a fixed ``kernel_bank``.

    ``border_fraction`` of the samples instead come from anywhere in the image, up to its edges,
    blurred as :func:`make_eval_pairs` blurs full images: beyond the edge the kernel sees the
    image reflected. A full photo's border band (a kernel radius wide, 20-45% of a 256^2 face
    image at 40-60 px blur) is otherwise never seen in training.

    ``jpeg_prob`` of the blurred samples are JPEG-compressed at a quality drawn from
    ``jpeg_quality`` (phones and cameras store JPEG; the sharp target is not compressed).

    ``parallel=False`` builds batches one at a time with no prefetch (the baseline that
    ``python -m bench --only opts`` compares against); batches are identical either way.
    """
    n = int(images_uint8.shape[0])
    if n == 0:
        raise NoImagesError("no training images")
    h, w = images_uint8.shape[1:3]
    if crop > min(h, w):
        raise ValueError(f"crop={crop} is larger than the images ({h}x{w})")
    params = (kernel_params or blur.PRESETS["train"]).validated()
    images = tf.constant(images_uint8)
    bank = None if kernel_bank is None else tf.constant(kernel_bank, tf.float32)
    lo_sigma, hi_sigma = _noise_range(noise_sigma)
    if not 0.0 <= float(border_fraction) <= 1.0:
        raise ValueError(f"border_fraction must be in [0, 1], got {border_fraction!r}")

    def make_batch(step):
        seed_of = _step_seeds(seed, step)
        idx = tf.random.stateless_uniform([batch_size], seed_of(1), 0, n, dtype=tf.int32)
        if bank is None:
            kernels = _kernels_for_step(seed, step, batch_size, params)
        else:
            kidx = tf.random.stateless_uniform([batch_size], seed_of(2), 0, tf.shape(bank)[0], dtype=tf.int32)
            kernels = tf.gather(bank, kidx)
        ksize = tf.shape(kernels)[1]
        r = ksize // 2
        # The crop plus a margin of r real pixels must fit; pad by reflection only if it cannot.
        need = crop + 2 * r
        pad = tf.maximum(0, (need - tf.minimum(h, w) + 1) // 2)
        src = tf.gather(images, idx)
        src = tf.pad(src, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")
        hh, ww = h + 2 * pad, w + 2 * pad
        oy = tf.random.stateless_uniform([batch_size], seed_of(3), 0, hh - need + 1, dtype=tf.int32)
        ox = tf.random.stateless_uniform([batch_size], seed_of(4), 0, ww - need + 1, dtype=tf.int32)

        def take(args):
            im, y, x = args
            return tf.slice(im, [y, x, 0], [need, need, 3])

        big = tf.map_fn(take, (src, oy, ox), fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
        if border_fraction > 0:
            # The window around a crop that may touch the edge, padded as blur.blur_images pads.
            src_edge = tf.pad(tf.gather(images, idx), [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
            ey = tf.random.stateless_uniform([batch_size], seed_of(8), 0, h - crop + 1, dtype=tf.int32)
            ex = tf.random.stateless_uniform([batch_size], seed_of(9), 0, w - crop + 1, dtype=tf.int32)
            big_edge = tf.map_fn(take, (src_edge, ey, ex), fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
            at_edge = tf.random.stateless_uniform([batch_size, 1, 1, 1], seed_of(10)) < border_fraction
            big = tf.where(at_edge, big_edge, big)
        big = tf.cast(big, tf.float32) / 255.0
        if flip:
            do_flip = tf.random.stateless_uniform([batch_size, 1, 1, 1], seed_of(5)) < 0.5
            big = tf.where(do_flip, tf.reverse(big, axis=[2]), big)
        sharp = big[:, r : r + crop, r : r + crop, :]
        blurred = blur.blur_valid(big, kernels)
        blurred = tf.clip_by_value(_add_sensor_noise(blurred, seed_of, batch_size, lo_sigma, hi_sigma), 0.0, 1.0)
        if quantize:  # real blurred photos are 8-bit
            blurred = tf.round(blurred * 255.0) / 255.0
        if jpeg_prob > 0:
            blurred = _maybe_jpeg(blurred, seed_of, batch_size, jpeg_prob, jpeg_quality)
        blurred = tf.reshape(blurred, [batch_size, crop, crop, 3])
        sharp = tf.reshape(sharp, [batch_size, crop, crop, 3])
        return blurred * 2.0 - 1.0, sharp * 2.0 - 1.0

    end = total_steps if total_steps is not None else np.iinfo(np.int64).max
    ds = tf.data.Dataset.range(start_step, end)
    if not parallel:  # also stop tf.data's default rewrites from parallelising it behind our back
        opts = tf.data.Options()
        opts.experimental_optimization.map_parallelization = False
        opts.experimental_optimization.inject_prefetch = False
        return ds.map(make_batch).with_options(opts)
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_eval_pairs(sharp_uint8: np.ndarray, kernels: np.ndarray, noise_sigma: float = 0.0, seed: int = 0,
                    jpeg_quality: int | None = None, batch_size: int = 32) -> np.ndarray:
    """Blur full images (reflect borders) with one kernel each; returns uint8 blurred images."""
    if len(kernels) < len(sharp_uint8):
        raise ValueError(f"need one kernel per image: {len(kernels)} kernels for {len(sharp_uint8)} images")
    out = []
    for i in range(0, len(sharp_uint8), batch_size):
        x = tf.cast(sharp_uint8[i : i + batch_size], tf.float32) / 255.0
        y = blur.blur_images(x, kernels[i : i + batch_size])
        if noise_sigma > 0:
            y = blur.add_noise(y, noise_sigma, tf.constant([seed, i], tf.int32))
        y = tf.clip_by_value(y, 0.0, 1.0)
        if jpeg_quality:
            y = blur.jpeg_roundtrip(y, jpeg_quality)
        out.append(tf.cast(tf.round(y * 255.0), tf.uint8).numpy())
    return np.concatenate(out) if out else np.zeros_like(sharp_uint8)


MODEL_SELECTION_BLUR_SEED = 12345  # training's validation pairs: one fixed blur for every run


def model_selection_pairs(val_images_uint8: np.ndarray) -> np.ndarray:
    """The blurred images training validates (and selects checkpoints) on: the ``eval`` preset with
    the fixed seed ``MODEL_SELECTION_BLUR_SEED``, one kernel per image."""
    return make_eval_pairs(val_images_uint8, blur.preset_bank("eval", len(val_images_uint8), seed=MODEL_SELECTION_BLUR_SEED))
