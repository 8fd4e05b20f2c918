"""Training data for camera frames, mixed into every batch beside the crop-scale faces.

A frame is composed by :func:`tfdeblur.scenes.compose_scene` from the *training* persons' photos:
faces of ``face_heights`` px anywhere on a real-texture background. A training sample is a crop of
the frame blurred with one shake in frame pixels, so a 30 px face is relatively far more blurred
than the 110 px faces of the crop data, as in a real frame. The crop-scale pipeline and this one
are both pure functions of ``(seed, step)``, so a resumed run sees the batches an uninterrupted
one would.

Small faces as :func:`tfdeblur.deblur_faces` sees them (:func:`small_face_dataset`): a crop-scale
face image shrunk until its face is 24-100 px tall, blurred there with a shake in those pixels,
noised and JPEG'd as a camera would, then resized back up to the working size as ``deblur_faces``
resizes a face's context square. The model then learns the regime it is run in on a 40 px face:
2-4x the training shake relative to the face, on an upscaled, detail-poor image.
"""

from __future__ import annotations

import numpy as np

__all__ = ["training_frames", "frame_batch_size", "mixed_dataset", "small_face_dataset"]


def frame_batch_size(batch_size: int, fraction: float) -> int:
    """How many of a batch's samples come from frames (0 when ``fraction`` is 0)."""
    if fraction <= 0:
        return 0
    return int(min(batch_size - 1, max(1, round(batch_size * fraction))))


def training_frames(photos, boxes, count: int, size: int, face_heights, max_faces: int, seed: int = 1) -> np.ndarray:
    """``count`` square frames uint8 ``[count, size, size, 3]`` from face ``photos`` and their boxes."""
    from tfdeblur.scenes import make_scenes

    scenes = make_scenes(photos, boxes, count, seed=seed, shape=(size, size), heights=tuple(face_heights),
                         max_faces=max_faces)
    return np.stack([s.image for s in scenes])


def mixed_dataset(*datasets):
    """Per step, one batch: the first dataset's samples, then the next one's, and so on."""
    import tensorflow as tf

    def concat(*batches):
        return tf.concat([b[0] for b in batches], axis=0), tf.concat([b[1] for b in batches], axis=0)

    return tf.data.Dataset.zip(tuple(datasets)).map(concat).prefetch(tf.data.AUTOTUNE)


def small_face_dataset(images_uint8: np.ndarray, batch_size: int, crop: int, seed: int = 0, start_step: int = 0,
                       total_steps: int | None = None, face_heights=(24.0, 100.0), kernel_params=None,
                       noise_sigma=(0.0, 0.0), jpeg_prob: float = 0.0, jpeg_quality=(50, 95)):
    """Batches ``(degraded, sharp)`` in [-1, 1], ``[B, crop, crop, 3]``: the small-face regime.

    Per step one face height ``h`` is drawn log-uniformly in ``face_heights``; every image of the
    batch (size ``S``, its face ``0.45 S`` tall) is shrunk to ``S h / (0.45 S)``, blurred there with
    its own kernel (``kernel_params``, lengths in the shrunk image's pixels, symmetric borders),
    noised, quantised to 8 bits, JPEG'd (``jpeg_prob``) and resized back to ``S`` bicubically. The
    pair is the same random ``crop`` window (and flip) of that and of the sharp image. A pure
    function of ``(seed, step)``.
    """
    import tensorflow as tf

    from tfdeblur import blur
    from tfdeblur.data import NoImagesError, _add_sensor_noise, _kernels_for_step, _maybe_jpeg, _noise_range, _step_seeds
    from tfdeblur.faces import FACE_FRACTION  # the face's share of a crop-scale image's height

    n, size = int(images_uint8.shape[0]), int(images_uint8.shape[1])
    if n == 0:
        raise NoImagesError("no training images")
    if crop > size or images_uint8.shape[2] != size:
        raise ValueError(f"small faces need square images at least crop={crop} px, got {images_uint8.shape[1:3]}")
    params = (kernel_params or blur.PRESETS["train-knotty"]).validated()
    lo_h, hi_h = (float(x) for x in face_heights)
    lo_s, hi_s = _noise_range(noise_sigma)
    images = tf.constant(images_uint8)

    def make_batch(step):
        seed_of = _step_seeds(seed, step)
        idx = tf.random.stateless_uniform([batch_size], seed_of(1), 0, n, dtype=tf.int32)
        sharp = tf.cast(tf.gather(images, idx), tf.float32) / 255.0
        u = tf.random.stateless_uniform([], seed_of(2))
        height = tf.exp(tf.math.log(lo_h) + u * (tf.math.log(hi_h) - tf.math.log(lo_h)))
        small_side = tf.maximum(8, tf.cast(tf.round(height / FACE_FRACTION), tf.int32))
        small = tf.image.resize(sharp, [small_side, small_side], method="area")
        kernels = _kernels_for_step(seed, step, batch_size, params)
        r = tf.shape(kernels)[1] // 2
        padded, need = small, r
        for _ in range(3):  # symmetric padding adds at most the image's side per round; a kernel can outsize it
            p = tf.minimum(need, tf.shape(padded)[1])
            padded, need = tf.pad(padded, [[0, 0], [p, p], [p, p], [0, 0]], mode="SYMMETRIC"), need - p
        degraded = blur.blur_valid(padded, kernels)
        degraded = _add_sensor_noise(degraded, seed_of, batch_size, lo_s, hi_s)
        degraded = tf.round(tf.clip_by_value(degraded, 0.0, 1.0) * 255.0) / 255.0
        if jpeg_prob > 0:
            degraded = _maybe_jpeg(degraded, seed_of, batch_size, jpeg_prob, jpeg_quality)
        degraded = tf.clip_by_value(tf.image.resize(degraded, [size, size], method="bicubic"), 0.0, 1.0)
        y = tf.random.stateless_uniform([], seed_of(3), 0, size - crop + 1, dtype=tf.int32)
        x = tf.random.stateless_uniform([], seed_of(4), 0, size - crop + 1, dtype=tf.int32)
        pair = tf.stack([degraded, sharp])[:, :, y : y + crop, x : x + crop, :]
        flip = tf.random.stateless_uniform([], seed_of(5)) < 0.5
        pair = tf.cond(flip, lambda: tf.reverse(pair, axis=[3]), lambda: pair)
        pair = tf.reshape(pair, [2, batch_size, crop, crop, 3]) * 2.0 - 1.0
        return pair[0], pair[1]

    end = total_steps if total_steps is not None else np.iinfo(np.int64).max
    ds = tf.data.Dataset.range(start_step, end).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
