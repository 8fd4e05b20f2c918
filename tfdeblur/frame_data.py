"""Training data cut from camera frames, mixed into every batch beside the crop-scale faces.

A frame is composed by :func:`tfdeblur.scenes.compose_scene` from the *training* persons' photos:
faces of ``face_heights`` px anywhere on a real-texture background. A training sample is a crop of
the frame blurred with one shake in frame pixels, so a 30 px face is relatively far more blurred
than the 110 px faces of the crop data, as in a real frame. The crop-scale pipeline and this one
are both pure functions of ``(seed, step)``, so a resumed run sees the batches an uninterrupted
one would.
"""

from __future__ import annotations

import numpy as np

__all__ = ["training_frames", "frame_batch_size", "mixed_dataset"]


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


def mixed_dataset(crop_ds, frame_ds):
    """Per step, one batch: the crop batch's samples, then the frame batch's."""
    import tensorflow as tf

    def concat(a, b):
        return tf.concat([a[0], b[0]], axis=0), tf.concat([a[1], b[1]], axis=0)

    return tf.data.Dataset.zip((crop_ds, frame_ds)).map(concat).prefetch(tf.data.AUTOTUNE)
