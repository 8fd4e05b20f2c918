"""What a training run computes with: the distribution strategy, the precision policy and the
models (generator, discriminator, content loss, optional teacher, the GAN and its optimizers).

:func:`build_models` is shared with the benchmark (``bench/train_bench.py``), so both step the
same models for one config.
"""

from __future__ import annotations

import sys

from tfdeblur.config import ConfigError
from tfdeblur.errors import one_line
from tfdeblur.training.errors import TrainingError

__all__ = ["MIXED_PRECISION_POLICIES", "precision_policy", "make_strategy", "build_models", "load_generator_file"]

# train(mixed_precision=...) -> the Keras policy (None: plain float32)
MIXED_PRECISION_POLICIES = {False: None, None: None, True: "mixed_float16", "float16": "mixed_float16",
                            "bfloat16": "mixed_bfloat16"}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def precision_policy(mixed_precision) -> str | None:
    if mixed_precision not in MIXED_PRECISION_POLICIES:
        raise TrainingError(f"mixed precision must be float16 or bfloat16, got {mixed_precision!r}")
    return MIXED_PRECISION_POLICIES[mixed_precision]


def make_strategy(name):
    import tensorflow as tf

    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}; use default, mirrored or multiworker")


def load_generator_file(path, key):
    """A generator ``.keras`` file named by config key ``key``; a one-line TrainingError if unusable."""
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise TrainingError(f"{key}: cannot use {path!r} ({one_line(e)})") from None


def _load_teacher(path, policy=None):
    """The generator for ``train.distill_from`` (frozen by the GAN model that uses it); under
    ``mixed_bfloat16`` it computes in bfloat16 too (it only runs forward)."""
    from tfdeblur.models import with_precision

    teacher = load_generator_file(path, "train.distill_from")
    if policy == "mixed_bfloat16":
        teacher = with_precision(teacher, "bfloat16")
    _log(f"distilling from {path} ({teacher.count_params():,} parameters, weight in train.distill_weight)")
    return teacher


def _content_loss(tcfg):
    from tfdeblur.losses import ContentLossUnavailable, build_content_loss

    try:
        return build_content_loss(tcfg["content"], vgg19_weights=tcfg.get("vgg19_weights"),
                                  identity_model=tcfg.get("identity_model"))
    except ContentLossUnavailable as e:
        raise TrainingError(str(e)) from None
    except ValueError as e:
        raise ConfigError(str(e)) from None


def build_models(cfg: dict, policy: str | None = None, content_loss=None):
    """The compiled GAN for config ``cfg`` (``model`` and ``train`` sections), ready to step: its
    ``generator``, ``discriminator``, ``g_optimizer`` and ``d_optimizer``, and ``rng`` (a
    ``tf.random.Generator`` seeded by ``train.seed``, checkpointed so resumed gradient penalties
    are exact).

    ``policy`` is the Keras mixed-precision policy in force (``mixed_float16`` adds loss scaling;
    ``mixed_bfloat16`` runs a distillation teacher in bfloat16). ``content_loss`` replaces the
    one the config names (the benchmark's offline fallback). Call it inside the strategy's scope.
    """
    import tensorflow as tf

    # looked up at call time, so tests can check that no model is built before the data
    from tfdeblur import models
    from tfdeblur.gan import make_compiled_gan

    tcfg, mcfg = cfg["train"], cfg["model"]
    try:
        generator = models.build_generator(**mcfg["generator"])
        discriminator = models.build_discriminator(**mcfg["discriminator"])
    except (TypeError, ValueError) as e:  # unknown or invalid model.* values
        raise ConfigError(f"model: {e}") from None
    content = content_loss if content_loss is not None else _content_loss(tcfg)
    teacher = _load_teacher(tcfg["distill_from"], policy) if tcfg.get("distill_from") else None
    gan = make_compiled_gan(tcfg["gan"], generator, discriminator, content, tcfg,
                            mixed_precision=policy == "mixed_float16", teacher=teacher)
    gan.rng = tf.random.Generator.from_seed(int(tcfg["seed"]))
    return gan
