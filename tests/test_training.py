"""The training loop (issue 3) and its reliability (issue 8, training half): the LR schedule,
exact resume, initialising and distilling from other generators, inputs refused up front, and
frames and small faces in the batch.

Everything trains a tiny model (ngf 8, one block, pixel shuffle 2; PatchGAN ndf 8) on 32x32
crops of 64x64 faces from the ``small_lfw`` fixture, for a handful of steps. Shared helpers live
in tests/training_helpers.py; the process-level and fault checks (signals, NaN, disk full,
MirroredStrategy) are in tests/test_training_faults.py, mixed precision in
tests/test_training_precision.py.
"""
import glob
import json
import os
import re
import shutil

import numpy as np
import pytest

import keras
import tensorflow as tf

from tfdeblur import models as tfmodels
from tfdeblur.config import ConfigError, load_config
from tfdeblur.training import TrainingError, learning_rate_at, train
from tfdeblur.weights import copy_weights_by_name
from training_helpers import TINY_G, _restore_models, ckpt_arrays, error_lines, run_cli, tiny_cfg, write_cfg


# ------------------------------------------------------------------------------------ schedule

def test_lr_schedule_constant_then_linear_to_zero():
    assert [learning_rate_at(s, 10, 1.0, 0.5) for s in (0, 4, 5, 6, 9, 10)] == [1.0, 1.0, 1.0, 0.8, 0.2, 0.0]
    assert learning_rate_at(7, 10, 2e-4, 1.0) == 2e-4  # decay_start 1: constant


# ------------------------------------------------------------------------------- exact resume

@pytest.fixture(scope="module")
def resume_runs(small_lfw, tmp_path_factory):
    """8 steps straight, vs its step-4 checkpoint resumed to 8 in a fresh ``train`` call.

    WGAN-GP, so the checkpoint must carry G, D, both Adam states, the step, the LR scale and the
    gradient-penalty RNG. The step-4 checkpoint is the straight run's own, so both halves share
    one LR schedule (decay from step 4 of 8): a separate ``--steps 4`` run would decay its LR
    over its own shorter schedule, and legitimately end somewhere else.
    """
    root = tmp_path_factory.mktemp("resume")
    cfg = tiny_cfg(small_lfw, gan="wgan-gp", steps=8, checkpoint_every=4)
    straight = train(cfg, str(root / "straight"), deterministic=True, verbose=0)
    ckdir = root / "resumed" / "checkpoints"
    ckdir.mkdir(parents=True)
    for f in glob.glob(str(root / "straight" / "checkpoints" / "ckpt-4.*")):
        shutil.copy(f, ckdir)
    (ckdir / "checkpoint").write_text('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n')
    resumed = train(cfg, str(root / "resumed"), resume=True, deterministic=True, verbose=0)
    return root, straight, resumed, cfg


def test_copy_weights_by_name_lets_fewer_blocks_start_from_a_trained_generator():
    three = tfmodels.build_generator(**{**TINY_G, "n_blocks": 3})
    two = tfmodels.build_generator(**{**TINY_G, "n_blocks": 2})
    before = {w.path: w.numpy().copy() for w in two.weights}
    copied, fresh, unused = copy_weights_by_name(three, two)
    assert fresh == [] and unused == ["res3_a_conv", "res3_a_norm", "res3_b_conv", "res3_b_norm"]
    assert copied == len([layer for layer in two.layers if layer.weights])
    src = {layer.name: layer for layer in three.layers}
    for layer in two.layers:
        for got, want in zip(layer.get_weights(), src[layer.name].get_weights() if layer.weights else []):
            np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(w.numpy(), before[w.path]) for w in two.weights)
    # the other way round, the extra block keeps its own initial weights and is reported
    bigger = tfmodels.build_generator(**{**TINY_G, "n_blocks": 4})
    init = bigger.get_layer("res4_a_conv").get_weights()[0].copy()
    _, fresh, unused = copy_weights_by_name(three, bigger)
    assert fresh == ["res4_a_conv", "res4_a_norm", "res4_b_conv", "res4_b_norm"] and unused == []
    np.testing.assert_array_equal(bigger.get_layer("res4_a_conv").get_weights()[0], init)


def test_copy_weights_by_name_refuses_other_widths():
    with pytest.raises(ValueError, match="weight shapes"):
        copy_weights_by_name(tfmodels.build_generator(**TINY_G), tfmodels.build_generator(**{**TINY_G, "ngf": 12}))
    with pytest.raises(ValueError, match="no layer"):
        copy_weights_by_name(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="other")]),
                             tfmodels.build_generator(**TINY_G))


