"""The training loop (issue 3) and its reliability (issue 8, training half).

Everything trains a tiny model (ngf 8, one block, pixel shuffle 2; PatchGAN ndf 8) on 32x32
crops of 64x64 faces from the ``small_lfw`` fixture, for a handful of steps.

The slow, process-level checks (SIGTERM, SIGKILL, MirroredStrategy on two logical CPUs) run as
subprocesses started in background threads as soon as this module starts, so their TensorFlow
start-up overlaps the in-process tests; the tests at the end of the module collect them.
"""
import errno
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import yaml

import tfdeblur  # noqa: F401
import keras
import tensorflow as tf

from tfdeblur import models as tfmodels
from tfdeblur.cli import train_main
from tfdeblur.config import ConfigError, load_config
from tfdeblur.training import TrainingError, learning_rate_at, train
from tfdeblur.weights import copy_weights_by_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Scripts run from a temp dir must import this checkout's tfdeblur, installed or not.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
TINY_G = dict(ngf=8, n_blocks=1, n_down=2, upsample="transpose", block="basic", stem_kernel=3,
              pixel_shuffle=2, norm="fused")
SUBPROCESS_TIMEOUT = 420  # generous: CPU may be shared with long training runs


def tiny_cfg(data_dir, **train_overrides):
    cfg = load_config(None, {
        "model.generator": dict(TINY_G), "model.discriminator": {"ndf": 8, "n_layers": 3},
        "data.data_dir": data_dir, "data.image_size": 64, "data.crop": 32, "data.val_images": 4,
        "train.content": {"charbonnier": 1.0}, "train.content_weight": 1.0, "train.adv_weight": 0.01,
        "train.steps": 4, "train.batch_size": 2, "train.steps_per_epoch": 1000, "train.checkpoint_every": 2,
        "train.g_lr": 1e-3, "train.d_lr": 1e-3, "train.n_critic": 1,
    })
    cfg["train"].update(train_overrides)
    return cfg


def write_cfg(path, cfg):
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return str(path)


def latest_step(out_dir):
    """Step of the newest checkpoint listed in checkpoints/checkpoint (None if none)."""
    state = os.path.join(out_dir, "checkpoints", "checkpoint")
    if not os.path.isfile(state):
        return None
    m = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', open(state).read(), re.M)
    return int(m.group(1)) if m else None


