"""GAN train steps (issue 3): every adversarial loss optimises what it claims to, on a tiny fixed
batch of real face crops, and a non-finite step never touches the weights.

Steps run eagerly: for 3-4 steps of a tiny model that is cheaper than tracing a tf.function.
"""
import glob
import os

import numpy as np
import pytest

import tfdeblur  # noqa: F401
import keras
import tensorflow as tf

from tfdeblur.data import load_faces, train_dataset
from tfdeblur.gan import GAN, LSGAN, WGANGP, make_gan
from tfdeblur.losses import ContentLoss, gradient_penalty
from tfdeblur.models import build_discriminator, build_generator

GP_WEIGHT = 10.0


@pytest.fixture(scope="module")
def fixed_batch(small_lfw):
    paths = sorted(glob.glob(os.path.join(small_lfw, "*", "*.jpg")))[:4]
    images, _ = load_faces(paths, 64)
    blurred, sharp = next(iter(train_dataset(images, 2, 32, seed=0, total_steps=1)))
    assert blurred.shape == sharp.shape == (2, 32, 32, 3)
    return blurred, sharp


def _make(kind, seed=0, g_lr=1e-3, d_lr=1e-3):
    keras.utils.set_random_seed(seed)
    g = build_generator(ngf=8, n_blocks=1, pixel_shuffle=2, stem_kernel=3)
    d = build_discriminator(ndf=8)
    gan = make_gan(kind, g, d, ContentLoss({"charbonnier": 1.0}), content_weight=1.0, adv_weight=0.01,
                   gp_weight=GP_WEIGHT, n_critic=1)
    gan.compile(g_optimizer=keras.optimizers.Adam(g_lr, beta_1=0.5),
                d_optimizer=keras.optimizers.Adam(d_lr, beta_1=0.5))
    gan.build_optimizers()
    gan.rng = tf.random.Generator.from_seed(seed)
    return gan


def _d_objective(gan, blurred, sharp):
    """The discriminator's own objective on the batch (WGAN-GP: critic loss + GP at alpha=1/2)."""
    fake = gan.generator(blurred, training=True)
    value = float(gan.discriminator_loss(gan.discriminator(sharp, training=True), gan.discriminator(fake, training=True)))
    if isinstance(gan, WGANGP):
        value += GP_WEIGHT * float(gradient_penalty(gan.discriminator, sharp, fake, alpha=tf.fill([2, 1, 1, 1], 0.5)))
    return value


def _content(gan, blurred, sharp):
    return float(gan.content_loss(gan.generator(blurred, training=True), sharp))


def test_make_gan_classes_and_errors():
    g = build_generator(ngf=8, n_blocks=1, stem_kernel=3)
    d = build_discriminator(ndf=8)
    content = ContentLoss({"l1": 1.0})
    assert type(make_gan("gan", g, d, content, gp_weight=1.0, n_critic=3)) is GAN
    assert type(make_gan("lsgan", g, d, content)) is LSGAN
    w = make_gan("wgan-gp", g, d, content, gp_weight=5.0, n_critic=3)
    assert type(w) is WGANGP and (w.gp_weight, w.n_critic) == (5.0, 3)
    with pytest.raises(ValueError, match="unknown GAN loss 'hinge'"):
        make_gan("hinge", g, d, content)


