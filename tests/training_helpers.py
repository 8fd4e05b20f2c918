"""Shared helpers for the training tests (tests/test_training*.py): the tiny config, the CLI
runner, checkpoint readers. Not collected by pytest (the name does not start with ``test_``).

Everything trains a tiny model (ngf 8, one block, pixel shuffle 2; PatchGAN ndf 8) on 32x32
crops of 64x64 faces from the ``small_lfw`` fixture, for a handful of steps.
"""
import os
import re

import yaml

import tfdeblur  # noqa: F401
import tensorflow as tf

from tfdeblur import models as tfmodels
from tfdeblur.cli import train_main
from tfdeblur.config import load_config

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


def _restore_models(path):
    g, d = tfmodels.build_generator(**TINY_G), tfmodels.build_discriminator(ndf=8)
    tf.train.Checkpoint(generator=g, discriminator=d).read(path).assert_existing_objects_matched().expect_partial()
    return g, d
