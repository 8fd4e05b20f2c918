"""The training run behind ``python train.py``: data, models, checkpoints, the step loop, the summary.

A custom step loop (rather than ``fit``) because GAN runs here are step-based and must resume
mid-"epoch" exactly: the data stream is a pure function of the step (see ``tfdeblur.data``), and
the checkpoints (:class:`tfdeblur.training.checkpoints.Checkpoints`) store everything else.
"""

from __future__ import annotations

import io
import math
import os
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

from tfdeblur import blur
from tfdeblur.config import ConfigError
from tfdeblur.data import FaceSplit, NoImagesError, load_faces, load_split, model_selection_pairs, train_dataset
from tfdeblur.errors import output_folder_problem
from tfdeblur.files import write_json
from tfdeblur.imageio import SkipLog
from tfdeblur.training import cluster
from tfdeblur.training.build import build_models, make_strategy, precision_policy
from tfdeblur.training.checkpoints import Checkpoints, init_models_from
from tfdeblur.training.errors import NonFiniteLoss, TrainingError, TrainingInterrupted

__all__ = ["resolve_data_dir", "learning_rate_at", "train"]

SCALARS_EVERY = 50  # TensorBoard train/* scalars: means over this many steps


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


def learning_rate_at(step, total, base, decay_start):
    """Constant, then linear decay to 0 (DeblurGAN's schedule)."""
    start = int(total * decay_start)
    if step < start or total <= start:
        return base
    return base * max(0.0, (total - step) / (total - start))


# ------------------------------------------------------------------------------------- data

@dataclass
class _TrainingData:
    train_images: np.ndarray  # uint8 [N, size, size, 3]
    val_images: np.ndarray
    val_blurred: np.ndarray  # val_images blurred by the fixed "eval" bank
    kernel_params: blur.KernelParams
    kernel_bank: np.ndarray | None
    frames: np.ndarray | None = None  # uint8 [N, S, S, 3] training frames (data.frames), or None
    frame_kernel_params: blur.KernelParams | None = None
    small_face_kernel_params: blur.KernelParams | None = None  # data.small_faces.blur (None: no small faces)


def _split_and_output_dir(data_dir, dcfg, output_dir, log) -> FaceSplit:
    """Refuse an unusable data folder or output folder before any model is built."""
    try:
        split = load_split(data_dir, dcfg["val_fraction"], dcfg["split_seed"], log=log)
    except NoImagesError as e:
        raise TrainingError(str(e)) from None
    problem = output_folder_problem(output_dir, create=True)
    if problem:
        raise TrainingError(f"output dir: {problem}")
    return split


def _load_data(data_dir, split, dcfg, log) -> _TrainingData:
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
    val_blurred = model_selection_pairs(val_images)
    kernel_bank = None
    if dcfg["kernel_bank"]:
        try:
            kernel_bank, _ = blur.load_bank(dcfg["kernel_bank"])
        except ValueError as e:
            raise TrainingError(str(e)) from None
    frames, frame_kernels = _load_frames(data_dir, train_paths, dcfg)
    small = dcfg["small_faces"]
    small_kernels = blur.kernel_params_from_config(small["blur"]) if small["fraction"] else None
    if small_kernels is not None:
        _log(f"data: small faces of {small['face_heights'][0]:g}-{small['face_heights'][1]:g} px, "
             f"upscaled as deblur_faces does ({small['fraction']:.0%} of each batch)")
    return _TrainingData(train_images, val_images, val_blurred, blur.kernel_params_from_config(dcfg["blur"]),
                         kernel_bank, frames, frame_kernels, small_kernels)


def _load_frames(data_dir, train_paths, dcfg):
    """Frames composed from the training persons' photos (none when data.frames.fraction is 0)."""
    fcfg = dcfg["frames"]
    if not fcfg["fraction"]:
        return None, None
    from tfdeblur import frame_data
    from tfdeblur.scenes import SceneError, photos_with_faces

    kernel_params = blur.kernel_params_from_config(fcfg["blur"])  # a typo fails before the detector runs
    # load_faces has already reported unreadable photos to the run's skip log; a photo without an MTCNN face
    # still serves as crop data, so neither is a skipped input here (the count is logged below).
    unused = SkipLog(stream=io.StringIO())
    try:
        faces, boxes, _ = photos_with_faces(train_paths, log=unused, where=f"among the training photos under {data_dir!r}")
    except SceneError as e:
        raise TrainingError(f"data.frames: {e}") from None
    if not faces:
        raise TrainingError(f"data.frames: MTCNN finds no face in the training photos under {data_dir!r}")
    frames = frame_data.training_frames(faces, boxes, fcfg["count"], fcfg["size"], fcfg["face_heights"],
                                        fcfg["max_faces"], fcfg["seed"])
    _log(f"data: {len(frames)} training frames of {fcfg['size']}^2 from {len(faces)} training photos "
         f"({fcfg['fraction']:.0%} of each batch)")
    return frames, kernel_params


