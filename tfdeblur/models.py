"""Generator (DeblurGAN-style ResNet) and 70x70 PatchGAN discriminator, as Keras functional models.

Custom layers are registered as Keras serializables, so a saved ``generator.keras`` loads with
plain ``keras.models.load_model`` once ``tfdeblur`` is imported.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tfdeblur.config import GENERATOR_CHOICES, PRECISIONS

__all__ = [
    "ReflectionPad2D",
    "PadToMultiple",
    "CropLike",
    "ResidualClip",
    "build_generator",
    "build_discriminator",
    "generator_multiple",
    "count_macs",
    "count_res_blocks",
    "PRECISIONS",
    "with_precision",
]

_PKG = "tfdeblur"


@keras.saving.register_keras_serializable(package=_PKG)
class ReflectionPad2D(layers.Layer):
    """Reflect-pad H and W by ``pad`` pixels (keras.ops.pad, mode="reflect")."""

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, x):
        p = self.pad
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, s):
        grow = lambda d: None if d is None else d + 2 * self.pad  # noqa: E731
        return (s[0], grow(s[1]), grow(s[2]), s[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package=_PKG)
class PadToMultiple(layers.Layer):
    """Reflect-pad bottom/right so H and W become multiples of ``multiple`` (any input size works)."""

    def __init__(self, multiple: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        m = self.multiple
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        ph = (m - h % m) % m
        pw = (m - w % m) % m
        return ops.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], mode="reflect")

    def compute_output_shape(self, s):
        m = self.multiple
        up = lambda d: None if d is None else -(-d // m) * m  # noqa: E731
        return (s[0], up(s[1]), up(s[2]), s[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=_PKG)
class CropLike(layers.Layer):
    """Crop ``x`` (top-left anchored) to the spatial size of ``reference``."""

    def call(self, x, reference):
        h, w = ops.shape(reference)[1], ops.shape(reference)[2]
        return x[:, :h, :w, :]

    def compute_output_shape(self, x_shape, reference_shape):
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package=_PKG)
class ResidualClip(layers.Layer):
    """Global residual: ``clip(input + residual, -1, 1)``."""

    def call(self, image, residual):
        return ops.clip(ops.cast(image, residual.dtype) + residual, -1.0, 1.0)

    def compute_output_shape(self, image_shape, residual_shape):
        return residual_shape


@keras.saving.register_keras_serializable(package=_PKG)
class FusedInstanceNorm(layers.Layer):
    """Instance norm in one pass (E[x], E[x^2]) folded into one multiply-add.

    Same maths as ``GroupNormalization(groups=-1)``, without its group reshapes; measured faster on
    CPU (see README, "Measured optimisations").
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta")

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        var = ops.maximum(ops.mean(ops.square(x), axis=(1, 2), keepdims=True) - ops.square(mean), 0.0)
        scale = ops.rsqrt(var + self.epsilon) * self.gamma
        return x * scale + (self.beta - mean * scale)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


_norm_kind = "group"


@keras.saving.register_keras_serializable(package=_PKG)
class SpaceToDepth(layers.Layer):
    def __init__(self, block: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, x):
        import tensorflow as tf

        return tf.nn.space_to_depth(x, self.block)

    def compute_output_shape(self, s):
        b = self.block
        return (s[0], None if s[1] is None else s[1] // b, None if s[2] is None else s[2] // b, s[3] * b * b)

    def get_config(self):
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package=_PKG)
class DepthToSpace(SpaceToDepth):
    def call(self, x):
        import tensorflow as tf

        return tf.nn.depth_to_space(x, self.block)

    def compute_output_shape(self, s):
        b = self.block
        return (s[0], None if s[1] is None else s[1] * b, None if s[2] is None else s[2] * b, s[3] // (b * b))


def _instance_norm(name):
    # Instance norm, float32 under mixed precision, where fp16 statistics are fragile.
    if _norm_kind == "fused":
        return FusedInstanceNorm(epsilon=1e-5, dtype="float32", name=name)
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, dtype="float32", name=name)


