"""The evaluation run: load the generators, restore the images, detect faces in every condition,
and gather the measures into the ``metrics.json`` dictionary (:func:`evaluate_models`).

The measures of one model are computed in :func:`model_measures` from a :class:`ModelRun` (its
restored images, every detector's faces in every condition, PSNR/SSIM); further measures (for
example identity or per-face-size scene measures) are callables passed as ``measures=`` that take
the same :class:`ModelRun` and return a dict merged into that model's metrics.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from tfdeblur.errors import one_line
from tfdeblur.evaluation.common import CONDITIONS, IOU_THRESHOLD, PAPER_TABLE1, EvaluationError, finite_or_none
from tfdeblur.evaluation.datasets import EvalData
from tfdeblur.evaluation.matching import detection_references
from tfdeblur.evaluation.metrics import condition_metrics, image_quality, same_shape_batches
from tfdeblur.evaluation.statistics import mcnemar_test, paired_difference

__all__ = ["load_models", "deblur_images", "evaluate_models", "ModelRun", "model_measures"]


# ------------------------------------------------------------------------------------- models


def _model_name(path) -> str:
    return "shipped" if path is None else os.fspath(path)


def load_models(paths, precision: str = "float32") -> dict:
    """``{name: model}`` for each ``--model`` path (``None`` = the shipped model; a name of
    ``tfdeblur.inference.SHIPPED_MODELS`` such as ``fast`` = that shipped generator), computing in
    ``precision`` (``"float32"`` or ``"bfloat16"``).

    Loads through :func:`tfdeblur.inference.load_model`. Any failure is an
    :class:`EvaluationError` with a one-line message.
    """
    from tfdeblur.inference import SHIPPED_MODELS, ModelLoadError, load_model

    paths = list(paths) if paths else [None]
    models = {}
    for p in paths:
        name = _model_name(p)
        if name in models:
            raise EvaluationError(f"--model {name} given twice")
        if p is not None and not os.path.exists(p) and p not in SHIPPED_MODELS:
            raise EvaluationError(f"--model {p}: no such file")
        try:
            model = load_model(p, precision)
        except Exception as e:  # noqa: BLE001  any loader failure is a one-line user error
            if isinstance(e, ModelLoadError):  # already says what and where
                raise EvaluationError(f"--model: {one_line(e)}") from None
            raise EvaluationError(f"--model {name}: cannot load a generator from it ({one_line(e)})") from None
        _check_generator(model, name)
        models[name] = model
    return models


def _check_generator(model, name):
    probe = np.zeros((1, 64, 64, 3), np.float32)  # 64: enough for every generator's bottleneck
    try:
        out = model(probe, training=False) if callable(model) else None
        shape = tuple(np.shape(out))
    except Exception as e:  # noqa: BLE001
        raise EvaluationError(f"--model {name}: not an image-to-image generator ({one_line(e)})") from None
    if shape != probe.shape:
        raise EvaluationError(f"--model {name}: not an image-to-image generator (a 64x64 RGB input gave shape {shape})")


def _deblur_fn(model):
    """``batch uint8 [N, H, W, 3] -> uint8`` with :func:`tfdeblur.inference.deblur`, one forward
    pass per batch."""
    from tfdeblur.inference import deblur

    return lambda batch: np.asarray(deblur(model, batch, batch_size=len(batch)), np.uint8)


def deblur_images(model, images, batch_size: int = 16, progress=None) -> tuple[list, float]:
    """Deblur a list of uint8 images in batches: ``(restored list, images per second)``.

    The first batch is left out of the timing (graph tracing) when there is more than one.
    """
    fn = _deblur_fn(model)
    out = []
    timed_n, timed_s = 0, 0.0
    for k, (_, batch) in enumerate(same_shape_batches(images, batch_size)):
        t = time.perf_counter()
        res = fn(batch)
        dt = time.perf_counter() - t
        if res.shape != batch.shape:
            raise EvaluationError(f"the generator returned shape {res.shape} for input {batch.shape}")
        out.extend(list(res))
        if k > 0 or len(batch) == len(images):
            timed_n, timed_s = timed_n + len(batch), timed_s + dt
        if progress is not None:
            progress(len(batch))
    if timed_n == 0:  # one batch: time it after all, it is all we have
        timed_n, timed_s = len(images), max(timed_s, 1e-9)
    return out, (timed_n / timed_s if timed_s > 0 else float("nan"))


# -------------------------------------------------------------------------------------- run


MTCNN_CACHE: dict = {}  # one MTCNN per process and batch size: building it costs seconds


def _progress(total, verbose):
    """A callback advancing one progress bar by k images (a no-op when not ``verbose``)."""
    if not verbose:
        return lambda k: None
    import keras

    bar = keras.utils.Progbar(total, unit_name="image", verbose=1)
    state = {"done": 0}

    def step(k):
        state["done"] += k
        bar.update(min(state["done"], total))

    return step


def _build_detectors(detector, independent, batch_size):
    """``({"mtcnn": ..., ["independent": ...]}, why the independent one is missing or None)``."""
    from tfdeblur import detectors as det

    if detector is None:
        if batch_size not in MTCNN_CACHE:
            MTCNN_CACHE[batch_size] = det.MTCNNDetector(batch_size=batch_size)
        detector = MTCNN_CACHE[batch_size]
    unavailable = None
    if isinstance(independent, str):
        try:
            independent = det.get(independent, batch_size=batch_size)
        except det.DetectorUnavailable as e:
            unavailable = str(e)
            print(f"warning: independent detector unavailable: {e}", file=sys.stderr)
            independent = None
    found = {"mtcnn": detector}
    if independent is not None:
        found["independent"] = independent
    return found, unavailable


class _Detections:
    """Every detector's faces per condition (``"sharp"``, ``"blurred"``, ``"restored@<model>"``,
    ``"sharp_restored@<model>"``), with the detectors' time and image counts."""

    def __init__(self, detectors, batch_size, step):
        self.detectors, self.batch_size, self.step = detectors, batch_size, step
        self.faces = {k: {} for k in detectors}  # detector key -> condition -> per image, best first
        self.seconds = {k: 0.0 for k in detectors}
        self.count = {k: 0 for k in detectors}

    def run(self, condition, images):
        for key, detector in self.detectors.items():
            faces = []
            for _, batch in same_shape_batches(images, self.batch_size):
                t = time.perf_counter()
                res = detector.detect(list(batch))
                self.seconds[key] += time.perf_counter() - t
                faces.extend([sorted(r, key=lambda f: -f.confidence) for r in res])
                self.step(len(batch))
            self.count[key] += len(images)
            self.faces[key][condition] = faces

    def fps(self, key):
        return self.count[key] / self.seconds[key] if self.seconds.get(key, 0) > 0 else None