def _dataset(data: _TrainingData, dcfg, batch_size, seed, start, total_steps, dist):
    from tfdeblur import frame_data

    n_frames = frame_data.frame_batch_size(batch_size, float(dcfg["frames"]["fraction"])) if data.frames is not None else 0
    n_small = (frame_data.frame_batch_size(batch_size, float(dcfg["small_faces"]["fraction"]))
               if data.small_face_kernel_params is not None else 0)
    if batch_size - n_frames - n_small < 1:
        raise TrainingError(f"batch_size {batch_size} leaves no crop samples beside {n_frames} frame and "
                            f"{n_small} small-face samples")
    common = dict(start_step=start, total_steps=total_steps, noise_sigma=dcfg["noise_sigma"],
                  jpeg_prob=float(dcfg["jpeg"]["prob"]), jpeg_quality=dcfg["jpeg"]["quality"])

    def global_batches():
        parts = [train_dataset(
            data.train_images, batch_size - n_frames - n_small, int(dcfg["crop"]), seed=seed,
            kernel_params=data.kernel_params, kernel_bank=data.kernel_bank,
            border_fraction=float(dcfg["border_fraction"]), **common,
        )]
        if n_frames:
            parts.append(train_dataset(data.frames, n_frames, int(dcfg["crop"]), seed=seed + 1009,
                                       kernel_params=data.frame_kernel_params, **common))
        if n_small:
            parts.append(frame_data.small_face_dataset(
                data.train_images, n_small, int(dcfg["crop"]), seed=seed + 2003,
                face_heights=dcfg["small_faces"]["face_heights"], kernel_params=data.small_face_kernel_params,
                **common))
        return parts[0] if len(parts) == 1 else frame_data.mixed_dataset(*parts)

    if cluster.is_multiworker(dist):
        return cluster.distribute_per_worker(dist, global_batches, batch_size)
    ds = global_batches()
    return dist.experimental_distribute_dataset(ds) if dist.num_replicas_in_sync > 1 else ds


# ------------------------------------------------------------------------------------- train

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
    policy = precision_policy(mixed_precision)
    tcfg, dcfg = cfg["train"], cfg["data"]
    data_dir = resolve_data_dir(dcfg["data_dir"])
    log = SkipLog()
    split = _split_and_output_dir(data_dir, dcfg, output_dir, log)

    import keras
    import tensorflow as tf

    # first: MultiWorkerMirroredStrategy must configure collective ops before any other TF op runs
    dist = make_strategy(strategy)
    chief = cluster.is_chief(dist)
    if not chief:
        verbose = 0  # the chief shows progress
        _log(f"{cluster.task_label(dist)}: training; the chief writes {output_dir}")
    seed = int(tcfg["seed"])
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    data = _load_data(data_dir, split, dcfg, log)
    total_steps = int(tcfg["steps"])
    if tcfg.get("epochs"):
        total_steps = int(tcfg["epochs"]) * int(tcfg["steps_per_epoch"])
    batch_size = int(tcfg["batch_size"])
    if batch_size % dist.num_replicas_in_sync:
        raise ConfigError(f"batch size {batch_size} must divide evenly over {dist.num_replicas_in_sync} replicas")
    with dist.scope():
        gan = build_models(cfg, policy)
    ckpts = Checkpoints(gan, output_dir, tcfg["keep_checkpoints"], dist, data.val_images, data.val_blurred)
    start = ckpts.restore(resume)
    if tcfg.get("init_from") and start == 0:
        init_models_from(tcfg["init_from"], gan.generator, gan.discriminator, grow=bool(tcfg.get("init_grow")))
    if chief:
        with open(os.path.join(output_dir, "config.yaml"), "w") as f:
            import yaml

            yaml.safe_dump(cfg, f, sort_keys=False)
    if start >= total_steps:
        _log(f"already at step {start} >= --steps {total_steps}; nothing to train")

    ds = _dataset(data, dcfg, batch_size, seed, start, total_steps, dist)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs")) if chief else tf.summary.create_noop_writer()
    t0 = time.time()
    step, history = _Loop(gan, ckpts, dist, tcfg, total_steps, writer, verbose).run(ds, start)
    if not os.path.exists(os.path.join(output_dir, "generator.keras")) and chief:
        ckpts.validate(step, writer)
    if step > start:
        # generator.keras is picked by PSNR; adversarial fine-tuning may trade PSNR for detection,
        # so the last generator is kept too, for evaluate.py to judge
        ckpts.save_generator("generator_last.keras")
    writer.flush()
    elapsed = time.time() - t0
    summary = {
        "gan": tcfg["gan"], "steps": step, "trained_steps_this_run": step - start,
        "seconds_this_run": round(elapsed, 1),
        "images_per_second": round((step - start) * batch_size / elapsed, 2) if elapsed > 0 and step > start else None,
        "best_val_psnr": float(ckpts.best_psnr.numpy()), "history": history,
        "train_images": int(len(data.train_images)), "val_images": int(len(data.val_images)),
        "skipped_inputs": len(log),
    }
    if chief:
        write_json(os.path.join(output_dir, "summary.json"), summary, indent=2)
    return summary


