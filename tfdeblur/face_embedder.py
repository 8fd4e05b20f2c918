"""A small face-embedding network for training's ``identity`` content term (issue 18).

The identity judge (dlib's ResNet, :mod:`tfdeblur.recognizers`) must never be trained on, and it
cannot be differentiated through anyway. This module trains a recognizer that can be: a small
residual CNN with an ArcFace margin head (Deng et al. 2019), on the **training persons** of an
LFW-layout folder only, then frozen and saved as a ``.keras`` file for
``train.identity_model``.

It sees what the generator's content loss sees: random 128×128 crops of 256×256 face images
(anywhere in the image, so partly off the face), resized to 64×64, flipped at random. Its
embeddings are unit vectors; the content term is their cosine distance (restored vs sharp).

    python scripts/train_face_embedder.py --data-dir ../shared/data/lfw --output models/face_embedder.keras
"""

from __future__ import annotations

import numpy as np

__all__ = ["EMBED_INPUT", "CROP", "build_face_embedder", "ArcMarginLogits", "training_set", "train_face_embedder",
           "embed_crops", "random_crops", "verification_auc"]

EMBED_INPUT = 64  # the embedder's input side (crops are average-pooled to it)
CROP = 128  # the generator's training crop


def build_face_embedder(dim: int = 128, width: int = 32, size: int = EMBED_INPUT):
    """Images in [-1, 1], ``[N, size, size, 3]`` -> unit embeddings ``[N, dim]``."""
    import keras
    from keras import layers

    def block(x, filters, stride, name):
        y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=f"{name}_a")(x)
        y = layers.BatchNormalization(name=f"{name}_a_bn")(y)
        y = layers.ReLU(name=f"{name}_a_relu")(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b")(y)
        y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
        if stride != 1 or x.shape[-1] != filters:
            x = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_skip")(x)
            x = layers.BatchNormalization(name=f"{name}_skip_bn")(x)
        return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))

    inputs = keras.Input((size, size, 3), name="face")
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    for i, mult in enumerate((1, 2, 4, 8)):  # 64 -> 32 -> 16 -> 8 -> 4
        x = block(x, width * mult, 2, f"stage{i + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(dim, name="embedding")(x)
    x = layers.UnitNormalization(name="unit")(x)
    return keras.Model(inputs, x, name="face_embedder")


def _arc_margin_layer():
    import keras
    import tensorflow as tf

    class ArcMarginLogits(keras.layers.Layer):
        """ArcFace logits: ``s * cos(theta + m)`` for the true class, ``s * cos(theta)`` otherwise."""

        def __init__(self, n_classes, scale=30.0, margin=0.3, **kwargs):
            super().__init__(**kwargs)
            self.n_classes, self.scale, self.margin = int(n_classes), float(scale), float(margin)

        def build(self, input_shape):
            self.w = self.add_weight(shape=(int(input_shape[-1]), self.n_classes), initializer="glorot_uniform",
                                     name="class_centres")

        def call(self, embeddings, labels):
            cos = tf.matmul(embeddings, tf.math.l2_normalize(self.w, axis=0))
            theta = tf.acos(tf.clip_by_value(cos, -1.0 + 1e-6, 1.0 - 1e-6))
            target = tf.one_hot(labels, self.n_classes, dtype=cos.dtype) > 0
            return self.scale * tf.where(target, tf.cos(theta + self.margin), cos)

    return ArcMarginLogits


def ArcMarginLogits(n_classes, scale=30.0, margin=0.3):  # noqa: N802 - a layer factory (keeps keras out of import)
    return _arc_margin_layer()(n_classes, scale=scale, margin=margin)


def training_set(paths, min_images: int = 2, max_per_person: int = 30):
    """``(paths, class ids)`` of the persons with at least ``min_images`` photos, at most
    ``max_per_person`` each (a few persons with hundreds of photos would fill the classes)."""
    from tfdeblur.identity import labels_from_paths

    by_person = {}
    for p, person in zip(paths, labels_from_paths(paths)):
        by_person.setdefault(person, []).append(p)
    keep = sorted(person for person, ps in by_person.items() if len(ps) >= min_images)
    out_paths, ids = [], []
    for k, person in enumerate(keep):
        for p in sorted(by_person[person])[:max_per_person]:
            out_paths.append(p)
            ids.append(k)
    return out_paths, np.asarray(ids, np.int32)


def random_crops(images, rng, crop=CROP, size=EMBED_INPUT):
    """Random ``crop`` windows anywhere in the images, flipped at random, pooled to ``size``; [-1, 1]."""
    n, h, w = images.shape[:3]
    ys = rng.integers(0, h - crop + 1, n)
    xs = rng.integers(0, w - crop + 1, n)
    out = np.stack([images[i, y : y + crop, x : x + crop] for i, (y, x) in enumerate(zip(ys, xs))])
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return _pooled(out, size)


def _pooled(crops_uint8, size=EMBED_INPUT):
    """uint8 square crops average-pooled to ``size`` (a whole factor), in [-1, 1]: the embedder's input."""
    n, side = crops_uint8.shape[:2]
    f = side // size
    return crops_uint8.reshape(n, size, f, size, f, 3).astype(np.float32).mean(axis=(2, 4)) / 127.5 - 1.0


def embed_crops(embedder, images_uint8, offset=None, batch=128):
    """Embeddings of one ``CROP`` window per 256² image: the centre (``offset=None``) or at ``offset``."""
    h = images_uint8.shape[1]
    o = (h - CROP) // 2 if offset is None else int(offset)
    x = _pooled(images_uint8[:, o : o + CROP, o : o + CROP])
    return np.concatenate([embedder(x[i : i + batch], training=False).numpy() for i in range(0, len(x), batch)])


def verification_auc(embeddings, labels, seed=0, max_genuine=3000):
    """ROC AUC of same-person vs different-person pairs (cosine distance), with the pair count."""
    from tfdeblur import identity

    pairs = identity.make_pairs(labels, max_genuine=max_genuine, seed=seed)
    lab = np.asarray(labels)
    genuine = lab[pairs[:, 0]] == lab[pairs[:, 1]]
    dist = 1.0 - np.sum(embeddings[pairs[:, 0]] * embeddings[pairs[:, 1]], axis=1)
    return identity.roc_auc(dist, genuine), len(pairs)


def train_face_embedder(images_uint8, class_ids, epochs: int = 30, batch_size: int = 64, lr: float = 1e-3,
                        seed: int = 0, dim: int = 128, width: int = 32, verbose: int = 1):
    """Train the embedder with an ArcFace head on ``images_uint8`` (256² faces) and their
    ``class_ids``; returns the frozen embedder (the head is dropped)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    n_classes = int(class_ids.max()) + 1
    embedder = build_face_embedder(dim=dim, width=width)
    head = ArcMarginLogits(n_classes)
    head.build((None, dim))
    steps_per_epoch = max(1, len(images_uint8) // batch_size)
    total = epochs * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(lr, total)
    optimizer = keras.optimizers.Adam(schedule)
    variables = embedder.trainable_variables + head.trainable_variables
    optimizer.build(variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = head(embedder(x, training=True), y)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    progbar = keras.utils.Progbar(total, verbose=verbose, stateful_metrics=["loss"])
    done = 0
    for _ in range(epochs):
        order = rng.permutation(len(images_uint8))
        for k in range(steps_per_epoch):
            idx = np.sort(order[k * batch_size : (k + 1) * batch_size])
            x = random_crops(images_uint8[idx], rng)
            loss = float(step(tf.constant(x), tf.constant(class_ids[idx])))
            done += 1
            progbar.update(done, [("loss", loss)])
    embedder.trainable = False
    return embedder