@dataclass
class ModelRun:
    """One model's outputs: what every per-model measure is computed from."""

    name: str
    model: object
    data: EvalData
    restored: list
    sharp_restored: list
    fps: float | None  # images per second, deblurring
    quality: dict  # condition -> (psnr, ssim) per image, or None for "sharp"
    faces: dict  # detector key -> condition ("sharp", "blurred", "restored", "sharp_restored") -> faces
    references: dict  # detector key -> per image (reference boxes, landmark-reference faces)
    success: dict = field(default_factory=dict)  # detector key -> condition -> bool per image


def _run_model(name, model, data, found, refs, q_blurred, batch_size, step) -> ModelRun:
    restored, fps_a = deblur_images(model, data.blurred, batch_size, step)
    sharp_restored, fps_b = deblur_images(model, data.sharp, batch_size, step)
    found.run(f"restored@{name}", restored)
    found.run(f"sharp_restored@{name}", sharp_restored)
    quality = {"sharp": None, "blurred": q_blurred, "restored": image_quality(restored, data.sharp, batch_size),
               "sharp_restored": image_quality(sharp_restored, data.sharp, batch_size)}
    n = len(data)
    fps = 2 * n / (n / fps_a + n / fps_b) if fps_a > 0 and fps_b > 0 else None
    faces, success = {}, {}
    for key in found.detectors:
        f = found.faces[key]
        faces[key] = {"sharp": f["sharp"], "blurred": f["blurred"], "restored": f[f"restored@{name}"],
                      "sharp_restored": f[f"sharp_restored@{name}"]}
        success[key] = {c: np.array([len(x) > 0 for x in faces[key][c]]) for c in CONDITIONS}
    return ModelRun(name, model, data, restored, sharp_restored, fps, quality, faces, refs, success)


def model_measures(run: ModelRun) -> dict:
    """The per-model entry of ``metrics.json["per_model"]``: each detector's condition metrics,
    McNemar tests, the PSNR gain and the deblurring speed."""
    result = {}
    for key, label in (("mtcnn", "conditions"), ("independent", "independent")):
        result[label] = None if key not in run.faces else {
            c: condition_metrics(run.faces[key][c], run.references[key], is_reference=(c == "sharp"),
                                 quality=run.quality[c])
            for c in CONDITIONS
        }
    sm = run.success["mtcnn"]
    tests = {"mtcnn_blurred_vs_restored": mcnemar_test(sm["blurred"], sm["restored"]),
             "mtcnn_sharp_vs_sharp_restored": mcnemar_test(sm["sharp"], sm["sharp_restored"])}
    if "independent" in run.success:
        si = run.success["independent"]
        tests["independent_blurred_vs_restored"] = mcnemar_test(si["blurred"], si["restored"])
    return {**result, "mcnemar_p": tests["mtcnn_blurred_vs_restored"]["p"], "mcnemar": tests,
            "psnr_gain": paired_difference(run.quality["blurred"][0], run.quality["restored"][0]),
            "deblur_fps": finite_or_none(run.fps)}


