"""Motion blur applied to images: kernels (from :mod:`tfdeblur.kernels`) -> blurred images.

Application is a true convolution (kernel flipped, then correlated), done as a TensorFlow
depthwise convolution with the batch folded into channels, so it runs inside ``tf.data`` and on
GPU. Blurred images are not min-max stretched (as the reference's are): a pair differs by blur
(and optional noise) only.

The kernel side is re-exported here, so ``blur.kernel_bank``, ``blur.PRESETS`` and the rest
work as before.
"""

from __future__ import annotations

import tensorflow as tf

from tfdeblur import kernels as _kernels
from tfdeblur.kernels import (  # noqa: F401  re-exported: the blur API documented in the README
    PRESETS,
    KernelParams,
    indexed_bank,
    kernel_bank,
    kernel_bank_loop,
    kernel_centroid,
    kernel_params_from_config,
    linear_kernel_bank,
    load_bank,
    pad_kernels,
    preset_bank,
    save_bank,
    trajectories,
)

__all__ = _kernels.__all__ + ["blur_images", "blur_valid", "add_noise", "jpeg_roundtrip"]


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
