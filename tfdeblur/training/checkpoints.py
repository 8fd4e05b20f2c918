"""A run's state on disk and the model selection: ``tf.train.Checkpoint`` +
``CheckpointManager`` (G, D, both optimizers, the step, the best validation PSNR, the learning-rate
scale and the gradient penalty's RNG), validation, and the generator files it picks.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys

import numpy as np

from tfdeblur.data import from_model, to_model
from tfdeblur.errors import one_line
from tfdeblur.training import cluster
from tfdeblur.training.build import load_generator_file
from tfdeblur.training.errors import TrainingError

__all__ = ["Checkpoints", "init_models_from"]

VAL_BATCH = 16


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _image_grid(blurred, restored, sharp, n=4):
    """Rows of blurred | restored | sharp, uint8 [1, n*H, 3*W, 3]."""
    rows = [np.concatenate([blurred[i], restored[i], sharp[i]], axis=1) for i in range(min(n, len(blurred)))]
    return np.concatenate(rows, axis=0)[None]


class Checkpoints:
    """Checkpoints of one run in ``output_dir/checkpoints``, and the generator it keeps.

    ``generator.keras`` is the generator of the best validation PSNR so far (validated on the
    uint8 ``val_blurred`` / ``val_images`` pairs); the state variables are created in
    ``strategy``'s scope, as the models were. In a multi-worker run only the chief writes
    ``output_dir``; the other workers save into a scratch folder (:mod:`.cluster`).
    """

    def __init__(self, gan, output_dir, keep, strategy, val_images, val_blurred):
        import tensorflow as tf

        self.gan, self.output_dir = gan, output_dir
        self.val_images, self.val_blurred = val_images, val_blurred
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best_psnr = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name="best_psnr")
            self.lr_scale = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="lr_scale")
        self.checkpoint = tf.train.Checkpoint(
            generator=gan.generator, discriminator=gan.discriminator, g_optimizer=gan.g_optimizer,
            d_optimizer=gan.d_optimizer, step=self.step, best_psnr=self.best_psnr, lr_scale=self.lr_scale,
            rng=gan.rng,
        )
        self.dir = os.path.join(output_dir, "checkpoints")
        self.chief = cluster.is_chief(strategy)
        self._scratch = None if self.chief else cluster.scratch_dir(output_dir, strategy)
        write_dir = self.dir if self.chief else os.path.join(self._scratch, "checkpoints")
        self.manager = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep=int(keep))
        self._restore_batch = tf.function(lambda x: gan.generator(x, training=False))

    @property
    def latest(self):
        import tensorflow as tf

        return tf.train.latest_checkpoint(self.dir)  # the chief's, on every worker

    def restore(self, resume: bool) -> int:
        """Continue the last checkpoint (``resume``) or refuse to overwrite one; the start step."""
        import tensorflow as tf

        if self.latest and not resume:
            raise TrainingError(
                f"{self.output_dir!r} already holds a checkpoint ({os.path.basename(self.latest)}); "
                "pass --resume to continue it, or choose another --output-dir"
            )
        if resume and self.latest:
            try:
                self.checkpoint.restore(self.latest).expect_partial()
            except (tf.errors.OpError, ValueError, AssertionError) as e:
                raise TrainingError(
                    f"cannot resume from {self.latest}: it does not match this config's models ({one_line(e)})"
                ) from None
            _log(f"resumed from {self.latest} at step {int(self.step.numpy())}")
        elif resume:
            _log(f"--resume: no checkpoint in {self.dir}; starting from step 0")
        return int(self.step.numpy())

    def save(self, step):
        """Checkpoint ``step``; a full disk (or another failed write) is a one-line TrainingError
        naming the last good checkpoint, and no partial shards are left behind."""
        import tensorflow as tf

        self.step.assign(step)
        try:
            self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError, tf.errors.InternalError) as e:
            if isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left" in str(e):
                raise TrainingError(
                    f"disk full while saving the checkpoint at step {step} in {self.dir}; the last good "
                    f"checkpoint is {self.latest}. Free space and run again with --resume"
                ) from None
            raise TrainingError(f"could not save the checkpoint at step {step}: {one_line(e)}") from None
        finally:
            if self._scratch:  # a non-chief cleans only its own folder: the chief may still be writing
                cluster.remove_scratch(self._scratch)
            else:
                self._remove_partial_shards()

    def _remove_partial_shards(self):
        for name in os.listdir(self.dir) if os.path.isdir(self.dir) else []:
            if "_temp" in name:  # partial shards of a failed write
                path = os.path.join(self.dir, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)

    def validate(self, step, writer):
        """Mean PSNR / SSIM on the validation pairs, logged to ``writer`` with an image grid;
        a new best PSNR writes ``generator.keras``. Returns ``(psnr, ssim, improved)``."""
        import tensorflow as tf

        psnrs, ssims, restored_grid = [], [], []
        for i in range(0, len(self.val_images), VAL_BATCH):
            x = to_model(self.val_blurred[i : i + VAL_BATCH])
            y = to_model(self.val_images[i : i + VAL_BATCH])
            r = self._restore_batch(x)
            psnrs.append(tf.image.psnr(r, y, 2.0).numpy())
            ssims.append(tf.image.ssim(r, y, 2.0).numpy())
            if i == 0:
                restored_grid = from_model(r).numpy()
        psnr, ssim = float(np.mean(np.concatenate(psnrs))), float(np.mean(np.concatenate(ssims)))
        with writer.as_default(step=step):  # a no-op writer on non-chief workers
            tf.summary.scalar("val/psnr", psnr)
            tf.summary.scalar("val/ssim", ssim)
            tf.summary.image("val/blurred|restored|sharp",
                             _image_grid(self.val_blurred, restored_grid, self.val_images), step=step)
        improved = psnr > float(self.best_psnr.numpy())
        if improved:
            self.best_psnr.assign(psnr)
            self.save_generator("generator.keras")
        return psnr, ssim, improved

    def save_generator(self, filename):
        """Write ``output_dir/filename`` atomically (a crash never leaves half a model); a failed
        write is a one-line TrainingError. Only the chief writes."""
        if not self.chief:
            return
        path = os.path.join(self.output_dir, filename)
        tmp = path[: -len(".keras")] + f".tmp-{os.getpid()}.keras"
        try:
            self.gan.generator.save(tmp)
            os.replace(tmp, path)
        except OSError as e:
            raise TrainingError(f"could not write {filename}: {e.strerror or e}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _check_grown(source_generator, generator, source):
    """Growing only preserves the function when the layers line up (same stem_kernel,
    pixel_shuffle, ...): compare both on a probe image."""
    import tensorflow as tf

    probe = tf.random.stateless_uniform([1, 64, 64, 3], [0, 0], -1.0, 1.0)
    gap = float(tf.reduce_max(tf.abs(source_generator(probe, training=False) - generator(probe, training=False))))
    if not gap <= 1e-3:
        raise TrainingError(
            f"train.init_grow: this generator does not start as {source!r} (max difference {gap:.3g}); "
            "only ngf and n_blocks may grow (keep stem_kernel, n_down, pixel_shuffle, block and upsample)"
        )


def init_models_from(source, generator, discriminator, grow=False):
    """Fine-tuning: start from another run. Step, optimizers and the LR schedule start fresh.

    ``source`` is a checkpoint (folder or prefix: G and D are restored) or a generator ``.keras``
    file such as the shipped model (G only, matched layer by layer, so the generator may have
    fewer or more ResNet blocks; D starts from scratch). ``grow`` (``train.init_grow``) lets that
    generator be wider too, starting as the same function
    (:func:`tfdeblur.weights.copy_weights_by_name`).
    """
    import tensorflow as tf

    from tfdeblur.weights import copy_weights_by_name

    if str(source).endswith(".keras"):
        source_generator = load_generator_file(source, "train.init_from")
        try:
            copied, fresh, unused = copy_weights_by_name(source_generator, generator, grow=grow)
        except ValueError as e:
            raise TrainingError(f"train.init_from: cannot use {source!r} ({one_line(e)})") from None
        if grow:
            _check_grown(source_generator, generator, source)
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