def _between_models(runs: list) -> dict:
    """MTCNN success (McNemar) and restored PSNR (paired, B - A) for every pair of models, and the
    independent detector's success (McNemar) when it ran."""
    between = {}
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            sa, sb = a.success["mtcnn"], b.success["mtcnn"]
            pair = between[f"{a.name} vs {b.name}"] = {
                "restored": mcnemar_test(sa["restored"], sb["restored"]),
                "sharp_restored": mcnemar_test(sa["sharp_restored"], sb["sharp_restored"]),
                "restored_psnr_difference": paired_difference(a.quality["restored"][0], b.quality["restored"][0]),
            }
            if "independent" in a.success and "independent" in b.success:
                pair["independent_restored"] = mcnemar_test(a.success["independent"]["restored"],
                                                            b.success["independent"]["restored"])
    return between


def evaluate_models(models: dict, data: EvalData, detector=None, independent="blazeface", batch_size: int = 16,
                    verbose: int = 1, details: dict | None = None, measures=()) -> dict:
    """Run the whole evaluation; returns the metrics dictionary written to ``metrics.json``.

    ``models``: ``{name: generator}`` (see :func:`load_models`). ``detector``: an MTCNN-like
    object with ``detect`` (default: :class:`tfdeblur.detectors.MTCNNDetector`). ``independent``:
    a detector object, a name for :func:`tfdeblur.detectors.get`, or None to skip it.
    ``details``, when given, is filled with the images and detections (for figures).
    ``measures``: callables ``f(run: ModelRun) -> dict``, merged into each model's metrics.
    """
    if not models:
        raise EvaluationError("no model to evaluate")
    n = len(data)
    if n == 0:
        raise EvaluationError("no images to evaluate")
    detectors, unavailable = _build_detectors(detector, independent, batch_size)
    step = _progress(n * len(detectors) * (2 + 2 * len(models)) + n * 2 * len(models), verbose)

    found = _Detections(detectors, batch_size, step)
    found.run("sharp", data.sharp)
    found.run("blurred", data.blurred)
    refs = {k: detection_references(found.faces[k]["sharp"], data.gt_boxes) for k in detectors}
    q_blurred = image_quality(data.blurred, data.sharp, batch_size)

    runs, per_model = [], {}
    for name, model in models.items():
        run = _run_model(name, model, data, found, refs, q_blurred, batch_size, step)
        per_model[name] = model_measures(run)
        for measure in measures:
            per_model[name].update(measure(run))
        runs.append(run)

    metrics = _summary(per_model, data, detectors.get("independent"), found)
    metrics["mcnemar_models"] = _between_models(runs)
    if unavailable:
        metrics["independent_error"] = unavailable
    if details is not None:
        details.update({
            "names": data.names, "sharp": data.sharp, "blurred": data.blurred,
            "restored": {r.name: (r.restored, r.sharp_restored) for r in runs},
            "faces": found.faces, "gt_boxes": data.gt_boxes,
        })
    return metrics


def _summary(per_model, data, independent, found) -> dict:
    """The top level of ``metrics.json``: the first model's results, the run's facts, and every model."""
    names = list(per_model)
    first = per_model[names[0]]
    return {
        "n": len(data),
        "detector": "mtcnn",
        "independent_detector": getattr(independent, "name", None) if independent is not None else None,
        "conditions": first["conditions"],
        "independent": first["independent"],
        "mcnemar_p": first["mcnemar_p"],
        "mcnemar": first["mcnemar"],
        "psnr_gain": first["psnr_gain"],
        "deblur_fps": first["deblur_fps"],
        "detector_fps": found.fps("mtcnn"),
        "independent_detector_fps": found.fps("independent"),
        "models": names,
        "per_model": per_model,
        "mcnemar_models": {},
        "iou_threshold": IOU_THRESHOLD,
        "reference": "ground_truth_boxes" if data.gt_boxes is not None else "sharp_best_detection",
        "source": data.source,
        "paper_table1": PAPER_TABLE1,
    }
