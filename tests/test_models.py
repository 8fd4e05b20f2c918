"""Generator / discriminator architecture (issue 3): shapes, ranges, residual, norm, PatchGAN, MACs.

Models here are tiny (ngf 8, one block) except where the paper's own size is the point
(MAC count, layer names), and those are only built / traced once.
"""
import os

import numpy as np
import pytest

import tfdeblur  # noqa: F401  registers the custom layers
import keras
import tensorflow as tf

from tfdeblur.models import (
    FusedInstanceNorm,
    build_discriminator,
    build_generator,
    count_macs,
    count_res_blocks,
    generator_multiple,
    with_precision,
)

TINY = dict(ngf=8, n_blocks=1, stem_kernel=3)


# ------------------------------------------------------------------------------ generator shapes

# A covering set of the options (every value of every option appears, and every pair of
# pixel_shuffle x {n_down, upsample, block, norm} values), rather than the full 48-way product.
GEN_VARIANTS = [
    dict(pixel_shuffle=1, n_down=2, upsample="transpose", block="basic", norm="group"),
    dict(pixel_shuffle=2, n_down=2, upsample="bilinear", block="separable", norm="fused"),
    dict(pixel_shuffle=1, n_down=3, upsample="bilinear", block="inverted", norm="fused"),
    dict(pixel_shuffle=2, n_down=3, upsample="transpose", block="inverted", norm="group"),
    dict(pixel_shuffle=1, n_down=2, upsample="nearest", block="separable", norm="group"),
    dict(pixel_shuffle=2, n_down=2, upsample="transpose", block="basic", norm="fused"),
    dict(pixel_shuffle=1, n_down=3, upsample="transpose", block="basic", norm="fused"),
    dict(pixel_shuffle=2, n_down=3, upsample="bilinear", block="separable", norm="group"),
]


def _variant_id(v):
    return "ps{pixel_shuffle}-nd{n_down}-{upsample}-{block}-{norm}".format(**v)


@pytest.mark.parametrize("variant", GEN_VARIANTS, ids=_variant_id)
def test_generator_output_shape_equals_input_for_odd_sizes(variant):
    g = build_generator(**TINY, **variant)
    rng = np.random.default_rng(0)
    for h, w in [(250, 250), (97, 131)]:
        x = rng.uniform(-1, 1, (1, h, w, 3)).astype("float32")
        y = g(x, training=False)
        assert tuple(y.shape) == (1, h, w, 3), (variant, h, w)
        y = y.numpy()
        assert y.dtype == np.float32
        assert np.isfinite(y).all()
        assert y.min() >= -1.0 and y.max() <= 1.0


def test_generator_multiple_and_pixel_shuffle_4():
    assert [generator_multiple(n) for n in (1, 2, 3)] == [2, 4, 8]
    g = build_generator(**TINY, n_down=2, pixel_shuffle=4)  # pads to a multiple of 16
    assert tuple(g(tf.zeros([2, 33, 47, 3])).shape) == (2, 33, 47, 3)


def test_output_is_clipped_to_minus_one_one():
    # Push the residual to +-1 everywhere: input + residual leaves [-1, 1] and must be clipped.
    g = build_generator(**TINY, pixel_shuffle=2)
    out_conv = g.get_layer("out_conv")
    k, b = out_conv.get_weights()
    out_conv.set_weights([np.zeros_like(k), np.full_like(b, 5.0)])  # tanh(5) ~ 0.9999
    x = np.random.default_rng(1).uniform(-1, 1, (2, 37, 41, 3)).astype("float32")
    y = g(x).numpy()
    assert y.max() == 1.0 and y.min() >= -1.0
    # pixels with x + tanh(5) <= 1 are not clipped: the residual really is added
    low = x < -0.1
    np.testing.assert_allclose(y[low], x[low] + np.tanh(5.0), atol=1e-6)
    out_conv.set_weights([np.zeros_like(k), np.full_like(b, -5.0)])
    y = g(x).numpy()
    assert y.min() == -1.0 and y.max() <= 1.0


