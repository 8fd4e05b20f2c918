"""``--strategy multiworker`` (issue 19): two worker processes on localhost, each with its own
``TF_CONFIG``, train the tiny generator as TensorFlow's MultiWorkerMirroredStrategy defines it.

Both workers finish, only the chief writes the run's folder, each worker feeds its own slice of
the global batch, the result equals a single-process run of the same global batch (max weight
difference below 1e-4; seen: 1e-6), and ``--resume`` after a worker is killed mid-run continues
from the chief's last checkpoint.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
TIMEOUT = 420  # generous: the CPU may be shared with a long training run
TINY = {
    "model": {"generator": dict(ngf=8, n_blocks=1, n_down=2, upsample="transpose", block="basic", stem_kernel=3,
                                pixel_shuffle=2, norm="fused"),
              "discriminator": {"ndf": 8, "n_layers": 3}},
    "data": {"image_size": 64, "crop": 32, "val_images": 4},
    "train": {"gan": "lsgan", "content": {"charbonnier": 1.0}, "content_weight": 1.0, "adv_weight": 0.01,
              "steps": 4, "batch_size": 2, "steps_per_epoch": 2, "checkpoint_every": 2,
              "g_lr": 1e-3, "d_lr": 1e-3, "n_critic": 1},
}


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _config(tmp_path, data_dir):
    cfg = json.loads(json.dumps(TINY))
    cfg["data"]["data_dir"] = data_dir
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _train_cmd(cfg_path, out_dir, *extra):
    return [sys.executable, os.path.join(REPO, "train.py"), "--config", cfg_path, "--output-dir", out_dir, "-q", *extra]


def _start_workers(cfg_path, out_dir, *extra):
    ports = _free_ports(2)
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen(_train_cmd(cfg_path, out_dir, "--strategy", "multiworker", *extra),
                                      env={**ENV, "TF_CONFIG": json.dumps(tf_config)}, cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs):
    outs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a worker did not finish in time")
        outs.append((p.returncode, err))
    return outs


def _latest_step(out_dir):
    state = os.path.join(out_dir, "checkpoints", "checkpoint")
    text = open(state).read() if os.path.isfile(state) else ""
    m = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.M)
    return int(m.group(1)) if m else None


def _weights(path):
    import keras

    import tfdeblur.models  # noqa: F401  (registers the generator's layers)

    return keras.models.load_model(path, compile=False).get_weights()


def test_each_worker_feeds_its_own_slice_of_the_global_batch():
    import tensorflow as tf

    from tfdeblur.training.cluster import worker_slice

    blurred = tf.reshape(tf.range(3 * 4, dtype=tf.float32), [3, 4, 1, 1, 1])  # 3 steps of global batch 4
    global_ds = tf.data.Dataset.from_tensor_slices((blurred, -blurred))
    for replicas_per_worker in (1, 2):
        workers = 4 // replicas_per_worker
        fed = []
        for w in range(workers):
            ctx = tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=w, num_replicas_in_sync=4)
            elems = [(b.numpy().ravel().tolist(), s.numpy().ravel().tolist())
                     for b, s in worker_slice(global_ds, ctx, 4)]
            assert all(s == [-v for v in b] for b, s in elems)  # pairs stay together
            fed.append([b for b, _ in elems])
        # per step, the workers' replica batches (one sample each) tile the global batch, in order
        for step in range(3):
            got = [v for w in range(workers) for b in fed[w][step * replicas_per_worker:(step + 1) * replicas_per_worker] for v in b]
            assert got == list(range(step * 4, step * 4 + 4))
        assert len({tuple(f[0]) for f in fed}) == workers  # different workers, different samples


def test_two_workers_train_as_one_process_and_only_the_chief_writes(tmp_path, small_lfw):
    cfg_path = _config(tmp_path, small_lfw)
    cluster_out, single_out = str(tmp_path / "cluster"), str(tmp_path / "single")
    procs = _start_workers(cfg_path, cluster_out)
    single = subprocess.run(_train_cmd(cfg_path, single_out), env=ENV, cwd=REPO, capture_output=True, text=True,
                            timeout=TIMEOUT)
    (rc0, err0), (rc1, err1) = _finish(procs)
    assert (rc0, rc1, single.returncode) == (0, 0, 0), (err0[-2000:], err1[-2000:], single.stderr[-2000:])
    assert "worker 1: training; the chief writes" in err1 and "worker 0" not in err0

    # the chief wrote the run's folder; worker 1's scratch checkpoints are gone
    assert sorted(os.listdir(cluster_out)) == sorted(os.listdir(single_out)) == [
        "checkpoints", "config.yaml", "generator.keras", "generator_last.keras", "logs", "summary.json"]
    assert _latest_step(cluster_out) == 4
    assert len([f for f in os.listdir(os.path.join(cluster_out, "logs")) if "tfevents" in f]) == 1

    cluster, one = (json.load(open(os.path.join(d, "summary.json"))) for d in (cluster_out, single_out))
    assert cluster["steps"] == one["steps"] == 4
    psnr = [h["val_psnr"] for h in cluster["history"]]
    assert psnr[0] != psnr[1]  # it trained
    assert np.allclose(psnr, [h["val_psnr"] for h in one["history"]], atol=1e-3)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(_weights(os.path.join(cluster_out, "generator_last.keras")),
                                                           _weights(os.path.join(single_out, "generator_last.keras"))))
    assert diff < 1e-4


def test_resume_after_a_worker_is_killed_continues_from_the_last_checkpoint(tmp_path, small_lfw):
    cfg_path = _config(tmp_path, small_lfw)
    out = str(tmp_path / "cluster")
    procs = _start_workers(cfg_path, out, "--steps", "100000")
    deadline = time.time() + TIMEOUT
    while (_latest_step(out) or 0) < 4:
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate()[1][-2000:] for p in procs if p.poll() is not None]
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGKILL)  # a worker dies; the scheduler then restarts the job
    time.sleep(1.0)
    procs[0].send_signal(signal.SIGKILL)
    for p in procs:
        p.communicate(timeout=TIMEOUT)
    killed_at = _latest_step(out)
    assert killed_at >= 4

    (rc0, err0), (rc1, err1) = _finish(_start_workers(cfg_path, out, "--resume", "--steps", str(killed_at + 4)))
    assert (rc0, rc1) == (0, 0), (err0[-2000:], err1[-2000:])
    assert f"at step {killed_at}" in err0 and f"at step {killed_at}" in err1
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["steps"] == killed_at + 4 and summary["trained_steps_this_run"] == 4
    assert not [f for f in os.listdir(out) if f.startswith(".scratch")]
    shutil.rmtree(out)
