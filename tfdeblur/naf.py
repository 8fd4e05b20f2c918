"""A second generator family: NAFNet-style blocks (Chen et al. 2022, "Simple Baselines for Image
Restoration") in a small U-shape, for quality per MAC (issue 20).

A NAF block replaces nonlinear activations with a *simple gate* (split the channels in two and
multiply the halves), uses a depthwise 3x3 convolution for space, *simplified channel attention*
(global average pool, one 1x1 conv, multiply) and layer norm over channels, and scales both of its
residual branches by learned per-channel factors that start at zero, so a fresh block is the
identity. The U-shape keeps the high-resolution stages cheap (few, narrow blocks) and puts the
depth at the lowest resolution. Fully convolutional (any H x W: padded to a multiple, cropped
back), global residual clipped to [-1, 1] like the ResNet family.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tfdeblur.models import _PKG, CropLike, DepthToSpace, PadToMultiple, ResidualClip, SpaceToDepth

__all__ = ["SimpleGate", "ChannelScale", "build_naf_generator"]


@keras.saving.register_keras_serializable(package=_PKG)
class SimpleGate(layers.Layer):
    """``x1 * x2`` for the two channel halves of ``x``: NAFNet's activation-free nonlinearity."""

    def call(self, x):
        a, b = ops.split(x, 2, axis=-1)
        return a * b

    def compute_output_shape(self, s):
        return (*s[:-1], None if s[-1] is None else s[-1] // 2)


@keras.saving.register_keras_serializable(package=_PKG)
class ChannelScale(layers.Layer):
    """Per-channel learned scale, zero at start (a new residual branch adds nothing)."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return x * ops.cast(self.scale, x.dtype)


def _naf_block(x, c, name):
    y = layers.LayerNormalization(epsilon=1e-6, dtype="float32", name=f"{name}_norm1")(x)
    y = layers.Conv2D(2 * c, 1, name=f"{name}_pw1")(y)
    y = layers.DepthwiseConv2D(3, padding="same", name=f"{name}_dw")(y)
    y = SimpleGate(name=f"{name}_gate1")(y)
    attention = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(y)
    attention = layers.Conv2D(c, 1, name=f"{name}_sca")(attention)
    y = layers.Multiply(name=f"{name}_attend")([y, attention])
    y = layers.Conv2D(c, 1, name=f"{name}_pw2")(y)
    x = layers.Add(name=f"{name}_add1")([x, ChannelScale(name=f"{name}_beta")(y)])
    y = layers.LayerNormalization(epsilon=1e-6, dtype="float32", name=f"{name}_norm2")(x)
    y = layers.Conv2D(2 * c, 1, name=f"{name}_ffn1")(y)
    y = SimpleGate(name=f"{name}_gate2")(y)
    y = layers.Conv2D(c, 1, name=f"{name}_ffn2")(y)
    return layers.Add(name=f"{name}_add2")([x, ChannelScale(name=f"{name}_gamma")(y)])


def build_naf_generator(width: int = 16, enc_blocks=(1, 1, 2), middle_blocks: int = 4, dec_blocks=(1, 1, 1),
                        pixel_shuffle: int = 2, name: str = "generator") -> keras.Model:
    """NAF U-net: ``len(enc_blocks)`` encoder levels (each NAF blocks, then a 2x2 stride-2 conv that
    doubles the channels), ``middle_blocks`` at the lowest resolution, and as many decoder levels
    (1x1 conv + depth-to-space up, skip added, NAF blocks). ``pixel_shuffle=2`` runs the whole
    network at half resolution on 12 channels, as the lean ResNet generator does."""
    enc_blocks, dec_blocks = tuple(int(b) for b in enc_blocks), tuple(int(b) for b in dec_blocks)
    if len(enc_blocks) != len(dec_blocks) or not enc_blocks:
        raise ValueError(f"enc_blocks and dec_blocks must have the same (non-zero) length, got {enc_blocks} and {dec_blocks}")
    if not isinstance(width, int) or width < 2 or width % 2 or pixel_shuffle not in (1, 2, 4):
        raise ValueError(f"width must be an even integer >= 2 and pixel_shuffle 1, 2 or 4, got {width!r}, {pixel_shuffle!r}")
    levels = len(enc_blocks)
    inputs = keras.Input(shape=(None, None, 3), name="blurred")
    padded = PadToMultiple(2**levels * pixel_shuffle, name="pad_to_multiple")(inputs)
    x = SpaceToDepth(pixel_shuffle, name="space_to_depth")(padded) if pixel_shuffle > 1 else padded
    x = layers.Conv2D(width, 3, padding="same", name="intro")(x)
    skips, c = [], width
    for i, n in enumerate(enc_blocks):
        for j in range(n):
            x = _naf_block(x, c, f"enc{i + 1}_{j + 1}")
        skips.append(x)
        x = layers.Conv2D(2 * c, 2, strides=2, name=f"down{i + 1}")(x)
        c *= 2
    for j in range(middle_blocks):
        x = _naf_block(x, c, f"mid{j + 1}")
    for i, n in enumerate(dec_blocks):
        level = levels - i
        x = layers.Conv2D(2 * c, 1, use_bias=False, name=f"up{level}_conv")(x)
        x = DepthToSpace(2, name=f"up{level}_shuffle")(x)
        c //= 2
        x = layers.Add(name=f"up{level}_skip")([x, skips[level - 1]])
        for j in range(n):
            x = _naf_block(x, c, f"dec{level}_{j + 1}")
    # zero-initialised: a fresh generator is the identity (the global residual adds nothing)
    x = layers.Conv2D(3 * pixel_shuffle**2, 3, padding="same", kernel_initializer="zeros", name="out_conv")(x)
    if pixel_shuffle > 1:
        x = DepthToSpace(pixel_shuffle, name="depth_to_space")(x)
    x = layers.Activation("linear", dtype="float32", name="out_tanh")(x)  # (named as the ResNet's, for with_precision)
    x = ResidualClip(dtype="float32", name="residual")(padded, x)
    outputs = CropLike(dtype="float32", name="restored")(x, inputs)
    return keras.Model(inputs, outputs, name=name)
