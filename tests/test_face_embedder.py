"""The identity content term (issue 18): a face embedder trained on training persons with an
ArcFace head, and the loss that pulls the restored face's embedding towards the sharp one's."""
import os

import numpy as np
import pytest

import tensorflow as tf

from tfdeblur import face_embedder as fe
from tfdeblur.config import ConfigError, load_config
from tfdeblur.data import load_faces
from tfdeblur.losses import ContentLoss, ContentLossUnavailable, IdentityFeatureLoss


@pytest.fixture(scope="module")
def tiny_embedder_path(tmp_path_factory, small_lfw):
    """An embedder trained for a few epochs on the small LFW copy (12 persons, 2 photos each)."""
    paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(small_lfw) for f in fs)
    train_paths, ids = fe.training_set(paths)
    images, _ = load_faces(train_paths, 256)
    embedder = fe.train_face_embedder(images, ids, epochs=3, batch_size=8, width=16, dim=16, verbose=0)  # width 8 aborted in a TF CPU kernel here (heap corruption)
    path = str(tmp_path_factory.mktemp("embedder") / "face_embedder.keras")
    embedder.save(path)
    return path, images, ids


def test_embeddings_are_unit_vectors_for_any_batch():
    model = fe.build_face_embedder(dim=16, width=16)
    x = tf.random.stateless_uniform([3, fe.EMBED_INPUT, fe.EMBED_INPUT, 3], [1, 2], -1.0, 1.0)
    emb = model(x, training=False).numpy()
    assert emb.shape == (3, 16)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_arc_margin_lowers_only_the_true_class_logit():
    head = fe.ArcMarginLogits(4, scale=10.0, margin=0.3)
    emb = tf.math.l2_normalize(tf.constant([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3]]), axis=1)
    head.build((None, 3))
    logits = head(emb, tf.constant([2, 0])).numpy()
    cos = (emb @ tf.math.l2_normalize(head.w, axis=0)).numpy()
    theta = np.arccos(np.clip(cos, -1, 1))
    expected = 10.0 * cos
    expected[0, 2] = 10.0 * np.cos(theta[0, 2] + 0.3)
    expected[1, 0] = 10.0 * np.cos(theta[1, 0] + 0.3)
    assert np.allclose(logits, expected, atol=1e-4)


def test_training_set_keeps_persons_with_two_photos_capped():
    paths = [f"/d/{p}/{p}_{i:04d}.jpg" for p, n in (("Ann", 5), ("Bob", 1), ("Cid", 2)) for i in range(n)]
    kept, ids = fe.training_set(paths, max_per_person=3)
    assert [os.path.basename(os.path.dirname(p)) for p in kept] == ["Ann"] * 3 + ["Cid"] * 2
    assert ids.tolist() == [0, 0, 0, 1, 1]


def test_verification_auc_of_hand_made_embeddings():
    labels = ["a", "a", "b", "b", "c", "c"]
    centres = {"a": [1, 0, 0], "b": [0, 1, 0], "c": [0, 0, 1]}
    perfect = np.array([centres[l] for l in labels], np.float32)
    auc, n = fe.verification_auc(perfect, labels)
    assert auc == 1.0 and n == 6  # 3 genuine + 3 impostor pairs
    swapped = perfect[[0, 2, 1, 4, 3, 5]]  # every genuine pair now two different centres
    assert fe.verification_auc(swapped, labels)[0] <= 0.5


def test_trained_embedder_separates_training_persons_better_than_chance(tiny_embedder_path):
    path, images, ids = tiny_embedder_path
    import keras

    embedder = keras.models.load_model(path, compile=False)
    auc, _ = fe.verification_auc(fe.embed_crops(embedder, images), [str(i) for i in ids])
    assert auc > 0.6  # the persons it was trained on (3 epochs of 24 photos)


def test_identity_loss_is_zero_for_the_same_face_and_pulls_a_changed_one(tiny_embedder_path):
    path, images, _ = tiny_embedder_path
    loss = IdentityFeatureLoss(path)
    sharp = tf.constant(images[:2, 64:192, 64:192].astype(np.float32) / 127.5 - 1.0)
    assert float(loss(sharp, sharp)) == pytest.approx(0.0, abs=1e-5)
    other = tf.Variable(tf.reverse(sharp, axis=[0]))  # each crop compared with the other person's
    with tf.GradientTape() as tape:
        value = loss(other, sharp)
    grad = tape.gradient(value, other)
    assert float(value) > 0.0
    assert float(tf.reduce_max(tf.abs(grad))) > 0.0  # differentiable through the frozen embedder
    content = ContentLoss({"charbonnier": 1.0, "identity": 0.5}, identity_model=path)
    assert float(content(other, sharp)) > float(content(sharp, sharp))


def test_identity_term_needs_an_embedder_file(tmp_path):
    with pytest.raises(ConfigError, match="identity_model"):
        load_config(None, {"train.content": {"charbonnier": 1.0, "identity": 0.1}})
    with pytest.raises(ContentLossUnavailable, match="train_face_embedder"):
        IdentityFeatureLoss(str(tmp_path / "missing.keras"))


def test_identity_loss_on_whole_aligned_images_judges_their_centre_crop(tiny_embedder_path):
    path, images, _ = tiny_embedder_path
    loss = IdentityFeatureLoss(path)
    whole = tf.constant(images[:2].astype(np.float32) / 127.5 - 1.0)  # 256², the face in the centre
    other = tf.reverse(whole, axis=[0])
    o = (256 - fe.CROP) // 2
    centre = lambda x: x[:, o : o + fe.CROP, o : o + fe.CROP]
    assert float(loss(other, whole)) == pytest.approx(float(loss(centre(other), centre(whole))), abs=1e-6)
    # the same centre window with another image's rows above and below: only the centre counts
    framed = tf.concat([other[:, :o], whole[:, o : o + fe.CROP], other[:, o + fe.CROP :]], axis=1)
    assert float(loss(framed, whole)) == pytest.approx(0.0, abs=1e-5)