def _conv_block(x, filters, kernel, stride, name, reflect=True, act="relu"):
    if reflect and kernel > 1 and stride == 1:
        x = ReflectionPad2D(kernel // 2, name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _instance_norm(f"{name}_norm")(x)
    if act:
        x = layers.Activation(act, name=f"{name}_{act}")(x)
    return x


def _res_block(x, filters, name, kind):
    skip = x
    if kind == "basic":
        y = _conv_block(x, filters, 3, 1, f"{name}_a")
        y = _conv_block(y, filters, 3, 1, f"{name}_b", act=None)
    elif kind == "separable":
        # depthwise 3x3 + pointwise, twice: ~1/8 of the MACs of the basic block at these widths
        y = ReflectionPad2D(1, name=f"{name}_a_pad")(x)
        y = layers.SeparableConv2D(filters, 3, padding="valid", use_bias=False, name=f"{name}_a_conv")(y)
        y = _instance_norm(f"{name}_a_norm")(y)
        y = layers.Activation("relu", name=f"{name}_a_relu")(y)
        y = ReflectionPad2D(1, name=f"{name}_b_pad")(y)
        y = layers.SeparableConv2D(filters, 3, padding="valid", use_bias=False, name=f"{name}_b_conv")(y)
        y = _instance_norm(f"{name}_b_norm")(y)
    elif kind == "inverted":
        # MobileNetV2 inverted residual: expand 1x1 (x4), depthwise 3x3, project 1x1
        y = layers.Conv2D(filters * 4, 1, use_bias=False, name=f"{name}_expand")(x)
        y = _instance_norm(f"{name}_expand_norm")(y)
        y = layers.Activation("relu", name=f"{name}_expand_relu")(y)
        y = ReflectionPad2D(1, name=f"{name}_dw_pad")(y)
        y = layers.DepthwiseConv2D(3, padding="valid", use_bias=False, name=f"{name}_dw")(y)
        y = _instance_norm(f"{name}_dw_norm")(y)
        y = layers.Activation("relu", name=f"{name}_dw_relu")(y)
        y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
        y = _instance_norm(f"{name}_project_norm")(y)
    else:
        raise ValueError(f"block must be 'basic', 'separable' or 'inverted', got {kind!r}")
    return layers.Add(name=f"{name}_add")([skip, y])


def _up_block(x, filters, name, mode):
    if mode == "transpose":
        # kernel 4 is divisible by stride 2: every output pixel gets the same number of taps, so
        # no checkerboard (DeblurGAN's kernel-3 transposed conv is the classic offender).
        x = layers.Conv2DTranspose(filters, 4, 2, padding="same", use_bias=False, name=f"{name}_tconv")(x)
    elif mode in ("bilinear", "nearest"):
        x = layers.UpSampling2D(2, interpolation=mode, name=f"{name}_up")(x)
        x = ReflectionPad2D(1, name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, 3, padding="valid", use_bias=False, name=f"{name}_conv")(x)
    else:
        raise ValueError(f"upsample must be 'transpose', 'bilinear' or 'nearest', got {mode!r}")
    x = _instance_norm(f"{name}_norm")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def generator_multiple(n_down: int = 2) -> int:
    """Input sizes are padded to a multiple of this inside the generator."""
    return 2**n_down


def build_generator(
    ngf: int = 64,
    n_blocks: int = 6,
    n_down: int = 2,
    upsample: str = "transpose",
    block: str = "basic",
    stem_kernel: int = 7,
    max_width: int = 256,
    pixel_shuffle: int = 1,
    norm: str = "group",
    name: str = "generator",
    arch: str = "resnet",
) -> keras.Model:
    """DeblurGAN generator: 7x7 stem, ``n_down`` stride-2 convs, ResNet blocks, upsampling,
    7x7 tanh output and a global residual ``clip(x + G(x), -1, 1)``. Images are in [-1, 1].

    The paper's processor is ``build_generator(64, 6)``; lean variants shrink ``ngf``, use
    ``block="separable"``/``"inverted"``, a third downsampling stage (``n_down=3``), or
    ``pixel_shuffle=2``: space-to-depth at the input and depth-to-space at the output, so the whole
    network works at half resolution on 12 channels (no full-resolution convolutions at all).
    ``norm="fused"`` swaps GroupNormalization(groups=-1) for the equivalent one-pass layer.

    ``arch="naf"`` builds the NAFNet-style family instead (:mod:`tfdeblur.naf`): ``ngf`` is its
    width, ``n_down`` its U-levels (one NAF block per level, two at the lowest encoder level),
    ``n_blocks`` the blocks at the lowest resolution; ``upsample``, ``block``, ``stem_kernel`` and
    ``norm`` do not apply (it always uses layer norm).
    """
    global _norm_kind
    if arch not in GENERATOR_CHOICES["arch"]:
        raise ValueError(f"arch must be one of {', '.join(GENERATOR_CHOICES['arch'])}, got {arch!r}")
    if arch == "naf":
        if not isinstance(n_down, int) or n_down < 1:
            raise ValueError(f"n_down must be a positive integer, got {n_down!r}")
        enc = (1,) * (n_down - 1) + (2,)
        return _naf.build_naf_generator(ngf, enc, n_blocks, (1,) * n_down, pixel_shuffle, name)
    for arg, val in (("norm", norm), ("pixel_shuffle", pixel_shuffle), ("block", block), ("upsample", upsample)):
        if val not in GENERATOR_CHOICES[arg]:
            raise ValueError(f"{arg} must be one of {', '.join(map(str, GENERATOR_CHOICES[arg]))}, got {val!r}")
    _norm_kind = norm
    for arg, val in (("ngf", ngf), ("n_blocks", n_blocks), ("n_down", n_down), ("stem_kernel", stem_kernel)):
        if not isinstance(val, int) or val < (0 if arg in ("n_blocks",) else 1):
            raise ValueError(f"{arg} must be a positive integer, got {val!r}")
    if stem_kernel % 2 == 0:
        raise ValueError(f"stem_kernel must be odd, got {stem_kernel}")
    inputs = keras.Input(shape=(None, None, 3), name="blurred")
    x = PadToMultiple(generator_multiple(n_down) * pixel_shuffle, name="pad_to_multiple")(inputs)
    padded = x
    if pixel_shuffle > 1:
        x = SpaceToDepth(pixel_shuffle, name="space_to_depth")(x)
    x = _conv_block(x, ngf, stem_kernel, 1, "stem")
    width = ngf
    for i in range(n_down):
        width = min(width * 2, max_width)
        x = _conv_block(x, width, 3, 2, f"down{i + 1}", reflect=False)
    for i in range(n_blocks):
        x = _res_block(x, width, f"res{i + 1}", block)
    for i in range(n_down):
        width = max(width // 2, ngf) if i < n_down - 1 else ngf
        x = _up_block(x, width, f"up{i + 1}", upsample)
    x = ReflectionPad2D(stem_kernel // 2, name="out_pad")(x)
    x = layers.Conv2D(3 * pixel_shuffle**2, stem_kernel, padding="valid", name="out_conv")(x)
    if pixel_shuffle > 1:
        x = DepthToSpace(pixel_shuffle, name="depth_to_space")(x)
    residual = layers.Activation("tanh", dtype="float32", name="out_tanh")(x)
    x = ResidualClip(dtype="float32", name="residual")(padded, residual)
    outputs = CropLike(dtype="float32", name="restored")(x, inputs)
    model = keras.Model(inputs, outputs, name=name)
    _norm_kind = "group"
    return model


def build_discriminator(ndf: int = 64, n_layers: int = 3, name: str = "discriminator") -> keras.Model:
    """70x70 PatchGAN (pix2pix / DeblurGAN, ``n_layers=3``). Outputs per-patch *logits*."""
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = layers.ZeroPadding2D(1)(inputs)
    x = layers.Conv2D(ndf, 4, 2, padding="valid", name="conv0")(x)
    x = layers.LeakyReLU(0.2)(x)
    mult = 1
    for i in range(1, n_layers + 1):
        mult = min(2**i, 8)
        stride = 2 if i < n_layers else 1
        x = layers.ZeroPadding2D(1)(x)
        x = layers.Conv2D(ndf * mult, 4, stride, padding="valid", use_bias=False, name=f"conv{i}")(x)
        x = _instance_norm(f"norm{i}")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(1, 4, 1, padding="valid", dtype="float32", name="logits")(x)
    return keras.Model(inputs, x, name=name)


def count_res_blocks(model: keras.Model) -> int:
    """ResNet blocks of a generator built by :func:`build_generator` (each ends in ``res<i>_add``)."""
    return len([layer for layer in model.layers if layer.name.startswith("res") and layer.name.endswith("_add")])


def count_macs(model: keras.Model, height: int = 256, width: int = 256) -> float:
    """Multiply-accumulates per image, counted from the conv layers at ``height`` x ``width``."""
    import tensorflow as tf

    total = 0.0
    shapes = {}

    # Trace once to get every layer's output shape at this size.
    probe = keras.Model(model.inputs, [l.output for l in model.layers if hasattr(l, "kernel") or isinstance(l, layers.DepthwiseConv2D)])
    outs = probe(tf.zeros([1, height, width, 3]))
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    conv_layers = [l for l in model.layers if hasattr(l, "kernel") or isinstance(l, layers.DepthwiseConv2D)]
    for layer, out in zip(conv_layers, outs):
        shapes[layer.name] = out.shape
        oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
        if isinstance(layer, layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            ic = layer.depthwise_kernel.shape[2]
            total += oh * ow * (kh * kw * ic + ic * oc)
        elif isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += oh * ow * kh * kw * oc
        elif isinstance(layer, layers.Conv2DTranspose):
            kh, kw, _, ic = layer.kernel.shape  # (k, k, out, in)
            sh, sw = layer.strides
            total += (oh // sh) * (ow // sw) * kh * kw * ic * oc
        elif isinstance(layer, layers.Conv2D):
            kh, kw, ic, _ = layer.kernel.shape
            total += oh * ow * kh * kw * ic * oc
        elif isinstance(layer, layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return float(total)



# Layers the builder keeps in float32 under any policy: instance-norm statistics and the
# residual output are fragile in 16-bit floats.
_FLOAT32_LAYER_TYPES = ("FusedInstanceNorm", "GroupNormalization")
_FLOAT32_LAYER_NAMES = ("out_tanh", "residual", "restored")


def _pinned(layer) -> bool:
    return type(layer).__name__ in _FLOAT32_LAYER_TYPES or layer.name in _FLOAT32_LAYER_NAMES


def with_precision(model: keras.Model, precision: str = "float32") -> keras.Model:
    """The generator ``model`` computing in ``precision``, as the builder would make it under that
    policy: ``"bfloat16"`` runs the convolutions in bfloat16 (Keras' ``mixed_bfloat16``), norms and
    output in float32; ``"float32"`` everything in float32 (e.g. a generator trained under a mixed
    policy). A model that already computes so is returned as is; otherwise a copy with the same
    weights (float32 variables either way). Inputs and outputs stay float32.

    Worth it on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX; oneDNN uses them):
    measured in ``python -m bench`` (format ``keras-bf16``). Elsewhere bfloat16 is emulated, slower.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    layers_ = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    if all(layer.dtype_policy.name == ("float32" if _pinned(layer) else policy) for layer in layers_):
        return model  # already computes so

    def clone_layer(layer):
        config = layer.get_config()
        if not _pinned(layer):
            config["dtype"] = policy
        return type(layer).from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone


# The NAF family registers its layers on import, so a saved NAF generator loads like any other.
from tfdeblur import naf as _naf  # noqa: E402,F401