@pytest.mark.parametrize("kind", ["gan", "lsgan", "wgan-gp"])
def test_train_steps_reduce_their_losses(kind, fixed_batch):
    blurred, sharp = fixed_batch
    gan = _make(kind)
    g_before = [w.numpy().copy() for w in gan.generator.weights]

    # 1) D alone (G's learning rate 0): the discriminator objective must drop.
    gan.g_optimizer.learning_rate.assign(0.0)
    d0 = _d_objective(gan, blurred, sharp)
    for _ in range(3):
        logs = gan.train_step((blurred, sharp))
    d1 = _d_objective(gan, blurred, sharp)
    assert d1 < 0.8 * d0, (kind, d0, d1)
    for a, b in zip(g_before, gan.generator.weights):
        np.testing.assert_array_equal(a, b.numpy())  # G really did not move
    assert float(logs["nonfinite"]) == 0.0
    assert np.isfinite(float(logs["d_loss"]))

    # 2) both train: G's content loss on the batch must drop.
    gan.g_optimizer.learning_rate.assign(1e-3)
    c0 = _content(gan, blurred, sharp)
    for _ in range(3):
        logs = gan.train_step((blurred, sharp))
    c1 = _content(gan, blurred, sharp)
    assert c1 < 0.9 * c0, (kind, c0, c1)
    assert float(logs["nonfinite"]) == 0.0
    if kind == "wgan-gp":
        assert float(logs["gp"]) > 0.0
    else:
        assert float(logs["gp"]) == 0.0


def test_nonfinite_step_leaves_weights_untouched(fixed_batch):
    blurred, sharp = fixed_batch
    gan = _make("wgan-gp")
    before = [w.numpy().copy() for w in gan.generator.weights + gan.discriminator.weights]
    iterations = int(gan.g_optimizer.iterations.numpy()), int(gan.d_optimizer.iterations.numpy())
    logs = gan.train_step((blurred * np.nan, sharp))
    assert float(logs["nonfinite"]) == 1.0
    after = [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert (int(gan.g_optimizer.iterations.numpy()), int(gan.d_optimizer.iterations.numpy())) == iterations
    # the next, finite step trains normally
    logs = gan.train_step((blurred, sharp))
    assert float(logs["nonfinite"]) == 1.0  # a running Sum: still the one bad step
    assert int(gan.g_optimizer.iterations.numpy()) == iterations[0] + 1


def test_distillation_pulls_the_generator_towards_a_frozen_teacher(fixed_batch):
    blurred, sharp = fixed_batch
    keras.utils.set_random_seed(1)
    teacher = build_generator(ngf=8, n_blocks=2, pixel_shuffle=2, stem_kernel=3)
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    gan = _make("lsgan")
    # content and adversarial terms off: only the teacher's restoration is a target
    gan.content_weight, gan.adv_weight = 0.0, 0.0
    gan.teacher, gan.distill_weight = teacher, 1.0
    target = teacher(blurred, training=False)

    def distance():
        return float(tf.reduce_mean(tf.abs(gan.generator(blurred, training=False) - target)))

    d0 = distance()
    for _ in range(8):
        logs = gan.train_step((blurred, sharp))
    assert distance() < 0.8 * d0
    assert "g_distill" in logs and np.isfinite(float(logs["g_distill"]))
    for a, b in zip(teacher_before, teacher.weights):
        np.testing.assert_array_equal(a, b.numpy())  # the teacher is never trained
    assert "g_distill" not in _make("lsgan").train_step((blurred, sharp))


def _generator_update(kind, batch, seed=0):
    """The generator's weight change after two steps from the seed's initial weights."""
    gan = _make(kind, seed=seed)
    before = [w.numpy().copy() for w in gan.generator.weights]
    for _ in range(2):
        gan.train_step(batch)
    return np.concatenate([(w.numpy() - b).ravel() for w, b in zip(gan.generator.weights, before)])


def test_the_three_losses_give_different_deterministic_updates_from_the_same_start(fixed_batch):
    """Table 1's premise (issue 19): same weights, seed and batch, only the loss differs."""
    updates = {kind: _generator_update(kind, fixed_batch) for kind in ("gan", "lsgan", "wgan-gp")}
    for kind, u in updates.items():
        assert np.abs(u).max() > 0, kind
        np.testing.assert_array_equal(u, _generator_update(kind, fixed_batch), err_msg=kind)  # deterministic
    kinds = list(updates)
    for i in range(3):
        for j in range(i + 1, 3):
            a, b = updates[kinds[i]], updates[kinds[j]]
            assert np.abs(a - b).max() > 1e-6 * np.abs(a).max(), (kinds[i], kinds[j])
