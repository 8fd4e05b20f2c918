"""The training loop's reliability under faults (issue 8, training half): SIGTERM, SIGKILL and
resume after it, a non-finite loss (stop, or skip and halve the LR), a full disk while
checkpointing, and MirroredStrategy on two logical CPUs.

The slow, process-level checks (SIGTERM, SIGKILL, MirroredStrategy) run as subprocesses started
in background threads as soon as this module starts, so their TensorFlow start-up overlaps the
in-process tests; the tests at the end of the module collect them. Shared helpers live in
tests/training_helpers.py.
"""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import tensorflow as tf

from tfdeblur.training import TrainingError, train
from training_helpers import (ENV, REPO, SUBPROCESS_TIMEOUT, TINY_G, _restore_models, ckpt_arrays, error_lines,
                              latest_step, run_cli, tiny_cfg, write_cfg)


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