def test_copy_weights_by_name_grow_starts_a_wider_deeper_generator_as_the_same_function():
    narrow = tfmodels.build_generator(**TINY_G)
    rng = np.random.default_rng(0)
    for layer in narrow.layers:  # trained-looking norms, so silent new channels are not a given
        if isinstance(layer, tfmodels.FusedInstanceNorm):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])
    wide = tfmodels.build_generator(**{**TINY_G, "ngf": 12, "n_blocks": 2})
    copied, fresh, unused = copy_weights_by_name(narrow, wide, grow=True)
    assert fresh == ["res2_a_conv", "res2_a_norm", "res2_b_conv", "res2_b_norm"] and unused == []
    x = tf.random.uniform([2, 32, 32, 3], -1.0, 1.0, seed=1)
    np.testing.assert_allclose(wide(x).numpy(), narrow(x).numpy(), atol=1e-5)
    # the source's weights sit in the leading channels
    np.testing.assert_array_equal(wide.get_layer("stem_conv").get_weights()[0][..., :8],
                                  narrow.get_layer("stem_conv").get_weights()[0])
    # and the new channels can learn: the (zero) weights from them and a new block's zero norm
    # scale get gradients
    y = tf.random.uniform([2, 32, 32, 3], -1.0, 1.0, seed=2)
    from_new = wide.get_layer("down1_conv").kernel  # (3, 3, in 12, out 24): inputs 8.. are new
    new_block_gamma = wide.get_layer("res2_b_norm").gamma
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(wide(x) - y))
    g_from_new, g_block = tape.gradient(loss, [from_new, new_block_gamma])
    assert np.all(from_new.numpy()[:, :, 8:, :] == 0) and np.all(new_block_gamma.numpy() == 0)
    assert np.abs(g_from_new.numpy()[:, :, 8:, :16]).max() > 0 and np.abs(g_block.numpy()).max() > 0
    # narrowing is still refused
    with pytest.raises(ValueError, match="weight shapes"):
        copy_weights_by_name(wide, tfmodels.build_generator(**TINY_G), grow=True)


def test_init_grow_refuses_a_generator_that_would_not_start_as_the_source(tmp_path):
    from tfdeblur.training import init_models_from

    source = tmp_path / "narrow.keras"
    tfmodels.build_generator(**TINY_G).save(source)
    grown = tfmodels.build_generator(**{**TINY_G, "ngf": 12})
    init_models_from(str(source), grown, None, grow=True)  # wider: accepted
    # a larger stem kernel has every weight shape >= the source's, but is another function
    with pytest.raises(TrainingError, match="init_grow: this generator does not start as"):
        init_models_from(str(source), tfmodels.build_generator(**{**TINY_G, "ngf": 12, "stem_kernel": 5}), None, grow=True)


def test_init_from_a_generator_with_more_blocks_trains(small_lfw, tmp_path, capsys):
    source = tfmodels.build_generator(**{**TINY_G, "n_blocks": 2})
    source.save(str(tmp_path / "source.keras"))
    cfg = tiny_cfg(small_lfw, steps=2, init_from=str(tmp_path / "source.keras"))
    train(cfg, str(tmp_path / "run"), verbose=0)
    err = capsys.readouterr().err
    assert "source layers not used: res2_a_conv" in err
    trained = keras.models.load_model(str(tmp_path / "run" / "generator.keras"), compile=False)
    assert tfmodels.count_res_blocks(trained) == 1 and tfmodels.count_res_blocks(source) == 2


def test_distill_from_a_larger_generator(small_lfw, tmp_path, capsys):
    tfmodels.build_generator(**{**TINY_G, "n_blocks": 2}).save(str(tmp_path / "teacher.keras"))
    summary = train(tiny_cfg(small_lfw, steps=2, distill_from=str(tmp_path / "teacher.keras")), str(tmp_path / "run"), verbose=0)
    assert summary["steps"] == 2 and os.path.exists(tmp_path / "run" / "generator.keras")
    assert "distilling from" in capsys.readouterr().err
    with pytest.raises(TrainingError, match=r"^train.distill_from: cannot use .*missing.keras") as e:
        train(tiny_cfg(small_lfw, steps=2, distill_from=str(tmp_path / "missing.keras")), str(tmp_path / "run2"), verbose=0)
    assert "\n" not in str(e.value)
    (tmp_path / "not_a_model.keras").write_text("no")
    with pytest.raises(TrainingError, match=r"^train.init_from: cannot use .*not_a_model.keras"):
        train(tiny_cfg(small_lfw, steps=2, init_from=str(tmp_path / "not_a_model.keras")), str(tmp_path / "run3"), verbose=0)


