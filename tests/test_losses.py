"""Adversarial losses, the WGAN-GP gradient penalty (checked by hand) and content losses."""
import math
import os

import numpy as np
import pytest

import tfdeblur  # noqa: F401
import keras
import tensorflow as tf

from tfdeblur import losses as L


# ---------------------------------------------------------------------------- adversarial losses

def test_bce_losses_on_logits():
    z = tf.zeros([2, 3, 3, 1])
    # D(x) = sigmoid(0) = 1/2 for both: -log(1/2) twice
    assert float(L.bce_discriminator_loss(z, z)) == pytest.approx(2 * math.log(2.0), rel=1e-6)
    assert float(L.bce_generator_loss(z)) == pytest.approx(math.log(2.0), rel=1e-6)
    # confident and right: near zero; logits outside [0, 1] are legal inputs
    big = tf.fill([2, 3, 3, 1], 20.0)
    assert float(L.bce_discriminator_loss(big, -big)) < 1e-8
    assert float(L.bce_generator_loss(-big)) == pytest.approx(20.0, rel=1e-6)


def test_lsgan_losses():
    real = tf.constant([[1.0, 1.0]])
    fake = tf.constant([[0.0, 0.0]])
    assert float(L.lsgan_discriminator_loss(real, fake)) == 0.0
    assert float(L.lsgan_discriminator_loss(fake, real)) == pytest.approx(1.0)  # 0.5 * 1 + 0.5 * 1
    assert float(L.lsgan_generator_loss(tf.constant([3.0, -1.0]))) == pytest.approx(0.5 * (4 + 4) / 2)


def test_wgan_losses():
    real = tf.constant([1.0, 3.0])
    fake = tf.constant([-2.0, 0.0])
    assert float(L.wgan_critic_loss(real, fake)) == pytest.approx(-1.0 - 2.0)
    assert float(L.wgan_generator_loss(fake)) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ gradient penalty

def _linear_patch_critic(k, w, b):
    """A Keras critic whose k x k non-overlapping patches score sum(w * patch) + b (logits map)."""
    critic = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(1, k, strides=k, padding="valid")])
    critic.layers[-1].set_weights([w.reshape(k, k, 3, 1), np.array([b], np.float32)])
    return critic