class _Loop:
    """The step loop: learning-rate schedule, non-finite steps, TensorBoard scalars, validation
    every epoch, checkpoints, the progress bar and SIGINT/SIGTERM."""

    def __init__(self, gan, ckpts, dist, tcfg, total_steps, writer, verbose):
        import keras
        import tensorflow as tf

        self.gan, self.ckpts, self.tcfg, self.total, self.writer = gan, ckpts, tcfg, total_steps, writer
        self.verbose = verbose
        # g_distill only with a teacher; "nonfinite" is a flag, not a loss
        self.metric_names = [m.name for m in gan.metrics if m.name != "nonfinite"]
        self.progbar = keras.utils.Progbar(total_steps, verbose=verbose,
                                           stateful_metrics=self.metric_names + ["lr", "val_psnr"])

        @tf.function
        def train_step(batch):
            per_replica = dist.run(gan.train_step, args=(batch,))
            return {k: dist.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

        self.train_step = train_step

    def run(self, ds, start):
        """Train from ``start`` to the last step (or to the end of ``ds``): ``(step, history)``."""
        tcfg, ckpts = self.tcfg, self.ckpts
        nan_step = tcfg.get("debug_nan_at_step")
        if start and self.verbose:
            self.progbar.update(start)
        history, step, last_good = [], start, ckpts.latest
        with _SignalFlag() as sig:
            iterator = iter(ds)
            while step < self.total:
                if sig.signum is not None:
                    ckpts.save(step)
                    if step > start:  # the last generator too, as a finished run keeps it
                        ckpts.save_generator("generator_last.keras")
                    self.writer.flush()
                    raise TrainingInterrupted(sig.signum, step)
                lr_g, lr_d = self._set_learning_rates(step)
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                if nan_step is not None and step + 1 == int(nan_step):  # steps count from 1, as in messages
                    batch = tuple(b * float("nan") for b in batch)
                logs = {k: float(v) for k, v in self.train_step(batch).items()}
                if logs["nonfinite"] > 0:
                    self._non_finite(step, logs, last_good)
                step += 1
                if step % SCALARS_EVERY == 0 or step == self.total:
                    self._log_scalars(step, logs, lr_g, lr_d)
                values = [(k, logs[k]) for k in self.metric_names if k != "gp" or tcfg["gan"] == "wgan-gp"]
                values.append(("lr", lr_g))
                if step % int(tcfg["steps_per_epoch"]) == 0 or step == self.total:
                    psnr, ssim, _ = ckpts.validate(step, self.writer)
                    history.append({"step": step, "val_psnr": psnr, "val_ssim": ssim})
                    values.append(("val_psnr", psnr))
                    if tcfg.get("keep_generators"):  # for selecting a checkpoint by another measure later
                        ckpts.save_generator(f"generator_{step:06d}.keras")
                if step % int(tcfg["checkpoint_every"]) == 0 or step == self.total:
                    ckpts.save(step)
                    last_good = ckpts.latest
                if self.verbose:
                    self.progbar.update(step, values)
        return step, history

    def _set_learning_rates(self, step):
        t, scale = self.tcfg, float(self.ckpts.lr_scale.numpy())
        lr_g = learning_rate_at(step, self.total, t["g_lr"], t["decay_start"]) * scale
        lr_d = learning_rate_at(step, self.total, t["d_lr"], t["decay_start"]) * scale
        self.gan.g_optimizer.learning_rate.assign(lr_g)
        self.gan.d_optimizer.learning_rate.assign(lr_d)
        return lr_g, lr_d

    def _non_finite(self, step, logs, last_good):
        """Stop (``train.on_nonfinite: stop``) or halve the learning rates and go on (``skip``);
        the step's update was not applied either way."""
        bad = {k: logs[k] for k in self.metric_names if not math.isfinite(logs[k])} or {"gradient": float("nan")}
        what = ", ".join(f"{k}={v}" for k, v in bad.items())
        if self.tcfg["on_nonfinite"] == "stop":
            raise NonFiniteLoss(
                f"non-finite loss at step {step + 1} ({what}); the update was not applied and the "
                f"last good checkpoint is {last_good or 'none (no checkpoint yet)'}. "
                "Lower the learning rates, or set train.on_nonfinite: skip"
            )
        self.ckpts.lr_scale.assign(float(self.ckpts.lr_scale.numpy()) * 0.5)
        _log(f"\nnon-finite loss at step {step + 1} ({what}): step skipped, learning rates halved")
        self.gan.reset_metrics()

    def _log_scalars(self, step, logs, lr_g, lr_d):
        import tensorflow as tf

        with self.writer.as_default(step=step):
            for k in self.metric_names:
                if math.isfinite(logs[k]):
                    tf.summary.scalar(f"train/{k}", logs[k])
            tf.summary.scalar("train/g_lr", lr_g)
            tf.summary.scalar("train/d_lr", lr_d)
        self.gan.reset_metrics()  # scalars are means over the last 50 steps, not since step 0
