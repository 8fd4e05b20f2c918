"""The training loop behind ``python train.py``: data, models, checkpoints, TensorBoard, signals.

A custom step loop (rather than ``fit``) because GAN runs here are step-based and must resume
mid-"epoch" exactly: the data stream is a pure function of the step (see ``tfdeblur.data``), and
``tf.train.CheckpointManager`` stores G, D, both optimizers, the step, the best validation PSNR
and the RNG used by the gradient penalty.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import signal
import sys
import time

import dataclasses

import numpy as np

from tfdeblur import blur
from tfdeblur.config import ConfigError
from tfdeblur.data import FaceSplit, NoImagesError, load_faces, load_split, make_eval_pairs, train_dataset
from tfdeblur.imageio import SkipLog, one_line

__all__ = ["TrainingError", "TrainingInterrupted", "NonFiniteLoss", "resolve_data_dir", "train"]


class TrainingError(RuntimeError):
    """Training cannot go on; str() is a one-line message for the user."""


class TrainingInterrupted(TrainingError):
    def __init__(self, signum, step):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved, resume with --resume")
        self.signum = signum


class NonFiniteLoss(TrainingError):
    pass


def resolve_data_dir(data_dir: str | None) -> str:
    return data_dir or os.environ.get("TFDEBLUR_DATA") or os.path.join("data", "lfw")


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


class _SignalFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps (so a checkpoint can be written)."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: give up waiting
            raise KeyboardInterrupt
        self.signum = signum
        _log(f"\n{signal.Signals(signum).name} received: saving a checkpoint after this step ...")

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


def _lr_at(step, total, base, decay_start):
    """Constant, then linear decay to 0 (DeblurGAN's schedule)."""
    start = int(total * decay_start)
    if step < start or total <= start:
        return base
    return base * max(0.0, (total - step) / (total - start))


def _make_strategy(name):
    import tensorflow as tf

    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}; use default, mirrored or multiworker")