@pytest.mark.parametrize("pixel_shuffle,norm", [(1, "group"), (2, "fused")])
def test_zero_out_conv_gives_identity(pixel_shuffle, norm):
    """Global residual: with out_conv zeroed, G(x) = clip(x + tanh(0)) = x exactly (odd size:
    the pad-to-multiple and the crop back must line up pixel for pixel)."""
    g = build_generator(**TINY, pixel_shuffle=pixel_shuffle, norm=norm, n_down=3)
    out_conv = g.get_layer("out_conv")
    out_conv.set_weights([np.zeros_like(w) for w in out_conv.get_weights()])
    x = np.random.default_rng(2).uniform(-1, 1, (2, 97, 131, 3)).astype("float32")
    np.testing.assert_array_equal(g(x).numpy(), x)


def test_generator_rejects_bad_options():
    for kwargs in (dict(norm="batch"), dict(pixel_shuffle=3), dict(block="dense"), dict(upsample="cubic"),
                   dict(stem_kernel=4), dict(ngf=0), dict(n_down=0)):
        with pytest.raises(ValueError):
            build_generator(**{**TINY, **kwargs})


def test_default_architecture_names_and_size_are_stable():
    """Running jobs resume from checkpoints of these models: names and sizes must not drift."""
    g = build_generator()
    names = {layer.name for layer in g.layers}
    for n in ("pad_to_multiple", "stem_conv", "stem_norm", "down1_conv", "down2_conv", "res1_a_conv",
              "res6_b_norm", "up1_tconv", "up2_tconv", "out_conv", "out_tanh", "residual", "restored"):
        assert n in names, n
    assert g.count_params() == 8_128_131
    assert isinstance(g.get_layer("stem_norm"), keras.layers.GroupNormalization)
    d = build_discriminator()
    assert [l.name for l in d.layers if l.weights] == ["conv0", "conv1", "norm1", "conv2", "norm2", "conv3",
                                                       "norm3", "logits"]
    assert d.count_params() == 2_765_633


# ----------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("offset", [0.0, 3.0])
def test_fused_instance_norm_matches_group_norm(offset):
    rng = np.random.default_rng(3)
    c = 6
    x = (rng.normal(size=(3, 9, 11, c)) * rng.uniform(0.1, 4.0, size=(3, 1, 1, c))
         + offset * rng.normal(size=(3, 1, 1, c))).astype("float32")
    gamma = rng.normal(size=c).astype("float32")
    beta = rng.normal(size=c).astype("float32")
    fused = FusedInstanceNorm(epsilon=1e-5)
    group = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5)
    fused.build(x.shape)
    group.build(x.shape)
    fused.set_weights([gamma, beta])
    group.set_weights([gamma, beta])
    a, b = fused(x).numpy(), group(x).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
    # and it really normalises: per (sample, channel) mean beta, std |gamma|
    np.testing.assert_allclose(a.mean(axis=(1, 2)), np.broadcast_to(beta, (3, c)), atol=1e-4)
    np.testing.assert_allclose(a.std(axis=(1, 2)), np.broadcast_to(np.abs(gamma), (3, c)), rtol=1e-3, atol=1e-4)


def test_fused_and_group_generators_agree_with_same_weights():
    a = build_generator(**TINY, pixel_shuffle=2, norm="fused")
    b = build_generator(**TINY, pixel_shuffle=2, norm="group")
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
    b.set_weights(a.get_weights())
    x = np.random.default_rng(4).uniform(-1, 1, (2, 40, 36, 3)).astype("float32")
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), atol=2e-5)


@pytest.mark.parametrize("norm", ["fused", "group"])
def test_with_precision_bfloat16_keeps_weights_norms_and_output_in_float32(norm):
    keras.utils.set_random_seed(3)
    model = build_generator(**TINY, pixel_shuffle=2, norm=norm)
    assert with_precision(model, "float32") is model
    bf16 = with_precision(model, "bfloat16")
    assert bf16 is not model and len(bf16.layers) == len(model.layers)
    for a, b in zip(model.weights, bf16.weights):  # same values, still float32 variables
        assert b.dtype == "float32"
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    compute = {layer.name: layer.compute_dtype for layer in bf16.layers}
    convs = [l.name for l in bf16.layers if isinstance(l, keras.layers.Conv2D)]
    norms = [l.name for l in bf16.layers if isinstance(l, (FusedInstanceNorm, keras.layers.GroupNormalization))]
    assert convs and norms
    assert all(compute[n] == "bfloat16" for n in convs)
    assert all(compute[n] == "float32" for n in norms + ["out_tanh", "residual", "restored"])
    assert all(l.compute_dtype == "float32" for l in model.layers)  # the source is untouched
    x = np.random.default_rng(5).uniform(-1, 1, (2, 48, 40, 3)).astype("float32")
    want, got = model(x).numpy(), bf16(x)
    assert got.dtype == "float32" and got.shape == want.shape
    diff = np.abs(got.numpy() - want)
    # bfloat16 keeps 8 bits of mantissa: close to, but not bit-equal with, float32
    assert 0 < diff.max() < 0.05 and diff.mean() < 0.005, (diff.max(), diff.mean())
    with pytest.raises(ValueError, match="precision"):
        with_precision(model, "float16")