def ckpt_arrays(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def error_lines(stderr_text):
    return [l for l in stderr_text.splitlines() if l.startswith("error:")]


def run_cli(capsys, argv):
    try:
        code = train_main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


# ----------------------------------------------------------------- background subprocess checks

class _Background(threading.Thread):
    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.result, self.error = fn, args, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:  # reported by the test that collects it
            self.error = e

    def get(self):
        self.join(SUBPROCESS_TIMEOUT * 3)
        if self.is_alive():
            pytest.fail("background subprocess check did not finish")
        if self.error is not None:
            raise self.error
        return self.result


def _run_until_checkpoint(cmd, out_dir, sig, after_step):
    """Start train.py, wait until it has written a checkpoint newer than ``after_step``, signal it."""
    p = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + SUBPROCESS_TIMEOUT
    try:
        while (latest_step(out_dir) or 0) <= after_step and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        seen = latest_step(out_dir)
        if p.poll() is None:
            p.send_signal(sig)
        _, err = p.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return {"rc": p.returncode, "stderr": err, "seen": seen, "latest": latest_step(out_dir)}


def _signal_chain(cfg_path, out_dir):
    """train.py -> SIGTERM after its first checkpoint -> train.py --resume -> SIGKILL after a newer
    checkpoint -> train.py --resume for 2 more steps. Steps are endless until the last run."""
    cmd = [sys.executable, "train.py", "--config", cfg_path, "--output-dir", out_dir, "-q"]
    term = _run_until_checkpoint(cmd + ["--steps", "100000"], out_dir, signal.SIGTERM, 0)
    if term["latest"] is None:
        return term, None, None
    kill = _run_until_checkpoint(cmd + ["--resume", "--steps", "100000"], out_dir, signal.SIGKILL, term["latest"])
    if kill["latest"] is None:
        return term, kill, None
    r = subprocess.run(cmd + ["--resume", "--steps", str(kill["latest"] + 2)], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    return term, kill, {"rc": r.returncode, "stderr": r.stderr, "latest": latest_step(out_dir)}


MIRRORED_SCRIPT = textwrap.dedent('''
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np, keras, yaml
    import tfdeblur
    from tfdeblur.config import ConfigError
    from tfdeblur.data import load_faces, train_dataset
    from tfdeblur.gan import make_gan
    from tfdeblur.losses import ContentLoss
    from tfdeblur.models import build_discriminator, build_generator
    from tfdeblur.training import make_strategy, train

    cfg_path, out_dir, tiny = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    cfg = yaml.safe_load(open(cfg_path))
    report = {"logical_cpus": len(tf.config.list_logical_devices("CPU"))}
    images, _ = load_faces(sorted(__import__("glob").glob(cfg["data"]["data_dir"] + "/*/*.jpg"))[:6], 64)
    batch = next(iter(train_dataset(images, 4, 32, seed=0, total_steps=1)))

    def make(strategy, weights=None):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            gan = make_gan(cfg["train"]["gan"], build_generator(**tiny), build_discriminator(ndf=8),
                           ContentLoss({"charbonnier": 1.0}), content_weight=1.0, adv_weight=0.1)
            # SGD: the update is proportional to the gradient, so a wrong loss scale would show
            # (Adam's first step is ~lr * sign(grad) and would hide it)
            gan.compile(g_optimizer=keras.optimizers.SGD(0.5), d_optimizer=keras.optimizers.SGD(0.5))
            gan.build_optimizers()
            if weights is not None:
                gan.generator.set_weights(weights[0])
                gan.discriminator.set_weights(weights[1])
        return gan

    default = tf.distribute.get_strategy()
    ref = make(default)
    init = (ref.generator.get_weights(), ref.discriminator.get_weights())
    ref_logs = tf.function(ref.train_step)(batch)

    mirrored = make_strategy("mirrored")
    report["replicas"] = mirrored.num_replicas_in_sync
    gan = make(mirrored, init)
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(4)
    dist_batch = next(iter(mirrored.experimental_distribute_dataset(ds)))

    @tf.function
    def step(b):
        def replica(b):
            logs = gan.train_step(b)
            return logs, tf.shape(b[0])[0]
        logs, n = mirrored.run(replica, args=(b,))
        return {k: mirrored.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in logs.items()}, n

    logs, n = step(dist_batch)
    report["per_replica_batch"] = [int(x) for x in mirrored.experimental_local_results(n)]
    report["losses"] = {k: [float(ref_logs[k]), float(logs[k])] for k in ("g_adv", "g_content", "d_loss")}
    diffs = []
    for a, b, w0 in zip(ref.generator.weights + ref.discriminator.weights,
                        gan.generator.weights + gan.discriminator.weights, init[0] + init[1]):
        a, b = np.asarray(a.numpy()), np.asarray(b.numpy())
        diffs.append([float(np.max(np.abs(a - b))), float(np.max(np.abs(a - w0)))])
    report["max_weight_diff"] = max(d[0] for d in diffs)
    report["max_update"] = max(d[1] for d in diffs)

    # a non-finite batch on one replica: no replica applies anything (the branch is agreed on)
    before = [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]
    poisoned = (tf.concat([batch[0][:2], batch[0][2:] * np.nan], 0), batch[1])
    poisoned = next(iter(mirrored.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(poisoned).batch(4))))
    logs, _ = step(poisoned)
    report["nan_step_nonfinite"] = float(logs["nonfinite"])
    report["nan_step_unchanged"] = all(np.array_equal(a, w.numpy()) for a, w in
                                       zip(before, gan.generator.weights + gan.discriminator.weights))

    # the whole loop, as --strategy mirrored runs it
    summary = train(cfg, out_dir, strategy="mirrored", verbose=0)
    report["summary_steps"] = summary["steps"]
    try:
        bad = dict(cfg); bad["train"] = dict(cfg["train"], batch_size=3)
        train(bad, out_dir + "_odd", strategy="mirrored", verbose=0)
        report["odd_batch"] = "accepted"
    except ConfigError as e:
        report["odd_batch"] = str(e)
    print("REPORT " + json.dumps(report))
''')


def _mirrored(cfg_path, out_dir, script_path):
    with open(script_path, "w") as f:
        f.write(MIRRORED_SCRIPT)
    r = subprocess.run([sys.executable, script_path, cfg_path, out_dir, json.dumps(TINY_G)], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    lines = [l for l in r.stdout.splitlines() if l.startswith("REPORT ")]
    return r.returncode, (json.loads(lines[-1][7:]) if lines else None), r.stderr[-3000:]


@pytest.fixture(scope="module", autouse=True)
def background(request, small_lfw, tmp_path_factory):
    """Starts the subprocess checks that the selected tests will collect (none under -k filters
    that leave them out)."""
    selected = {item.originalname for item in request.session.items}
    root = tmp_path_factory.mktemp("background")
    jobs = {}
    if selected & {"test_sigterm_saves_a_checkpoint_exits_143_and_resumes",
                   "test_sigkill_then_resume_finishes_with_the_right_step_count"}:
        cfg = tiny_cfg(small_lfw, checkpoint_every=1, keep_checkpoints=2)
        jobs["signals"] = (_Background(_signal_chain, write_cfg(root / "signals.yaml", cfg), str(root / "signals")),
                           str(root / "signals"))
    if "test_mirrored_strategy_splits_batch_and_scales_loss" in selected:
        mcfg = tiny_cfg(small_lfw, steps=2, batch_size=4, checkpoint_every=2)
        jobs["mirrored"] = (_Background(_mirrored, write_cfg(root / "mirrored.yaml", mcfg), str(root / "mirrored"),
                                        str(root / "mirrored_check.py")), str(root / "mirrored"))
    yield jobs
    for thread, _ in jobs.values():
        thread.join(SUBPROCESS_TIMEOUT * 3)


# ------------------------------------------------------------------------------------ schedule

def test_lr_schedule_constant_then_linear_to_zero():
    assert [learning_rate_at(s, 10, 1.0, 0.5) for s in (0, 4, 5, 6, 9, 10)] == [1.0, 1.0, 1.0, 0.8, 0.2, 0.0]
    assert learning_rate_at(7, 10, 2e-4, 1.0) == 2e-4  # decay_start 1: constant


# ------------------------------------------------------------------------------- exact resume

def _restore_models(path):
    g, d = tfmodels.build_generator(**TINY_G), tfmodels.build_discriminator(ndf=8)
    tf.train.Checkpoint(generator=g, discriminator=d).read(path).assert_existing_objects_matched().expect_partial()
    return g, d


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


# ----------------------------------------------------------------------------- non-finite loss

def test_nan_stops_with_last_good_checkpoint_intact(small_lfw, tmp_path, capsys):
    cfg = tiny_cfg(small_lfw, steps=3, checkpoint_every=1, debug_nan_at_step=3)
    out = tmp_path / "nan"
    code, err = run_cli(capsys, ["--config", write_cfg(tmp_path / "c.yaml", cfg), "--output-dir", str(out), "-q"])
    assert code != 0
    errors = error_lines(err)
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert "non-finite loss at step 3" in errors[0] and "ckpt-2" in errors[0]
    assert "Traceback" not in err
    assert latest_step(str(out)) == 2 and not (out / "summary.json").exists()
    arrays = ckpt_arrays(str(out / "checkpoints" / "ckpt-2"))
    assert int(arrays["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 2
    for k, v in arrays.items():
        if np.issubdtype(v.dtype, np.floating) and not k.startswith("best_psnr"):
            assert np.isfinite(v).all(), k
    # loadable into fresh models, and they produce finite images
    g, _ = _restore_models(str(out / "checkpoints" / "ckpt-2"))
    assert np.isfinite(g(np.zeros((1, 32, 32, 3), np.float32)).numpy()).all()


@pytest.fixture(scope="module")
def skip_then_disk_full(small_lfw, tmp_path_factory):
    """One run for two checks: a NaN batch at step 2 with on_nonfinite: skip, then the disk
    "fills up" (ENOSPC from CheckpointManager.save) when the step-4 checkpoint is written."""
    out = tmp_path_factory.mktemp("skip") / "run"
    cfg = tiny_cfg(small_lfw, steps=4, checkpoint_every=1, debug_nan_at_step=2, on_nonfinite="skip")
    original = tf.train.CheckpointManager.save
    saves = []

    def save(self, *args, **kwargs):
        saves.append(kwargs.get("checkpoint_number"))
        if kwargs.get("checkpoint_number") == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf.train.CheckpointManager, "save", save)
        stderr = []
        mp.setattr(sys, "stderr", _Tee(sys.stderr, stderr))
        with pytest.raises(TrainingError) as e:
            train(cfg, str(out), verbose=0)
    return out, "".join(stderr), str(e.value), saves


class _Tee:
    def __init__(self, stream, sink):
        self.stream, self.sink = stream, sink

    def write(self, text):
        self.sink.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def test_nonfinite_skip_halves_lr_and_continues(skip_then_disk_full):
    out, stderr, _, saves = skip_then_disk_full
    assert "non-finite loss at step 2" in stderr and "step skipped, learning rates halved" in stderr
    assert saves == [1, 2, 3, 4]  # it went on after the bad step
    arrays = ckpt_arrays(str(out / "checkpoints" / "ckpt-3"))
    assert int(arrays["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 3
    assert float(arrays["lr_scale/.ATTRIBUTES/VARIABLE_VALUE"]) == 0.5
    assert int(arrays["g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == 2  # step 2 was not applied
    # step 3 ran at half the scheduled rate: learning_rate_at(2 of 4, decay from 2) = 1e-3, halved
    assert float(arrays["g_optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"]) == pytest.approx(5e-4)
    assert all(np.isfinite(v).all() for k, v in arrays.items()
               if np.issubdtype(v.dtype, np.floating) and not k.startswith("best_psnr"))


def test_disk_full_during_checkpoint_is_reported(skip_then_disk_full):
    out, _, msg, _ = skip_then_disk_full
    assert "\n" not in msg
    assert "disk full while saving the checkpoint at step 4" in msg
    assert f"the last good checkpoint is {out / 'checkpoints' / 'ckpt-3'}" in msg and "--resume" in msg
    assert latest_step(str(out)) == 3
    g, _ = _restore_models(str(out / "checkpoints" / "ckpt-3"))  # intact and loadable
    assert np.isfinite(g(np.zeros((1, 32, 32, 3), np.float32)).numpy()).all()


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


# ------------------------------------------------------------------------------ mixed precision

def test_mixed_precision_trains_on_cpu(small_lfw, tmp_path):
    """mixed_float16 works on CPU (slowly). The content weight is large, as in the paper config
    (100 x VGG feature MSE): at the initial loss scale 2^15 the float16 gradients of the scaled
    loss overflow, which the LossScaleOptimizer must absorb (skip, halve its scale), not the
    trainer's non-finite guard (which would stop the run at step 1)."""
    out = tmp_path / "mp"
    try:
        summary = train(tiny_cfg(small_lfw, steps=2, checkpoint_every=2, content_weight=1e4), str(out),
                        mixed_precision=True, verbose=0)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        d = tfmodels.build_discriminator(ndf=8)
        assert d.get_layer("conv1").compute_dtype == "float16"
        assert d.get_layer("norm1").compute_dtype == "float32" and d.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_psnr"])
    g = keras.models.load_model(str(out / "generator.keras"))  # saved with per-layer policies
    assert g.get_layer("stem_conv").dtype_policy.name == "mixed_float16"
    for layer in g.layers:
        if isinstance(layer, (tfmodels.FusedInstanceNorm, keras.layers.GroupNormalization)):
            assert layer.dtype_policy.name == "float32", layer.name
    y = g(np.zeros((1, 33, 35, 3), np.float32))
    assert y.dtype == tf.float32 and np.isfinite(y.numpy()).all()
    arrays = ckpt_arrays(str(out / "checkpoints" / "ckpt-2"))
    assert float(arrays["g_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"]) < 2.0**15  # overflow absorbed
    assert int(arrays["d_optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == 2  # D trained
    weights = [v for k, v in arrays.items() if "_trainable_variables/" in k]  # G and D, via the optimizers
    assert len(weights) > 20 and all(v.dtype == np.float32 and np.isfinite(v).all() for v in weights)


def test_bfloat16_mixed_precision_trains_and_saves_a_generator_that_loads_as_float32(small_lfw, tmp_path):
    """mixed_bfloat16 (the CPU fast path): no loss scaling (bfloat16 has float32's exponent range),
    the distillation teacher computes in bfloat16 too, variables stay float32, and the saved
    generator keeps its per-layer policies; tfdeblur's loader makes it float32 unless asked."""
    from tfdeblur.inference import load_model

    out = tmp_path / "bf16"
    teacher = tmp_path / "teacher.keras"
    tfmodels.build_generator(ngf=8, n_blocks=1, pixel_shuffle=2, stem_kernel=3).save(teacher)
    cfg = tiny_cfg(small_lfw, steps=2, checkpoint_every=2)
    cfg["train"]["distill_from"] = str(teacher)
    try:
        summary = train(cfg, str(out), mixed_precision="bfloat16", verbose=0)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_psnr"])
    arrays = ckpt_arrays(str(out / "checkpoints" / "ckpt-2"))
    assert not any("dynamic_scale" in k for k in arrays)  # plain Adam, no loss scaling
    weights = {k: v for k, v in arrays.items() if "_trainable_variables/" in k}  # G and D, via the optimizers
    assert len(weights) > 20 and all(v.dtype == np.float32 and np.isfinite(v).all() for v in weights.values())
    saved = keras.models.load_model(str(out / "generator.keras"))
    assert saved.get_layer("stem_conv").dtype_policy.name == "mixed_bfloat16"
    g = load_model(str(out / "generator.keras"))  # precision="float32"
    assert g.get_layer("stem_conv").compute_dtype == "float32"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(g(x).numpy(), load_model(str(out / "generator.keras"), "float32")(x).numpy())
    assert np.abs(g(x).numpy() - saved(x).numpy()).max() < 0.05  # the same weights, other rounding
    with pytest.raises(TrainingError, match="float16 or bfloat16"):
        train(cfg, str(tmp_path / "bad"), mixed_precision="int8", verbose=0)


# -------------------------------------------------------------------- process-level (collected)

def test_sigterm_saves_a_checkpoint_exits_143_and_resumes(background):
    thread, out = background["signals"]
    term, kill, _ = thread.get()
    assert term["rc"] == 128 + signal.SIGTERM, term["stderr"][-2000:]
    assert "Traceback" not in term["stderr"]
    assert "SIGTERM received: saving a checkpoint after this step" in term["stderr"]
    m = re.search(r"stopped by SIGTERM at step (\d+); checkpoint saved, resume with --resume", term["stderr"])
    assert m, term["stderr"][-2000:]
    step = int(m.group(1))
    assert step >= term["seen"] >= 1 and term["latest"] == step  # a checkpoint at the stop step
    # the --resume run continued from exactly there
    assert kill is not None
    assert f"resumed from {os.path.join(out, 'checkpoints', f'ckpt-{step}')} at step {step}" in kill["stderr"]


def test_sigkill_then_resume_finishes_with_the_right_step_count(background):
    thread, out = background["signals"]
    term, kill, final = thread.get()
    assert kill["rc"] == -signal.SIGKILL
    k = kill["latest"]
    assert k >= kill["seen"] > term["latest"]
    assert final["rc"] == 0, final["stderr"][-2000:]
    assert f"ckpt-{k} at step {k}" in final["stderr"] and "Traceback" not in final["stderr"]
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["steps"] == k + 2 and summary["trained_steps_this_run"] == 2
    assert final["latest"] == k + 2
    arrays = ckpt_arrays(os.path.join(out, "checkpoints", f"ckpt-{k + 2}"))
    assert int(arrays["step/.ATTRIBUTES/VARIABLE_VALUE"]) == k + 2
    assert int(arrays["g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == k + 2  # no step lost or repeated


def test_mirrored_strategy_splits_batch_and_scales_loss(background):
    thread, out = background["mirrored"]
    rc, report, stderr = thread.get()
    assert rc == 0 and report is not None, stderr
    assert report["logical_cpus"] == 2 and report["replicas"] == 2
    assert report["per_replica_batch"] == [2, 2]  # global batch 4 split over 2 replicas
    for name, (single, mirrored) in report["losses"].items():
        assert mirrored == pytest.approx(single, rel=1e-4, abs=1e-6), name
    # one SGD step: same update as one device on the whole batch (a missing or doubled 1/replicas
    # would change every update by 2x)
    assert report["max_update"] > 1e-4
    assert report["max_weight_diff"] < 1e-3 * report["max_update"], report
    assert report["nan_step_nonfinite"] > 0 and report["nan_step_unchanged"]
    assert report["summary_steps"] == 2
    assert "must divide evenly over 2 replicas" in report["odd_batch"]


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