def test_keep_generators_writes_one_generator_per_validation(small_lfw, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(small_lfw, steps=4, steps_per_epoch=2, keep_generators=True), str(run), verbose=0)
    kept = sorted(os.path.basename(p) for p in glob.glob(str(run / "generator_0*.keras")))
    assert kept == ["generator_000002.keras", "generator_000004.keras"]
    last = keras.models.load_model(str(run / "generator_last.keras"), compile=False)
    step4 = keras.models.load_model(str(run / kept[-1]), compile=False)
    for a, b in zip(last.get_weights(), step4.get_weights()):
        np.testing.assert_array_equal(a, b)
    train(tiny_cfg(small_lfw, steps=2, steps_per_epoch=2), str(tmp_path / "plain"), verbose=0)
    assert not glob.glob(str(tmp_path / "plain" / "generator_0*.keras"))  # off by default


def test_resume_gives_the_same_weights_as_a_straight_run(resume_runs):
    root, straight, resumed, _ = resume_runs
    assert straight["steps"] == 8 and straight["trained_steps_this_run"] == 8
    assert resumed["steps"] == 8 and resumed["trained_steps_this_run"] == 4
    a = ckpt_arrays(str(root / "straight" / "checkpoints" / "ckpt-8"))
    b = ckpt_arrays(str(root / "resumed" / "checkpoints" / "ckpt-8"))
    assert a.keys() == b.keys()
    # Same process, same graphs, op determinism on, a data stream that is a pure function of the
    # step and a checkpointed RNG: the runs are bitwise identical, so no tolerance is needed.
    # (Keras 3 models are saved under the optimizers' paths: *_optimizer/_trainable_variables/*.)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert any(k.startswith("g_optimizer/_trainable_variables/") for k in a)
    assert any(k.startswith("d_optimizer/_trainable_variables/") for k in a)
    assert any(k.startswith("rng/") for k in a)
    assert int(a["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 8
    assert int(a["g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == 8
    # the same, said through the models: restore both checkpoints into fresh G and D
    g1, d1 = _restore_models(str(root / "straight" / "checkpoints" / "ckpt-8"))
    g2, d2 = _restore_models(str(root / "resumed" / "checkpoints" / "ckpt-8"))
    for m1, m2 in ((g1, g2), (d1, d2)):
        for w1, w2 in zip(m1.get_weights(), m2.get_weights()):
            np.testing.assert_array_equal(w1, w2)
    # and training really moved the weights between step 4 and step 8
    g0, _ = _restore_models(str(root / "straight" / "checkpoints" / "ckpt-4"))
    assert not np.array_equal(g0.get_layer("out_conv").get_weights()[0], g1.get_layer("out_conv").get_weights()[0])


def test_outputs_of_a_run(resume_runs):
    root, straight, _, _ = resume_runs
    out = root / "straight"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["gan"] == "wgan-gp"
    assert summary["history"][-1]["step"] == 8 and np.isfinite(summary["best_val_psnr"])
    assert load_config(str(out / "config.yaml"))["train"]["gan"] == "wgan-gp"
    assert glob.glob(str(out / "logs" / "events.out.tfevents.*"))
    g = keras.models.load_model(str(out / "generator.keras"))
    assert tuple(g(np.zeros((1, 37, 29, 3), np.float32)).shape) == (1, 37, 29, 3)
    last = keras.models.load_model(str(out / "generator_last.keras"))  # the step-8 generator
    g8, _ = _restore_models(str(out / "checkpoints" / "ckpt-8"))
    for w1, w2 in zip(last.get_weights(), g8.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_existing_checkpoint_needs_resume(resume_runs, capsys):
    root, _, _, cfg8 = resume_runs
    out = str(root / "straight")
    code, err = run_cli(capsys, ["--config", write_cfg(root / "again.yaml", cfg8), "--output-dir", out, "-q"])
    assert code == 2 and len(error_lines(err)) == 1, err
    assert re.search(r"already holds a checkpoint \(ckpt-8\); pass --resume", error_lines(err)[0]), err
    assert "Traceback" not in err
    # resuming with different models is refused clearly, not silently half-loaded
    other = tiny_cfg(cfg8["data"]["data_dir"], steps=9)
    other["model"]["generator"]["ngf"] = 16
    with pytest.raises(TrainingError, match="does not match this config's models"):
        train(other, out, resume=True, verbose=0)
    # resuming a finished run trains nothing
    assert train(cfg8, str(root / "resumed"), resume=True, verbose=0)["trained_steps_this_run"] == 0


# --------------------------------------------------------------------------- refused up front

def _no_models(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("a model was built before the data was checked")

    monkeypatch.setattr(tfmodels, "build_generator", fail)
    monkeypatch.setattr(tfmodels, "build_discriminator", fail)


@pytest.mark.parametrize("layout", ["empty", "text_as_jpg", "missing"])
def test_unusable_data_folder_is_refused_before_models(small_lfw, tmp_path, monkeypatch, capsys, layout):
    data = tmp_path / "data"
    if layout != "missing":
        data.mkdir()
    if layout == "text_as_jpg":
        for person in ("Ann_A", "Bob_B", "Cid_C", "Dee_D"):
            (data / person).mkdir()
            for i in (1, 2):
                (data / person / f"{person}_{i:04d}.jpg").write_text("not a jpeg\n")
    _no_models(monkeypatch)
    cfg = tiny_cfg(small_lfw)
    code, err = run_cli(capsys, ["--config", write_cfg(tmp_path / "c.yaml", cfg), "--data-dir", str(data),
                                 "--output-dir", str(tmp_path / "out"), "-q"])
    assert code == 2
    errors = error_lines(err)
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and str(data) in errors[0], err
    assert "Traceback" not in err
    if layout == "text_as_jpg":  # each bad file is one warning line, then the one error
        assert err.count("not a readable image") >= 1
        assert "no usable training images" in errors[0]
    assert not os.path.exists(tmp_path / "out" / "checkpoints")


@pytest.mark.parametrize("override,words", [
    # checked with the config (tfdeblur.config.validate), before the data or any model
    ("model.generator.upsample=cubic", "model.generator.upsample must be one of transpose, bilinear, nearest"),
    ("model.generator={ngf: 8, width: 3}", "unknown config key(s) model.generator.width"),
    ("model.discriminator.ndf=0", "model.discriminator.ndf must be a positive integer, got 0"),
])
def test_bad_model_config_is_one_line(small_lfw, tmp_path, capsys, override, words):
    cfg = tiny_cfg(small_lfw)
    code, err = run_cli(capsys, ["--config", write_cfg(tmp_path / "c.yaml", cfg), "--set", override,
                                 "--output-dir", str(tmp_path / "out"), "-q"])
    assert code == 2 and len(error_lines(err)) == 1 and words in error_lines(err)[0], err


def test_vgg19_without_weights_is_a_clear_error(small_lfw, tmp_path, capsys):
    missing = str(tmp_path / "weights" / "vgg19_notop.h5")
    cfg = tiny_cfg(small_lfw, content={"vgg19": 1.0}, vgg19_weights=missing)
    with pytest.raises(TrainingError) as e:
        train(cfg, str(tmp_path / "a"), verbose=0)
    msg = str(e.value)
    assert missing in msg and ".keras" in msg and "train.vgg19_weights" in msg
    assert "Offline alternatives" in msg and "'charbonnier'" in msg and "'face'" in msg
    code, err = run_cli(capsys, ["--config", write_cfg(tmp_path / "c.yaml", cfg), "--output-dir",
                                 str(tmp_path / "b"), "-q"])
    assert code == 2 and error_lines(err) == [f"error: {msg}"], err


# ----------------------------------------------------------- frames and small faces in the batch

def test_frames_in_the_batch_train_and_a_frame_blur_typo_fails_first(small_lfw, tmp_path, capsys):
    cfg = tiny_cfg(small_lfw, steps=2, checkpoint_every=2)
    cfg["data"]["frames"].update(fraction=0.5, count=3, size=64, face_heights=[16.0, 48.0], max_faces=3,
                                 blur={"preset": "train-knotty", "length": [3.0, 8.0]})
    cfg["data"]["jpeg"].update(prob=0.5)
    summary = train(cfg, str(tmp_path / "run"), verbose=0)
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_psnr"])
    assert "training frames of 64^2" in capsys.readouterr().err
    cfg["data"]["frames"]["blur"] = {"preset": "train-knotty", "knots": [3, 1]}
    with pytest.raises(ConfigError, match="knots"):
        train(cfg, str(tmp_path / "bad"), verbose=0)


def test_small_faces_in_the_batch_train_and_a_batch_without_crops_is_refused(small_lfw, tmp_path, capsys):
    cfg = tiny_cfg(small_lfw, steps=2, checkpoint_every=2)
    cfg["train"]["batch_size"] = 3
    cfg["data"]["small_faces"].update(fraction=0.34, face_heights=[12.0, 24.0],
                                      blur={"preset": "train-knotty", "length": [3.0, 8.0]})
    summary = train(cfg, str(tmp_path / "run"), verbose=0)
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_psnr"])
    assert "small faces of 12-24 px" in capsys.readouterr().err
    cfg["data"]["frames"].update(fraction=0.34, count=2, size=64, face_heights=[16.0, 48.0], max_faces=2)
    cfg["train"]["batch_size"] = 2  # one frame and one small face leave no crop
    with pytest.raises(TrainingError, match="leaves no crop samples"):
        train(cfg, str(tmp_path / "bad"), verbose=0)