def _save_generator(generator, output_dir, filename):
    """Write ``output_dir/filename`` atomically (a crash never leaves half a model); a failed write
    is a one-line TrainingError."""
    path = os.path.join(output_dir, filename)
    tmp = path[: -len(".keras")] + f".tmp-{os.getpid()}.keras"
    try:
        generator.save(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise TrainingError(f"could not write {filename}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _image_grid(blurred, restored, sharp, n=4):
    """Rows of blurred | restored | sharp, uint8 [1, n*H, 3*W, 3]."""
    rows = [np.concatenate([blurred[i], restored[i], sharp[i]], axis=1) for i in range(min(n, len(blurred)))]
    return np.concatenate(rows, axis=0)[None]


def _input_axis(layer, weight) -> int | None:
    """The axis of ``weight`` that runs over the layer's input channels, for layers that mix
    channels (None for per-channel weights: norms, biases, depthwise kernels)."""
    import keras

    if weight is getattr(layer, "pointwise_kernel", None):
        return 2
    if isinstance(layer, (keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)):
        return None
    if isinstance(layer, keras.layers.Conv2DTranspose):  # kernel (h, w, out, in)
        return 3 if weight is layer.kernel else None
    if isinstance(layer, keras.layers.Conv2D):
        return 2 if weight is layer.kernel else None
    return None


# The last norm of each ResNet block (basic / separable: ``_b_norm``, inverted: ``_project_norm``):
# with its scale at zero the block adds nothing, so a new block starts as the identity. (No ReLU
# follows it, so the zero scale still gets gradients.)
_BLOCK_OUTPUT_NORM = re.compile(r"^res\d+_(b|project)_norm$")


def _grow_weight(small, initial, input_axis):
    """``small`` in the leading corner of an array like ``initial``; the weights from new input
    channels are zero (so new channels cannot change the old ones), the rest keep ``initial``."""
    out = np.array(initial, copy=True)
    if input_axis is not None:
        index = [slice(None)] * out.ndim
        index[input_axis] = slice(small.shape[input_axis], None)
        out[tuple(index)] = 0.0
    out[tuple(slice(0, n) for n in small.shape)] = small
    return out


def copy_weights_by_name(source, target, grow: bool = False):
    """Copy weights layer by layer, matching layer names: (copied, fresh, unused) layer names.

    Lets a generator with fewer or more ResNet blocks start from a trained one (the builder names
    every layer). Layers of ``target`` missing from ``source`` keep their initial weights; a layer
    whose weight shapes differ (another ngf, say) is an error, not a silent restart.

    ``grow=True`` starts a wider and/or deeper generator as the same function as ``source``
    (Net2Net-style, Chen et al. 2016): a wider layer gets the source weights in its leading
    channels; new channels compute fresh features from the old ones, but every weight *from* a new
    channel starts at zero, so they change nothing until training moves those weights (they get
    gradients at once, since the new features are not zero). New ResNet blocks start as the
    identity: their last norm's scale is zero. Only narrowing is still an error.
    """
    by_name = {layer.name: layer for layer in source.layers if layer.weights}
    copied, fresh = 0, []
    for layer in target.layers:
        if not layer.weights:
            continue
        src = by_name.pop(layer.name, None)
        if src is None:
            fresh.append(layer.name)
            if grow and _BLOCK_OUTPUT_NORM.match(layer.name):
                layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
            continue
        weights = src.get_weights()
        want = [tuple(w.shape) for w in layer.weights]
        got = [w.shape for w in weights]
        if want != got:
            wider = len(want) == len(got) and all(
                len(a) == len(b) and all(x >= y for x, y in zip(a, b)) for a, b in zip(want, got))
            if not (grow and wider):
                raise ValueError(f"layer {layer.name!r} has weight shapes {got} in the source, {want} here")
            weights = [_grow_weight(w, v.numpy(), _input_axis(layer, v)) for w, v in zip(weights, layer.weights)]
        layer.set_weights(weights)
        copied += 1
    if not copied:
        raise ValueError("no layer of the source matches this generator by name")
    return copied, fresh, sorted(by_name)


def _init_from(source, generator, discriminator, grow=False):
    """Fine-tuning: start from another run. Step, optimizers and the LR schedule start fresh.

    ``source`` is a checkpoint (folder or prefix: G and D are restored) or a generator ``.keras``
    file such as the shipped model (G only, matched layer by layer, so the generator may have
    fewer or more ResNet blocks; D starts from scratch). ``grow`` (``train.init_grow``) lets that
    generator be wider too, starting as the same function (:func:`copy_weights_by_name`).
    """
    import tensorflow as tf

    if str(source).endswith(".keras"):
        source_generator = _load_generator_file(source, "train.init_from")
        try:
            copied, fresh, unused = copy_weights_by_name(source_generator, generator, grow=grow)
        except ValueError as e:
            raise TrainingError(f"train.init_from: cannot use {source!r} ({one_line(e)})") from None
        if grow:  # embedding only preserves the function when the layers line up (same stem_kernel, pixel_shuffle, ...)
            probe = tf.random.stateless_uniform([1, 64, 64, 3], [0, 0], -1.0, 1.0)
            gap = float(tf.reduce_max(tf.abs(source_generator(probe, training=False) - generator(probe, training=False))))
            if not gap <= 1e-3:
                raise TrainingError(
                    f"train.init_grow: this generator does not start as {source!r} (max difference {gap:.3g}); "
                    "only ngf and n_blocks may grow (keep stem_kernel, n_down, pixel_shuffle, block and upsample)"
                )
        grown = "; grown by train.init_grow: new channels and blocks start with no effect" if grow else ""
        _log(f"initialised the generator from {source} ({copied} layers{grown})")
        if fresh or unused:
            _log(f"  layers starting fresh: {', '.join(fresh) or 'none'}; source layers not used: {', '.join(unused) or 'none'}")
        return
    prefix = tf.train.latest_checkpoint(source) if os.path.isdir(source) else source
    if not prefix or not tf.io.gfile.exists(prefix + ".index"):
        raise TrainingError(f"train.init_from: no checkpoint found at {source!r}")
    try:
        tf.train.Checkpoint(generator=generator, discriminator=discriminator).restore(prefix).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as e:
        raise TrainingError(f"train.init_from: {prefix} does not match this config's models ({one_line(e)})") from None
    _log(f"initialised generator and discriminator from {prefix}")


def kernel_params_from_config(blur_cfg) -> blur.KernelParams:
    """``data.blur`` (a preset name plus KernelParams fields overriding it) as validated
    KernelParams; a ConfigError names what is wrong."""
    blur_cfg = dict(blur_cfg or {})
    preset = blur_cfg.pop("preset", "train")
    try:
        kparams = blur.PRESETS[preset] if preset else blur.KernelParams()
        return dataclasses.replace(kparams, **blur_cfg).validated() if blur_cfg else kparams.validated()
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"data.blur: {e}") from None


def _load_generator_file(path, key):
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

    teacher = _load_generator_file(path, "train.distill_from")
    if policy == "mixed_bfloat16":
        teacher = with_precision(teacher, "bfloat16")
    _log(f"distilling from {path} ({teacher.count_params():,} parameters, weight in train.distill_weight)")
    return teacher


def train(
    cfg: dict,
    output_dir: str,
    resume: bool = False,
    strategy: str = "default",
    mixed_precision: bool | str = False,
    deterministic: bool = False,
    verbose: int = 1,
) -> dict:
    """Train a deblurring GAN as configured; returns a summary dict (also in ``summary.json``).

    ``mixed_precision``: ``"float16"`` (or ``True``) trains under ``mixed_float16`` with loss
    scaling (GPUs); ``"bfloat16"`` under ``mixed_bfloat16`` (bfloat16 has float32's range: no loss
    scaling), faster on CPUs with AVX512-BF16 or AMX. Variables stay float32 either way.
    """
    policies = {False: None, None: None, True: "mixed_float16", "float16": "mixed_float16",
                "bfloat16": "mixed_bfloat16"}
    if mixed_precision not in policies:
        raise TrainingError(f"mixed precision must be float16 or bfloat16, got {mixed_precision!r}")
    policy = policies[mixed_precision]
    tcfg, dcfg, mcfg = cfg["train"], cfg["data"], cfg["model"]

    # -- data first: refuse an unusable folder before any model is built ----------------------
    data_dir = resolve_data_dir(dcfg["data_dir"])
    log = SkipLog()
    try:
        split = load_split(data_dir, dcfg["val_fraction"], dcfg["split_seed"], log=log)
    except NoImagesError as e:
        raise TrainingError(str(e)) from None
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:  # e.g. a file in the way
        raise TrainingError(f"cannot create output dir {output_dir!r} ({(e.strerror or str(e)).lower()})") from None
    if not os.path.isdir(output_dir) or not os.access(output_dir, os.W_OK):
        raise TrainingError(f"output dir {output_dir!r} is not writable")

    import keras
    import tensorflow as tf

    from tfdeblur.gan import make_compiled_gan
    from tfdeblur.losses import ContentLossUnavailable, build_content_loss
    from tfdeblur.models import build_discriminator, build_generator

    seed = int(tcfg["seed"])
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if policy:
        keras.mixed_precision.set_global_policy(policy)

    size = int(dcfg["image_size"])
    if not split.train:  # one "person" (e.g. a flat folder) that the split put on the validation side
        _log("warning: no training persons; training on the validation persons' images")
        split = FaceSplit(split.val, [])
    train_paths = split.train[: dcfg["train_limit"]] if dcfg["train_limit"] else split.train
    _log(f"data: {data_dir}: {len(split.train)} train / {len(split.val)} validation images (split by person)")
    train_images, _ = load_faces(train_paths, size, log=log)
    if len(train_images) == 0:
        raise TrainingError(f"no usable training images under {data_dir!r}")
    val_images, _ = load_faces(split.val, size, log=log, limit=dcfg["val_images"])
    if len(val_images) == 0:  # tiny corpora: validate on (some) training images, and say so
        _log("warning: no validation persons; validating on training images")
        val_images = train_images[: dcfg["val_images"]]
    val_kernels = blur.preset_bank("eval", len(val_images), seed=12345)
    val_blurred = make_eval_pairs(val_images, val_kernels)

    kernel_bank = None
    if dcfg["kernel_bank"]:
        try:
            kernel_bank, _ = blur.load_bank(dcfg["kernel_bank"])
        except ValueError as e:
            raise TrainingError(str(e)) from None
    kparams = kernel_params_from_config(dcfg["blur"])

    total_steps = int(tcfg["steps"])
    if tcfg.get("epochs"):
        total_steps = int(tcfg["epochs"]) * int(tcfg["steps_per_epoch"])
    batch_size = int(tcfg["batch_size"])

    # -- models --------------------------------------------------------------------------------
    dist = _make_strategy(strategy)
    if batch_size % dist.num_replicas_in_sync:
        raise ConfigError(f"batch size {batch_size} must divide evenly over {dist.num_replicas_in_sync} replicas")
    with dist.scope():
        try:
            generator = build_generator(**mcfg["generator"])
            discriminator = build_discriminator(**mcfg["discriminator"])
        except (TypeError, ValueError) as e:  # unknown or invalid model.* values
            raise ConfigError(f"model: {e}") from None
        try:
            content = build_content_loss(tcfg["content"], vgg19_weights=tcfg.get("vgg19_weights"))
        except ContentLossUnavailable as e:
            raise TrainingError(str(e)) from None
        except ValueError as e:
            raise ConfigError(str(e)) from None
        teacher = _load_teacher(tcfg["distill_from"], policy) if tcfg.get("distill_from") else None
        gan = make_compiled_gan(tcfg["gan"], generator, discriminator, content, tcfg,
                                mixed_precision=policy == "mixed_float16", teacher=teacher)
        g_opt, d_opt = gan.g_optimizer, gan.d_optimizer
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        best_psnr = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name="best_psnr")
        lr_scale = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="lr_scale")
        gan.rng = tf.random.Generator.from_seed(seed)

    ckpt = tf.train.Checkpoint(
        generator=generator, discriminator=discriminator, g_optimizer=g_opt, d_optimizer=d_opt,
        step=step_var, best_psnr=best_psnr, lr_scale=lr_scale, rng=gan.rng,
    )
    ckpt_dir = os.path.join(output_dir, "checkpoints")
    manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=int(tcfg["keep_checkpoints"]))
    if manager.latest_checkpoint and not resume:
        raise TrainingError(
            f"{output_dir!r} already holds a checkpoint ({os.path.basename(manager.latest_checkpoint)}); "
            "pass --resume to continue it, or choose another --output-dir"
        )
    if resume and manager.latest_checkpoint:
        try:
            ckpt.restore(manager.latest_checkpoint).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            raise TrainingError(
                f"cannot resume from {manager.latest_checkpoint}: it does not match this config's models "
                f"({one_line(e)})"
            ) from None
        _log(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}")
    elif resume:
        _log(f"--resume: no checkpoint in {ckpt_dir}; starting from step 0")
    init_from = tcfg.get("init_from")
    if init_from and int(step_var.numpy()) == 0:
        _init_from(init_from, generator, discriminator, grow=bool(tcfg.get("init_grow")))

    with open(os.path.join(output_dir, "config.yaml"), "w") as f:
        import yaml

        yaml.safe_dump(cfg, f, sort_keys=False)

    start = int(step_var.numpy())
    if start >= total_steps:
        _log(f"already at step {start} >= --steps {total_steps}; nothing to train")

    ds = train_dataset(
        train_images, batch_size, int(dcfg["crop"]), seed=seed, start_step=start, total_steps=total_steps,
        kernel_params=kparams, kernel_bank=kernel_bank, noise_sigma=dcfg["noise_sigma"],
        border_fraction=float(dcfg["border_fraction"]),
    )
    dist_ds = dist.experimental_distribute_dataset(ds) if dist.num_replicas_in_sync > 1 else ds

    @tf.function
    def train_step(batch):
        per_replica = dist.run(gan.train_step, args=(batch,))
        return {k: dist.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

    @tf.function
    def restore_batch(x):
        return generator(x, training=False)

    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs"))
    spe = int(tcfg["steps_per_epoch"])
    ckpt_every = int(tcfg["checkpoint_every"])
    nan_step = tcfg.get("debug_nan_at_step")
    on_nonfinite = tcfg["on_nonfinite"]
    metric_names = [m.name for m in gan.metrics if m.name != "nonfinite"]  # g_distill only with a teacher
    progbar = keras.utils.Progbar(total_steps, verbose=verbose, stateful_metrics=metric_names + ["lr", "val_psnr"])
    if start and verbose:
        progbar.update(start)

    def save_checkpoint(step):
        step_var.assign(step)
        try:
            manager.save(checkpoint_number=step)
        except (OSError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError, tf.errors.InternalError) as e:
            text = str(e)
            if isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left" in text:
                raise TrainingError(
                    f"disk full while saving the checkpoint at step {step} in {ckpt_dir}; the last good "
                    f"checkpoint is {manager.latest_checkpoint}. Free space and run again with --resume"
                ) from None
            raise TrainingError(f"could not save the checkpoint at step {step}: {one_line(e)}") from None
        finally:
            for name in os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []:
                if "_temp" in name:  # partial shards of a failed write
                    path = os.path.join(ckpt_dir, name)
                    import shutil

                    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)

    def validate(step):
        psnrs, ssims, restored_all = [], [], []
        for i in range(0, len(val_images), 16):
            x = tf.cast(val_blurred[i : i + 16], tf.float32) / 127.5 - 1.0
            y = tf.cast(val_images[i : i + 16], tf.float32) / 127.5 - 1.0
            r = restore_batch(x)
            psnrs.append(tf.image.psnr(r, y, 2.0).numpy())
            ssims.append(tf.image.ssim(r, y, 2.0).numpy())
            if i == 0:
                restored_all = ((r.numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
        psnr, ssim = float(np.mean(np.concatenate(psnrs))), float(np.mean(np.concatenate(ssims)))
        with writer.as_default(step=step):
            tf.summary.scalar("val/psnr", psnr)
            tf.summary.scalar("val/ssim", ssim)
            tf.summary.image("val/blurred|restored|sharp", _image_grid(val_blurred, restored_all, val_images), step=step)
        improved = psnr > float(best_psnr.numpy())
        if improved:
            best_psnr.assign(psnr)
            _save_generator(generator, output_dir, "generator.keras")
        return psnr, ssim, improved

    history = []
    t0 = time.time()
    step = start
    last_good = manager.latest_checkpoint
    with _SignalFlag() as sig:
        iterator = iter(dist_ds)
        while step < total_steps:
            if sig.signum is not None:
                save_checkpoint(step)
                writer.flush()
                raise TrainingInterrupted(sig.signum, step)
            lr_g = _lr_at(step, total_steps, tcfg["g_lr"], tcfg["decay_start"]) * float(lr_scale.numpy())
            lr_d = _lr_at(step, total_steps, tcfg["d_lr"], tcfg["decay_start"]) * float(lr_scale.numpy())
            g_opt.learning_rate.assign(lr_g)
            d_opt.learning_rate.assign(lr_d)
            try:
                batch = next(iterator)
            except StopIteration:
                break
            if nan_step is not None and step + 1 == int(nan_step):  # steps count from 1, as in messages
                batch = tuple(b * float("nan") for b in batch)
            logs = {k: float(v) for k, v in train_step(batch).items()}
            if logs["nonfinite"] > 0:
                bad = {k: logs[k] for k in metric_names if not math.isfinite(logs[k])} or {"gradient": float("nan")}
                what = ", ".join(f"{k}={v}" for k, v in bad.items())
                if on_nonfinite == "stop":
                    raise NonFiniteLoss(
                        f"non-finite loss at step {step + 1} ({what}); the update was not applied and the "
                        f"last good checkpoint is {last_good or 'none (no checkpoint yet)'}. "
                        "Lower the learning rates, or set train.on_nonfinite: skip"
                    )
                lr_scale.assign(float(lr_scale.numpy()) * 0.5)
                _log(f"\nnon-finite loss at step {step + 1} ({what}): step skipped, learning rates halved")
                gan.reset_metrics()
            step += 1
            if step % 50 == 0 or step == total_steps:
                with writer.as_default(step=step):
                    for k in metric_names:
                        if math.isfinite(logs[k]):
                            tf.summary.scalar(f"train/{k}", logs[k])
                    tf.summary.scalar("train/g_lr", lr_g)
                    tf.summary.scalar("train/d_lr", lr_d)
                gan.reset_metrics()  # scalars are means over the last 50 steps, not since step 0
            values = [(k, logs[k]) for k in metric_names if k != "gp" or tcfg["gan"] == "wgan-gp"] + [("lr", lr_g)]
            if step % spe == 0 or step == total_steps:
                psnr, ssim, improved = validate(step)
                history.append({"step": step, "val_psnr": psnr, "val_ssim": ssim})
                values.append(("val_psnr", psnr))
            if step % ckpt_every == 0 or step == total_steps:
                save_checkpoint(step)
                last_good = manager.latest_checkpoint
            if verbose:
                progbar.update(step, values)
    if not os.path.exists(os.path.join(output_dir, "generator.keras")):
        validate(step)
    if step > start:
        # generator.keras is picked by PSNR; adversarial fine-tuning may trade PSNR for detection,
        # so the last generator is kept too, for evaluate.py to judge
        _save_generator(generator, output_dir, "generator_last.keras")
    writer.flush()
    elapsed = time.time() - t0
    summary = {
        "gan": tcfg["gan"], "steps": step, "trained_steps_this_run": step - start,
        "seconds_this_run": round(elapsed, 1),
        "images_per_second": round((step - start) * batch_size / elapsed, 2) if elapsed > 0 and step > start else None,
        "best_val_psnr": float(best_psnr.numpy()), "history": history,
        "train_images": int(len(train_images)), "val_images": int(len(val_images)),
        "skipped_inputs": len(log),
    }
    with open(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
