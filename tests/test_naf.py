"""The NAFNet-style generator family (issue 20): any H x W, identity at start, save/load, export
parity, and training steps that reduce the loss."""
import numpy as np
import pytest

import tfdeblur  # noqa: F401
import keras
import tensorflow as tf

from tfdeblur.models import build_generator, count_macs
from tfdeblur.naf import build_naf_generator

NAF = dict(arch="naf", ngf=8, n_blocks=1, n_down=2, pixel_shuffle=2)


@pytest.fixture(scope="module")
def naf():
    keras.utils.set_random_seed(0)
    g = build_generator(**NAF)
    # Move off the identity start (zero output conv, zero branch scales), so tests see a real map.
    rng = np.random.default_rng(0)
    g.set_weights([w + 0.05 * rng.standard_normal(w.shape).astype(w.dtype) for w in g.get_weights()])
    return g


@pytest.mark.parametrize("hw", [(61, 83), (32, 32), (17, 130)])
def test_naf_output_shape_equals_input_for_any_size(naf, hw):
    x = tf.random.uniform([2, *hw, 3], -1, 1, seed=1)
    y = naf(x)
    assert y.shape == x.shape
    assert float(tf.reduce_max(tf.abs(y))) <= 1.0
    assert float(tf.reduce_mean(tf.abs(y - x))) > 1e-4


def test_a_fresh_naf_generator_is_the_identity():
    g = build_naf_generator(width=8, enc_blocks=(1, 2), middle_blocks=1, dec_blocks=(1, 1))
    x = tf.random.uniform([1, 40, 52, 3], -1, 1, seed=2)
    np.testing.assert_allclose(g(x).numpy(), x.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="same"):
        build_naf_generator(enc_blocks=(1, 1), dec_blocks=(1,))
    with pytest.raises(ValueError, match="arch"):
        build_generator(arch="vit")


def test_naf_save_load_round_trip_and_macs(naf, tmp_path):
    path = str(tmp_path / "naf.keras")
    naf.save(path)
    loaded = keras.models.load_model(path, compile=False)
    x = tf.random.uniform([1, 45, 70, 3], -1, 1, seed=3)
    np.testing.assert_allclose(loaded(x).numpy(), naf(x).numpy(), atol=1e-6)
    # the 3-level width-24 NAF costs less than the lean ngf-24 ResNet (configs/cpu.yaml): 0.85 vs 1.49 GMAC
    naf24 = build_generator(arch="naf", ngf=24, n_blocks=4, n_down=3, pixel_shuffle=2)
    lean = build_generator(ngf=24, n_blocks=6, n_down=2, stem_kernel=5, pixel_shuffle=2, norm="fused")
    assert 0.7e9 < count_macs(naf24) < 0.7 * count_macs(lean)


def test_naf_tflite_float32_parity(naf):
    from tfdeblur.export import run_tflite, tflite_model

    blob = tflite_model(naf, size=64)
    rng = np.random.default_rng(0)
    images = (rng.random((2, 64, 64, 3)) * 255).astype(np.uint8)
    ref = np.clip(np.round((naf(images.astype(np.float32) / 127.5 - 1).numpy() + 1) * 127.5), 0, 255)
    assert np.abs(run_tflite(blob, images).astype(int) - ref.astype(int)).max() <= 1


def test_naf_training_steps_reduce_the_content_loss(small_lfw):
    import glob
    import os

    from tfdeblur.data import load_faces, train_dataset
    from tfdeblur.gan import make_gan
    from tfdeblur.losses import ContentLoss
    from tfdeblur.models import build_discriminator

    images, _ = load_faces(sorted(glob.glob(os.path.join(small_lfw, "*", "*.jpg")))[:4], 64)
    blurred, sharp = next(iter(train_dataset(images, 2, 32, seed=0, total_steps=1)))
    keras.utils.set_random_seed(0)
    gan = make_gan("lsgan", build_generator(**NAF), build_discriminator(ndf=8), ContentLoss({"charbonnier": 1.0}),
                   content_weight=1.0, adv_weight=0.01, n_critic=1)
    gan.compile(g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5), d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    gan.build_optimizers()
    gan.rng = tf.random.Generator.from_seed(0)
    before = float(gan.content_loss(gan.generator(blurred, training=True), sharp))
    for _ in range(8):
        gan.train_step((blurred, sharp))
    after = float(gan.content_loss(gan.generator(blurred, training=True), sharp))
    assert after < 0.95 * before, (before, after)