# ---------------------------------------------------------------------------- discriminator

def _receptive_field(model):
    rf, jump = 1, 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k, s = layer.kernel_size[0], layer.strides[0]
            rf += (k - 1) * jump
            jump *= s
    return rf


def test_patchgan_receptive_field_and_patch_map():
    d = build_discriminator(ndf=8)
    # 70x70 receptive field: k4 s2, k4 s2, k4 s2, k4 s1, k4 s1
    assert _receptive_field(d) == 70
    # Same map as DeblurGAN's PyTorch PatchGAN (padding 1 everywhere): 30x30 at 256.
    assert tuple(d(tf.zeros([1, 256, 256, 3])).shape) == (1, 30, 30, 1)
    assert tuple(d(tf.zeros([2, 128, 128, 3])).shape) == (2, 14, 14, 1)


def test_discriminator_outputs_unbounded_logits():
    d = build_discriminator(ndf=8)
    logits = d.get_layer("logits")
    assert logits.activation is keras.activations.linear
    assert d.layers[-1] is logits  # no sigmoid after it
    x = np.random.default_rng(5).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    k, b = logits.get_weights()
    logits.set_weights([k, b - 50.0])
    assert d(x).numpy().max() < 0.0  # impossible for a probability
    logits.set_weights([k, b + 50.0])
    assert d(x).numpy().min() > 1.0


# ------------------------------------------------------------------------------------- MACs

def test_count_macs_paper_generator():
    g = build_generator()  # paper: ngf 64, 6 basic blocks, transposed-conv upsampling
    macs = count_macs(g, 256, 256)
    by_hand = (
        256 * 256 * 49 * 3 * 64          # 7x7 stem
        + 128 * 128 * 9 * 64 * 128       # down1
        + 64 * 64 * 9 * 128 * 256        # down2
        + 12 * 64 * 64 * 9 * 256 * 256   # 6 blocks x 2 convs
        + 64 * 64 * 16 * 256 * 128       # up1: 4x4 transposed conv, per input pixel
        + 128 * 128 * 16 * 128 * 64      # up2
        + 256 * 256 * 49 * 64 * 3        # 7x7 output conv
    )
    assert macs == by_hand
    assert 35e9 <= macs <= 37e9


def test_count_macs_lean_generator():
    cpu = dict(ngf=24, n_blocks=6, n_down=2, upsample="transpose", block="basic", stem_kernel=5,
               pixel_shuffle=2, norm="fused")
    macs = count_macs(build_generator(**cpu), 256, 256)
    assert 1.4e9 < macs < 1.6e9  # configs/cpu.yaml's "~1.5 GMAC"
    sep = count_macs(build_generator(**{**cpu, "block": "separable"}), 256, 256)
    assert sep < 0.5 * macs


@pytest.mark.parametrize("block", ["basic", "separable", "inverted"])
def test_count_res_blocks(block):
    for n in (1, 3):
        assert count_res_blocks(build_generator(**{**TINY, "n_blocks": n}, block=block)) == n
    assert count_res_blocks(build_discriminator(ndf=8)) == 0


# ------------------------------------------------------------------------------- save / load

def test_save_load_round_trip(tmp_path):
    """keras.models.load_model with no custom_objects: every custom layer is registered."""
    g = build_generator(**TINY, pixel_shuffle=2, norm="fused", block="inverted", upsample="bilinear", n_down=3)
    d = build_discriminator(ndf=8)
    x = np.random.default_rng(6).uniform(-1, 1, (2, 45, 51, 3)).astype("float32")
    for model in (g, d):
        path = os.path.join(tmp_path, f"{model.name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        assert [l.__class__.__name__ for l in loaded.layers] == [l.__class__.__name__ for l in model.layers]
        np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert keras.saving.get_registered_object("tfdeblur>FusedInstanceNorm") is FusedInstanceNorm
