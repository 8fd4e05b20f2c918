"""Adversarial losses, the gradient penalty and content (perceptual / pixel) losses.

All images are float in [-1, 1]. Losses return a scalar: the mean over the (per-replica) batch.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from tfdeblur.errors import one_line
from tfdeblur.face_embedder import CROP

__all__ = [
    "bce_discriminator_loss",
    "bce_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "gradient_penalty",
    "charbonnier",
    "ContentLoss",
    "FaceFeatureLoss",
    "VGG19Loss",
    "IdentityFeatureLoss",
    "ContentLossUnavailable",
    "build_content_loss",
]


# --------------------------------------------------------------------------- adversarial losses

def bce_discriminator_loss(real_logits, fake_logits):
    real = tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(real_logits), real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits)
    return tf.reduce_mean(real) + tf.reduce_mean(fake)


def bce_generator_loss(fake_logits):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits))


def lsgan_discriminator_loss(real_logits, fake_logits, a=0.0, b=1.0):
    """Mao et al. (2017) with a=0 (fake), b=1 (real)."""
    return 0.5 * tf.reduce_mean(tf.square(real_logits - b)) + 0.5 * tf.reduce_mean(tf.square(fake_logits - a))


def lsgan_generator_loss(fake_logits, c=1.0):
    return 0.5 * tf.reduce_mean(tf.square(fake_logits - c))


def wgan_critic_loss(real_logits, fake_logits):
    return tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)


def wgan_generator_loss(fake_logits):
    return -tf.reduce_mean(fake_logits)


def gradient_penalty(critic, real, fake, alpha=None):
    """Gulrajani et al. (2017): E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat on real-fake segments.

    The norm is taken per sample over all of x_hat's pixels; D's output (a patch map) is summed
    per sample first, so each sample's critic value is one scalar.
    """
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    if alpha is None:
        alpha = tf.random.uniform([tf.shape(real)[0], 1, 1, 1], 0.0, 1.0)
    interpolated = real + alpha * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        scores = tf.cast(critic(interpolated, training=True), tf.float32)
        per_sample = tf.reduce_sum(tf.reshape(scores, [tf.shape(scores)[0], -1]), axis=1)
    grads = tape.gradient(per_sample, interpolated)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norm - 1.0))


# ------------------------------------------------------------------------------ content losses

def charbonnier(x, y, eps=1e-3):
    """Smooth L1 (Charbonnier): mean sqrt((x - y)^2 + eps^2)."""
    return tf.reduce_mean(tf.sqrt(tf.square(tf.cast(x, tf.float32) - tf.cast(y, tf.float32)) + eps * eps))


class ContentLossUnavailable(RuntimeError):
    """A content loss cannot be built here (e.g. VGG19 ImageNet weights missing offline)."""


class ContentLoss:
    """Weighted sum of content terms, e.g. ``{"charbonnier": 1.0, "face": 0.1}``.

    Terms: ``l1``, ``charbonnier``, ``ssim`` (1 - SSIM), ``face`` (MTCNN features), ``vgg19``,
    ``identity`` (a frozen face embedder's cosine distance; ``identity_model``).
    """

    def __init__(self, terms: dict, vgg19_weights: str | None = None, identity_model: str | None = None):
        if not terms:
            raise ValueError("content loss needs at least one term")
        self.terms = {}
        for name, weight in terms.items():
            if name not in ("l1", "charbonnier", "ssim", "face", "vgg19", "identity"):
                raise ValueError(
                    f"unknown content loss term {name!r}; use l1, charbonnier, ssim, face, vgg19 or identity"
                )
            self.terms[name] = float(weight)
        self.face = FaceFeatureLoss() if "face" in self.terms else None
        self.vgg = VGG19Loss(vgg19_weights) if "vgg19" in self.terms else None
        self.identity = IdentityFeatureLoss(identity_model) if "identity" in self.terms else None

    def __call__(self, restored, sharp):
        restored = tf.cast(restored, tf.float32)
        sharp = tf.cast(sharp, tf.float32)
        total = 0.0
        for name, w in self.terms.items():
            if name == "l1":
                term = tf.reduce_mean(tf.abs(restored - sharp))
            elif name == "charbonnier":
                term = charbonnier(restored, sharp)
            elif name == "ssim":
                term = 1.0 - tf.reduce_mean(tf.image.ssim(restored, sharp, max_val=2.0))
            elif name == "face":
                term = self.face(restored, sharp)
            elif name == "identity":
                term = self.identity(restored, sharp)
            else:
                term = self.vgg(restored, sharp)
            total = total + w * tf.cast(term, tf.float32)  # terms may come out of bfloat16 networks
        return total


class FaceFeatureLoss:
    """L1 distance between MTCNN P-Net / R-Net feature maps of restored and sharp faces.

    The weights ship inside the ``mtcnn`` wheel, so this perceptual loss works offline. P-Net
    is fully convolutional and runs on the image at three pyramid scales (MTCNN sees faces at
    ~12 px); R-Net runs on a 24x24 resize. Because MTCNN also judges the evaluation, results
    trained with this loss must be confirmed with an independent detector (evaluate.py does).
    """

    def __init__(self, scales=(1, 2, 4)):
        self.scales = tuple(int(s) for s in scales)  # downsampling factors (average pooling)
        self.pnet_features, self.rnet_features = _mtcnn_feature_extractors()

    def __call__(self, restored, sharp):
        total = 0.0
        for s in self.scales:
            a, b = restored, sharp
            if s > 1:  # avg_pool, not resize(area): ResizeArea has no gradient
                a = tf.nn.avg_pool2d(a, s, s, "VALID")
                b = tf.nn.avg_pool2d(b, s, s, "VALID")
            for fa, fb in zip(self.pnet_features(a), self.pnet_features(b)):
                total += tf.reduce_mean(tf.abs(fa - tf.stop_gradient(fb)))
        a = tf.image.resize(restored, [24, 24], method="bilinear", antialias=True)
        b = tf.image.resize(sharp, [24, 24], method="bilinear", antialias=True)
        for fa, fb in zip(self.rnet_features(a), self.rnet_features(b)):
            total += tf.reduce_mean(tf.abs(fa - tf.stop_gradient(fb)))
        return total / (len(self.scales) + 1)


def _mtcnn_feature_extractors():
    """Frozen functional feature extractors rebuilt from the mtcnn wheel's P-Net and R-Net."""
    try:
        from mtcnn.network.pnet import PNet
        from mtcnn.network.rnet import RNet
        from mtcnn.utils.tensorflow import load_weights
    except ImportError as e:  # pragma: no cover - mtcnn is a hard requirement
        raise ContentLossUnavailable(f"the 'face' content loss needs the mtcnn package ({e})") from None
    pnet = PNet()
    pnet.build((None, None, None, 3))
    pnet.set_weights(load_weights("pnet.lz4"))
    rnet = RNet()
    rnet.build((None, 24, 24, 3))
    rnet.set_weights(load_weights("rnet.lz4"))
    for net in (pnet, rnet):
        net.trainable = False

    def pnet_features(x):
        # MTCNN normalises pixels as (p - 127.5) / 128 ~= our [-1, 1] range.
        f1 = pnet.prelu1(pnet.conv1(x))
        f2 = pnet.prelu2(pnet.conv2(pnet.maxpool1(f1)))
        f3 = pnet.prelu3(pnet.conv3(f2))
        return [f1, f2, f3]

    def rnet_features(x):
        feats = []
        y = x
        for layer in rnet.layers:
            if isinstance(layer, (keras.layers.Flatten, keras.layers.Permute, keras.layers.Dense)):
                break
            y = layer(y)
            if isinstance(layer, keras.layers.PReLU):
                feats.append(y)
        return feats

    return pnet_features, rnet_features


class IdentityFeatureLoss:
    """Cosine distance between a frozen face embedder's embeddings of restored and sharp images
    (:mod:`tfdeblur.face_embedder`, trained on the training persons with an ArcFace head; never
    dlib, which judges identity). Images are average-pooled to the embedder's input size (a
    128² crop to 64²) and the cosine distance is averaged over the batch. Images larger than the
    crop (``data.crop: 256``, whole aligned LFW images) are judged on their centre crop window,
    which always holds the face (what the embedder's ``centre_crop`` AUC measures)."""

    def __init__(self, path):
        if not path or not os.path.isfile(path):
            raise ContentLossUnavailable(f"the identity content term needs train.identity_model; {path!r} is not a file "
                                         "(train one with scripts/train_face_embedder.py)")
        try:
            self.embedder = keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as e:
            raise ContentLossUnavailable(f"cannot load the face embedder {path!r} ({one_line(e)})") from None
        self.embedder.trainable = False
        self.size = int(self.embedder.input_shape[1])

    def _embed(self, x):
        side = int(x.shape[1] or 0)
        if side > CROP:  # aligned faces: the centre window, not the background around it
            o = (side - CROP) // 2
            x = x[:, o : o + CROP, o : o + CROP]
        factor = max(1, int(x.shape[1] or self.size) // self.size)
        if factor > 1:  # avg_pool, not resize(area): ResizeArea has no gradient
            x = tf.nn.avg_pool2d(x, factor, factor, "VALID")
        if x.shape[1] != self.size or x.shape[2] != self.size:
            x = tf.image.resize(x, [self.size, self.size], method="bilinear", antialias=True)
        return tf.cast(self.embedder(x, training=False), tf.float32)

    def __call__(self, restored, sharp):
        a, b = self._embed(restored), tf.stop_gradient(self._embed(sharp))
        return tf.reduce_mean(1.0 - tf.reduce_sum(a * b, axis=-1))


VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


class VGG19Loss:
    """The paper's perceptual loss: MSE of VGG19 block3_conv3 features (ImageNet weights).

    ``weights``: a local ``.h5`` file, or None for keras.applications' ImageNet weights (from
    ``~/.keras/models``, downloaded there when the network allows). Never falls back silently.
    """

    def __init__(self, weights: str | None = None):
        cached = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models", VGG19_WEIGHTS_FILE)
        source = weights if weights else "imagenet"
        if weights and not os.path.isfile(weights):
            raise ContentLossUnavailable(_vgg_message(f"the VGG19 weights file {weights!r} does not exist", cached))
        try:
            vgg = keras.applications.VGG19(include_top=False, weights=source, input_shape=(None, None, 3))
        except Exception as e:  # network errors, corrupt files: all mean "not available"
            reason = one_line(e)
            raise ContentLossUnavailable(_vgg_message(f"VGG19 ImageNet weights could not be loaded ({reason})", cached)) from None
        vgg.trainable = False
        self.features = keras.Model(vgg.input, vgg.get_layer("block3_conv3").output)

    def __call__(self, restored, sharp):
        def prep(x):  # [-1, 1] RGB -> caffe-style BGR minus ImageNet means
            x = (x + 1.0) * 127.5
            return keras.applications.vgg19.preprocess_input(x)

        fa = self.features(prep(restored))
        fb = tf.stop_gradient(self.features(prep(sharp)))
        return tf.reduce_mean(tf.square(fa - fb))


def _vgg_message(reason, cached):
    return (
        f"{reason}. The 'vgg19' content loss needs Keras' ImageNet VGG19 weights: put "
        f"{VGG19_WEIGHTS_FILE} at {cached}, or set train.vgg19_weights in the config to a local "
        "copy. Offline alternatives that need no download: content terms 'face' (MTCNN features), "
        "'charbonnier', 'l1', 'ssim' (e.g. configs/cpu.yaml)."
    )


def build_content_loss(terms: dict, vgg19_weights: str | None = None, identity_model: str | None = None) -> ContentLoss:
    return ContentLoss(terms, vgg19_weights=vgg19_weights, identity_model=identity_model)
