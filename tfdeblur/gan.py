"""GAN training models: one ``keras.Model`` subclass per adversarial loss, after keras-io's
``examples/generative/wgan_gp.py`` (override ``compile`` and ``train_step``; track losses with
``keras.metrics.Mean``).

``train_step`` never applies a non-finite update: if any loss or gradient is NaN/Inf the step's
updates are skipped and the ``nonfinite`` metric reports it, so the training loop can stop (or
back off) with the weights still intact.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfdeblur import losses as L
from tfdeblur.config import GAN_LOSSES

__all__ = ["DeblurGAN", "GAN", "LSGAN", "WGANGP", "GAN_CLASSES", "make_gan", "make_compiled_gan"]


def _all_finite(tensors):
    checks = [tf.reduce_all(tf.math.is_finite(tf.cast(t, tf.float32))) for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


def _replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


class DeblurGAN(keras.Model):
    """Holds generator G and discriminator D; subclasses define the adversarial loss."""

    def __init__(self, generator, discriminator, content_loss, content_weight=1.0, adv_weight=0.01,
                 teacher=None, distill_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.content_loss = content_loss
        self.content_weight = float(content_weight)
        self.adv_weight = float(adv_weight)
        # knowledge distillation: a frozen (usually larger) generator whose restorations G also
        # imitates (Charbonnier), a denser target for a small G than the sharp image alone
        self.teacher = teacher
        self.distill_weight = float(distill_weight)
        if teacher is not None:
            teacher.trainable = False

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.g_adv_tracker = keras.metrics.Mean(name="g_adv")
        self.g_content_tracker = keras.metrics.Mean(name="g_content")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.gp_tracker = keras.metrics.Mean(name="gp")
        self.nonfinite_tracker = keras.metrics.Sum(name="nonfinite")
        self.g_distill_tracker = keras.metrics.Mean(name="g_distill")

    def build_optimizers(self):
        """Create optimizer slots up front, so conditional (finite-only) updates work in graphs."""
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        trackers = [self.g_adv_tracker, self.g_content_tracker, self.d_loss_tracker, self.gp_tracker, self.nonfinite_tracker]
        return trackers + ([self.g_distill_tracker] if self.teacher is not None else [])

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    # -- shared pieces ------------------------------------------------------------------------

    def discriminator_loss(self, real_logits, fake_logits):
        raise NotImplementedError

    def generator_adversarial_loss(self, fake_logits):
        raise NotImplementedError

    def _apply_if_finite(self, optimizer, loss, grads, variables):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            # float16 gradients of the *scaled* loss overflow by design now and then: the loss
            # scaler skips that update and lowers its scale itself, so only the loss is judged here
            ok = _all_finite([loss])
        else:
            ok = tf.logical_and(_all_finite([loss]), _all_finite(grads))
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # every replica must take the same branch, or the gradient all-reduce deadlocks
            bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(ok, tf.float32))
            ok = tf.equal(bad, 0.0)

        def apply():
            optimizer.apply(grads, variables)
            return tf.constant(True)

        if ctx is not None and tf.distribute.has_strategy() and \
                not tf.__internal__.distribute.strategy_supports_no_merge_call():
            # MirroredStrategy: the optimizer's gradient all-reduce is a merge_call, which may not
            # sit inside a cond in replica context. As Keras' LossScaleOptimizer does: decide in
            # cross-replica context, then re-enter the replicas to apply.
            def cross_replica(strategy, ok, grads):
                ok = strategy.experimental_local_results(ok)[0]  # the same on every replica

                def apply_all():
                    strategy.extended.call_for_each_replica(lambda g: optimizer.apply(g, variables), args=(grads,))
                    return tf.constant(True)

                return tf.cond(ok, apply_all, lambda: tf.constant(False))

            return ctx.merge_call(cross_replica, args=(ok, grads))
        return tf.cond(ok, apply, lambda: tf.constant(False))

    def _discriminator_step(self, blurred, sharp, extra_loss_fn=None):
        fake = self.generator(blurred, training=True)
        with tf.GradientTape() as tape:
            real_logits = tf.cast(self.discriminator(sharp, training=True), tf.float32)
            fake_logits = tf.cast(self.discriminator(fake, training=True), tf.float32)
            d_loss = self.discriminator_loss(real_logits, fake_logits)
            extra = extra_loss_fn(sharp, fake) if extra_loss_fn else tf.constant(0.0)
            total = d_loss + extra
            scaled = self.d_optimizer.scale_loss(total / _replicas())
        variables = self.discriminator.trainable_variables
        grads = tape.gradient(scaled, variables)
        ok = self._apply_if_finite(self.d_optimizer, total, grads, variables)
        return d_loss, extra, ok

    def _generator_step(self, blurred, sharp):
        with tf.GradientTape() as tape:
            restored = self.generator(blurred, training=True)
            fake_logits = tf.cast(self.discriminator(restored, training=True), tf.float32)
            adv = self.generator_adversarial_loss(fake_logits)
            content = self.content_loss(restored, sharp)
            total = self.adv_weight * adv + self.content_weight * content
            if self.teacher is not None:
                distill = L.charbonnier(restored, tf.stop_gradient(self.teacher(blurred, training=False)))
                self.g_distill_tracker.update_state(distill)
                total += self.distill_weight * distill
            scaled = self.g_optimizer.scale_loss(total / _replicas())
        variables = self.generator.trainable_variables
        grads = tape.gradient(scaled, variables)
        ok = self._apply_if_finite(self.g_optimizer, total, grads, variables)
        return adv, content, ok

    def _report(self, g_adv, g_content, d_loss, gp, ok):
        self.g_adv_tracker.update_state(g_adv)
        self.g_content_tracker.update_state(g_content)
        self.d_loss_tracker.update_state(d_loss)
        self.gp_tracker.update_state(gp)
        self.nonfinite_tracker.update_state(1.0 - tf.cast(ok, tf.float32))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        """One discriminator step, then one generator step, on the same batch (the gradient
        penalty's GAN overrides this with ``n_critic`` critic steps)."""
        blurred, sharp = data
        d_loss, _, d_ok = self._discriminator_step(blurred, sharp)
        g_adv, g_content, g_ok = self._generator_step(blurred, sharp)
        return self._report(g_adv, g_content, d_loss, 0.0, tf.logical_and(d_ok, g_ok))


@keras.saving.register_keras_serializable(package="tfdeblur")
class GAN(DeblurGAN):
    """Original GAN: binary cross-entropy on D's logits."""

    def discriminator_loss(self, real_logits, fake_logits):
        return L.bce_discriminator_loss(real_logits, fake_logits)

    def generator_adversarial_loss(self, fake_logits):
        return L.bce_generator_loss(fake_logits)


@keras.saving.register_keras_serializable(package="tfdeblur")
class LSGAN(DeblurGAN):
    """Least-squares GAN, a=0, b=1, c=1."""

    def discriminator_loss(self, real_logits, fake_logits):
        return L.lsgan_discriminator_loss(real_logits, fake_logits, a=0.0, b=1.0)

    def generator_adversarial_loss(self, fake_logits):
        return L.lsgan_generator_loss(fake_logits, c=1.0)


@keras.saving.register_keras_serializable(package="tfdeblur")
class WGANGP(DeblurGAN):
    """WGAN-GP: critic loss + gp_weight * (||grad D(x_hat)||_2 - 1)^2, ``n_critic`` critic steps
    per generator step (each on the same batch: data is the bottleneck on CPU)."""

    def __init__(self, *args, gp_weight=10.0, n_critic=5, **kwargs):
        super().__init__(*args, **kwargs)
        self.gp_weight = float(gp_weight)
        self.n_critic = int(n_critic)

    def discriminator_loss(self, real_logits, fake_logits):
        return L.wgan_critic_loss(real_logits, fake_logits)

    def generator_adversarial_loss(self, fake_logits):
        return L.wgan_generator_loss(fake_logits)

    def train_step(self, data):
        blurred, sharp = data
        gp_value = tf.constant(0.0)
        d_loss = tf.constant(0.0)
        ok = tf.constant(True)

        def penalty(real, fake):
            # a checkpointed tf.random.Generator (set by the trainer) makes resumed runs exact
            rng = getattr(self, "rng", None)
            alpha = rng.uniform([tf.shape(real)[0], 1, 1, 1]) if rng is not None else None
            return self.gp_weight * L.gradient_penalty(self.discriminator, real, fake, alpha=alpha)

        for _ in range(self.n_critic):
            d_loss, gp_term, d_ok = self._discriminator_step(blurred, sharp, extra_loss_fn=penalty)
            gp_value = gp_term / self.gp_weight
            ok = tf.logical_and(ok, d_ok)
        g_adv, g_content, g_ok = self._generator_step(blurred, sharp)
        return self._report(g_adv, g_content, d_loss, gp_value, tf.logical_and(ok, g_ok))


# the names live in tfdeblur.config (no TensorFlow there, so flag parsing stays light)
GAN_CLASSES = dict(zip(GAN_LOSSES, (GAN, LSGAN, WGANGP)))


def make_gan(kind: str, generator, discriminator, content_loss, **kwargs) -> DeblurGAN:
    if kind not in GAN_CLASSES:
        raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(GAN_CLASSES)}")
    cls = GAN_CLASSES[kind]
    if not issubclass(cls, WGANGP):  # only the critic takes these
        kwargs.pop("gp_weight", None)
        kwargs.pop("n_critic", None)
    return cls(generator, discriminator, content_loss, **kwargs)


def make_compiled_gan(kind: str, generator, discriminator, content_loss, train_cfg: dict,
                      mixed_precision: bool = False, teacher=None) -> DeblurGAN:
    """:func:`make_gan` from a config's ``train`` section, compiled with its two Adam optimizers
    (wrapped in loss scaling under mixed precision) and with their slots built, ready to step."""
    t = train_cfg
    gan = make_gan(kind, generator, discriminator, content_loss, content_weight=t["content_weight"],
                   adv_weight=t["adv_weight"], gp_weight=t["gp_weight"], n_critic=t["n_critic"],
                   teacher=teacher, distill_weight=t["distill_weight"])
    g_opt = keras.optimizers.Adam(t["g_lr"], beta_1=t["beta_1"], beta_2=t["beta_2"])
    d_opt = keras.optimizers.Adam(t["d_lr"], beta_1=t["beta_1"], beta_2=t["beta_2"])
    if mixed_precision:
        g_opt = keras.optimizers.LossScaleOptimizer(g_opt)
        d_opt = keras.optimizers.LossScaleOptimizer(d_opt)
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt)
    gan.build_optimizers()
    return gan