@pytest.mark.parametrize("h,w,k", [(8, 8, 8), (12, 16, 4)])
def test_gradient_penalty_linear_critic_by_hand(h, w, k):
    """gradient_penalty sums D's patch map per sample, so for a linear critic with P
    non-overlapping patches d(sum)/dx is w tiled P times: ||grad|| = sqrt(P) * ||w||, whatever
    real, fake and alpha are, and the penalty is (sqrt(P) * ||w|| - 1)^2."""
    rng = np.random.default_rng(0)
    wk = rng.normal(scale=0.05, size=(k, k, 3)).astype(np.float32)
    critic = _linear_patch_critic(k, wk, 0.7)
    patches = (h // k) * (w // k)
    expected = (math.sqrt(patches) * float(np.linalg.norm(wk.astype(np.float64))) - 1.0) ** 2
    real = rng.uniform(-1, 1, (3, h, w, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (3, h, w, 3)).astype(np.float32)
    got = float(L.gradient_penalty(critic, real, fake))  # random alpha: irrelevant here
    assert got == pytest.approx(expected, rel=1e-5)
    got = float(L.gradient_penalty(critic, real, fake, alpha=tf.fill([3, 1, 1, 1], 0.3)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_interpolates_between_real_and_fake():
    """Critic D(x) = 0.5 * sum(x^2): grad = x_hat = real + alpha (fake - real), so the penalty is
    mean_i (||x_hat_i|| - 1)^2 with the given per-sample alpha."""
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (4, 5, 6, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (4, 5, 6, 3)).astype(np.float32)
    alpha = np.array([0.0, 0.25, 0.5, 1.0], np.float32).reshape(4, 1, 1, 1)

    def critic(x, training=False):
        return 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])[:, None]

    x_hat = real.astype(np.float64) + alpha * (fake - real)
    norms = np.sqrt((x_hat**2).sum(axis=(1, 2, 3)))
    expected = float(np.mean((norms - 1.0) ** 2))
    got = float(L.gradient_penalty(critic, real, fake, alpha=tf.constant(alpha)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_zero_for_unit_gradient_critic():
    wk = np.zeros((4, 4, 3), np.float32)
    wk[0, 0, 0] = 1.0  # ||w|| = 1, one patch
    critic = _linear_patch_critic(4, wk, 0.0)
    x = tf.random.uniform([2, 4, 4, 3], seed=1)
    assert float(L.gradient_penalty(critic, x, -x)) == pytest.approx(0.0, abs=1e-10)


# ---------------------------------------------------------------------------------- content

def test_charbonnier_and_content_loss_terms():
    x = tf.random.uniform([2, 16, 16, 3], -1, 1, seed=2)
    assert float(L.charbonnier(x, x)) == pytest.approx(1e-3, rel=1e-4)
    y = x + 0.5
    assert float(L.charbonnier(x, y)) == pytest.approx(math.sqrt(0.25 + 1e-6), rel=1e-4)
    loss = L.ContentLoss({"l1": 2.0, "charbonnier": 1.0, "ssim": 0.5})
    expected = 2.0 * 0.5 + math.sqrt(0.25 + 1e-6) + 0.5 * (1.0 - float(tf.reduce_mean(tf.image.ssim(x, y, 2.0))))
    assert float(loss(x, y)) == pytest.approx(expected, rel=1e-4)
    assert float(L.ContentLoss({"ssim": 1.0})(x, x)) == pytest.approx(0.0, abs=1e-5)


def test_content_loss_rejects_bad_terms():
    with pytest.raises(ValueError, match="unknown content loss term 'perceptual'"):
        L.ContentLoss({"perceptual": 1.0})
    with pytest.raises(ValueError):
        L.ContentLoss({})


def test_vgg19_missing_weights_file_message(tmp_path):
    missing = str(tmp_path / "nowhere" / L.VGG19_WEIGHTS_FILE)
    with pytest.raises(L.ContentLossUnavailable) as e:
        L.ContentLoss({"vgg19": 1.0}, vgg19_weights=missing)
    msg = str(e.value)
    assert "\n" not in msg
    assert missing in msg and "does not exist" in msg
    assert os.path.join(".keras", "models", L.VGG19_WEIGHTS_FILE) in msg  # where keras looks
    assert "train.vgg19_weights" in msg  # the config key that exists
    for offline in ("face", "charbonnier", "l1", "ssim"):
        assert f"'{offline}'" in msg


def test_vgg19_download_failure_is_reported(monkeypatch):
    """weights=None means Keras' ImageNet download; offline that fails (here: deterministically,
    with the error Keras raises for a DNS failure, not by touching the network)."""
    import keras.src.applications.vgg19 as vgg_module

    def offline(*args, **kwargs):
        raise Exception(f"URL fetch failure on https://storage.googleapis.com/{args[0] if args else ''}: "
                        "None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(vgg_module.file_utils, "get_file", offline)
    with pytest.raises(L.ContentLossUnavailable) as e:
        L.VGG19Loss(None)
    msg = str(e.value)
    assert "\n" not in msg
    assert "could not be loaded" in msg and "Name or service not known" in msg
    assert L.VGG19_WEIGHTS_FILE in msg and "'charbonnier'" in msg


def test_vgg19_loss_uses_block3_conv3_of_a_local_file(tmp_path):
    """A local weights file (here: random weights saved in Keras' own format) is used as given."""
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg19.weights.h5")
    vgg.save_weights(path)
    loss = L.VGG19Loss(path)
    assert loss.features.output.name.startswith("block3_conv3") or loss.features.layers[-1].name == "block3_conv3"
    x = tf.random.uniform([1, 32, 32, 3], -1, 1, seed=3)
    assert float(loss(x, x)) == 0.0
    assert float(loss(x, -x)) > 0.0
