"""Face-detection evaluation of deblurring generators (Fan & Luo, Table 1, and more).

For every image we form four conditions:

* ``sharp``          the sharp face;
* ``blurred``        the sharp face blurred with the fixed "eval" preset (or a supplied blurred twin);
* ``restored``       the generator applied to ``blurred``;
* ``sharp_restored`` the generator applied to ``sharp`` (does it harm faces that need no help?).

Each condition is scored with MTCNN (the paper's detector) and with an independent second detector
(BlazeFace, see :mod:`tfdeblur.independent_detector`):

* ``failure_rate``: share of images where no face is found, with a 95% Wilson interval;
* ``confidence_mean``: mean confidence of the best detection, over images with a detection;
* ``recall`` / ``false_positives`` at IoU >= 0.5 against reference boxes: hand-labelled boxes
  when the dataset has them, otherwise (single-face crops such as LFW) the same detector's best
  detection on the sharp image;
* ``landmark_nme``: landmark error against the same detector's landmarks on the sharp image,
  normalised by the inter-ocular distance;
* ``psnr`` / ``ssim`` against the sharp image (``tf.image``).

Across conditions, McNemar's exact test compares paired detection success (blurred vs restored,
and model vs model). Everything here is importable; :func:`evaluate_main` is the CLI
(``python evaluate.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from tfdeblur.imageio import (
    DEFAULT_MAX_PIXELS, ImageError, SkipLog, find_images, one_line, output_folder_problem, read_rgb,
)

__all__ = [
    "EVAL_SIZE",
    "CONDITIONS",
    "PAPER_TABLE1",
    "EvaluationError",
    "EvalData",
    "wilson_interval",
    "mcnemar_exact",
    "mcnemar_test",
    "iou",
    "iou_matrix",
    "match_detections",
    "landmark_nme",
    "image_quality",
    "mean_ci95",
    "paired_difference",
    "load_imglab_xml",
    "match_pairs",
    "synthesize_blur",
    "load_data_dir",
    "load_pairs_dir",
    "load_ground_truth",
    "load_models",
    "deblur_images",
    "condition_metrics",
    "evaluate_models",
    "write_report",
    "evaluate_parser",
    "evaluate_main",
]

EVAL_SIZE = 256
IOU_THRESHOLD = 0.5
CONDITIONS = ("sharp", "blurred", "restored", "sharp_restored")
REPORT_ROWS = (("blurred", "Blurred"), ("restored", "Restored"), ("sharp_restored", "Sharp-restored"), ("sharp", "Sharp"))
# Fan & Luo, Table 1: MTCNN failure rates on LFW (mean confidence ~0.99 in every row).
PAPER_TABLE1 = {
    "failure_rate": {"blurred": 0.219, "restored_gan": 0.0736, "restored_lsgan": 0.0661,
                     "restored_wgan_gp": 0.0623, "sharp": 0.0323},
    "confidence_mean": 0.99,
}
EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2


class EvaluationError(Exception):
    """A user error (bad folder, bad model, unmatched pairs); str() is one line."""


# ---------------------------------------------------------------------------------- statistics


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    Under the null each discordant pair goes either way with probability 1/2, so the p-value is
    the two-sided binomial test of ``b`` successes in ``b + c`` trials (= ``min(1, 2 *
    Binom(b + c, 1/2).cdf(min(b, c)))``). No discordant pairs gives p = 1.
    """
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(min(1.0, binomtest(b, b + c, 0.5).pvalue))


def mcnemar_test(success_a, success_b) -> dict:
    """Paired comparison of two boolean outcome vectors: ``{"p", "b", "c", "n"}`` where ``b``
    counts pairs that only A got right and ``c`` those only B got right."""
    a = np.asarray(success_a, bool)
    b_ = np.asarray(success_b, bool)
    if a.shape != b_.shape:
        raise ValueError(f"outcome vectors differ in length: {a.shape} vs {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    return {"p": mcnemar_exact(b, c), "b": b, "c": c, "n": int(a.size)}


# ------------------------------------------------------------------------------------ geometry


def _boxes(x) -> np.ndarray:
    arr = np.asarray([] if x is None else x, np.float64)
    return arr.reshape(-1, 4)


def iou(box_a, box_b) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes (0 when disjoint or degenerate)."""
    return float(iou_matrix(_boxes(box_a), _boxes(box_b))[0, 0])


def iou_matrix(a, b) -> np.ndarray:
    """Pairwise IoU ``[len(a), len(b)]`` of two sets of ``[x1, y1, x2, y2]`` boxes."""
    a, b = _boxes(a), _boxes(b)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _greedy_match(pred_boxes, ref_boxes, thr, scores=None):
    """Pairs (pred index, ref index): predictions in descending score (else given) order each
    take the unmatched reference with the highest IoU >= thr (PASCAL VOC matching)."""
    pred, ref = _boxes(pred_boxes), _boxes(ref_boxes)
    if len(pred) == 0 or len(ref) == 0:
        return []
    order = np.arange(len(pred)) if scores is None else np.argsort(-np.asarray(scores, float), kind="stable")
    ious = iou_matrix(pred, ref)
    taken = np.zeros(len(ref), bool)
    pairs = []
    for i in order:
        cand = np.where(~taken & (ious[i] >= thr), ious[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= thr:
            taken[j] = True
            pairs.append((int(i), j))
    return pairs


def match_detections(pred_boxes, ref_boxes, thr: float = IOU_THRESHOLD, scores=None) -> tuple[int, int, int]:
    """Match predicted boxes to reference boxes at IoU >= ``thr``: ``(tp, fp, fn)``.

    Each reference box can be matched once; extra detections of the same face are false
    positives. Predictions are taken in descending ``scores`` order when given.
    """
    pairs = _greedy_match(pred_boxes, ref_boxes, thr, scores)
    tp = len(pairs)
    return tp, len(_boxes(pred_boxes)) - tp, len(_boxes(ref_boxes)) - tp


def landmark_nme(pred, ref) -> float | None:
    """Mean landmark distance normalised by the reference inter-ocular distance.

    ``pred`` and ``ref`` are ``[K, 2]`` (x, y) with the two eyes first. ``None`` when either is
    missing or the reference eyes coincide.
    """
    if pred is None or ref is None:
        return None
    p, r = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    if p.ndim != 2 or r.ndim != 2 or p.shape != r.shape or p.shape[0] < 2:
        return None
    iod = float(np.linalg.norm(r[0] - r[1]))
    if not math.isfinite(iod) or iod < 1e-6:
        return None
    return float(np.mean(np.linalg.norm(p - r, axis=1)) / iod)


# --------------------------------------------------------------------------------------- data


@dataclass
class EvalData:
    """Images to evaluate: ``sharp`` and ``blurred`` lists of RGB uint8 (same shapes pairwise)."""

    names: list
    sharp: list
    blurred: list
    gt_boxes: list | None = None  # per image [n, 4] xyxy, or None: use sharp detections
    source: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.names)


def load_imglab_xml(path) -> list[dict]:
    """Read a dlib imglab XML (``<image file=...><box top= left= width= height=/>``).

    Returns ``[{"path", "boxes": float32 [n, 4] as [x1, y1, x2, y2]}]`` in file order; image paths
    are resolved relative to the XML's folder. Boxes marked ``ignore='1'`` are dropped.
    """
    path = os.fspath(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise EvaluationError(f"{path}: not a readable imglab XML ({one_line(e)})") from None
    base = os.path.dirname(os.path.abspath(path))
    out = []
    for image in root.iter("image"):
        file = image.get("file")
        if not file:
            continue
        boxes = []
        for box in image.findall("box"):
            if box.get("ignore", "0") not in ("0", "", "false"):
                continue
            try:
                top, left = float(box.get("top")), float(box.get("left"))
                w, h = float(box.get("width")), float(box.get("height"))
            except (TypeError, ValueError):
                raise EvaluationError(f"{path}: box without numeric top/left/width/height in {file}") from None
            boxes.append([left, top, left + w, top + h])
        out.append({"path": os.path.join(base, file), "boxes": np.asarray(boxes, np.float32).reshape(-1, 4)})
    return out


def synthesize_blur(sharp_uint8: np.ndarray, seed: int = 0, preset: str = "eval", batch_size: int = 32) -> np.ndarray:
    """Blur ``[N, H, W, 3]`` uint8 faces with ``blur.indexed_bank(preset, N, seed)``: deterministic,
    and image ``i`` gets the same kernel whatever ``--limit`` is."""
    from tfdeblur import blur, data

    n = len(sharp_uint8)
    if n == 0:
        return np.zeros_like(sharp_uint8)
    kernels = blur.indexed_bank(preset, n, seed=seed)
    return data.make_eval_pairs(sharp_uint8, kernels, noise_sigma=0.0, seed=seed, batch_size=batch_size)


def _stem_key(rel: str) -> str:
    return os.path.splitext(rel.replace(os.sep, "/"))[0]


def match_pairs(pairs_dir, log: SkipLog | None = None) -> list[tuple[str, str, str]]:
    """``DIR/sharp/*`` and ``DIR/blurred/*`` matched by file stem (relative path without the
    extension): ``[(stem, sharp_path, blurred_path)]`` sorted by stem.

    Raises :class:`EvaluationError` for a missing folder, an empty one, a stem that is not unique
    within one side, or stems with no partner (naming a few).
    """
    pairs_dir = os.fspath(pairs_dir)
    if not os.path.isdir(pairs_dir):
        raise EvaluationError(f"--pairs-dir {pairs_dir!r}: no such folder")
    for side in ("sharp", "blurred"):
        if not os.path.isdir(os.path.join(pairs_dir, side)):
            raise EvaluationError(
                f"--pairs-dir {pairs_dir!r} has no {side}/ folder (expected sharp/ and blurred/ "
                "with matching file names, as written by `tfdeblur blur`)"
            )
    sides = {}
    for side in ("sharp", "blurred"):
        d = os.path.join(pairs_dir, side)
        found = {}
        for full, rel in find_images(d, log=log):
            key = _stem_key(rel)
            if key in found:
                raise EvaluationError(f"{side}/ has two images with the stem {key!r}: {found[key]} and {full}")
            found[key] = full
        if not found:
            raise EvaluationError(f"no images (.jpg/.png/.webp/.bmp) in {d!r}")
        sides[side] = found
    sharp, blurred = sides["sharp"], sides["blurred"]
    only_sharp = sorted(set(sharp) - set(blurred))
    only_blurred = sorted(set(blurred) - set(sharp))
    if only_sharp or only_blurred:
        parts = []
        for label, items in (("sharp/ only", only_sharp), ("blurred/ only", only_blurred)):
            if items:
                shown = ", ".join(items[:3]) + (f" (and {len(items) - 3} more)" if len(items) > 3 else "")
                parts.append(f"{label}: {shown}")
        n = len(only_sharp) + len(only_blurred)
        raise EvaluationError(f"{n} unmatched file stem{'s' if n > 1 else ''} in {pairs_dir!r}: " + "; ".join(parts))
    return [(k, sharp[k], blurred[k]) for k in sorted(sharp)]


def _read(path, size, log):
    try:  # size None: the image's own size, within the same cap as deblur's
        im = read_rgb(path, size, max_pixels=None if size else DEFAULT_MAX_PIXELS)
    except ImageError as e:
        log.skip(path, e)
        return None
    if min(im.shape[:2]) < 16:
        log.skip(path, f"image too small ({im.shape[1]}x{im.shape[0]})")
        return None
    return im


def load_data_dir(data_dir, limit: int | None = None, seed: int = 0, size: int = EVAL_SIZE,
                  log: SkipLog | None = None, split: str = "all") -> EvalData:
    """Sharp faces found recursively under ``data_dir`` (first ``limit`` readable ones in sorted
    order), resized to ``size``, blurred with the "eval" preset and ``seed``.

    ``split="val"`` / ``"train"`` keeps only the persons that training's default person split
    (``tfdeblur.data.split_by_person``) puts on that side, so a model is judged on people it never saw.
    """
    from tfdeblur.data import load_faces

    log = log if log is not None else SkipLog()
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise EvaluationError(f"--data-dir {data_dir!r}: no such folder")
    found = find_images(data_dir, log=log)
    if split != "all":
        from tfdeblur.config import DEFAULTS
        from tfdeblur.data import split_by_person

        train, val = split_by_person([p for p, _ in found], DEFAULTS["data"]["val_fraction"], DEFAULTS["data"]["split_seed"])
        keep = set(val if split == "val" else train)
        found = [(p, r) for p, r in found if p in keep]
    if not found:
        raise EvaluationError(f"no images (.jpg/.png/.webp/.bmp) found under {data_dir!r}")
    sharp, kept = load_faces([p for p, _ in found], size=size, log=log, limit=limit)
    if len(kept) == 0:
        raise EvaluationError(f"none of the {len(found)} images under {data_dir!r} could be read")
    blurred = synthesize_blur(sharp, seed=seed)
    rel = {p: r for p, r in found}
    return EvalData([_stem_key(rel[p]) for p in kept], list(sharp), list(blurred), None,
                    {"data_dir": data_dir, "split": split, "blur": {"preset": "eval", "seed": int(seed)}, "size": size})


def load_pairs_dir(pairs_dir, limit: int | None = None, size: int = EVAL_SIZE, log: SkipLog | None = None) -> EvalData:
    """Matched ``sharp/`` + ``blurred/`` pairs (see :func:`match_pairs`), resized to ``size``.
    A pair one of whose files cannot be read is skipped (logged)."""
    log = log if log is not None else SkipLog()
    pairs = match_pairs(pairs_dir, log)
    names, sharp, blurred = [], [], []
    for stem, sp, bp in pairs:
        if limit is not None and len(names) >= limit:
            break
        s = _read(sp, size, log)
        b = _read(bp, size, log) if s is not None else None
        if s is None or b is None:
            if s is not None:  # the blurred twin was bad: say the sharp one goes too
                log.skip(sp, "its blurred twin could not be read")
            continue
        names.append(stem)
        sharp.append(s)
        blurred.append(b)
    if not names:
        raise EvaluationError(f"no readable image pairs in {os.fspath(pairs_dir)!r}")
    return EvalData(names, sharp, blurred, None, {"pairs_dir": os.fspath(pairs_dir), "size": size})


def load_ground_truth(xml_path, limit: int | None = None, seed: int = 0, log: SkipLog | None = None) -> EvalData:
    """A hand-labelled dataset (dlib imglab XML, e.g. ``shared/data/multiface/testing.xml``).

    Images keep their own size (their boxes are in those pixels; group photos have small faces
    that a 256x256 squash would lose) and are blurred with the "eval" preset and ``seed``, one
    kernel per image. Recall and false positives are then scored against the labelled boxes.
    """
    log = log if log is not None else SkipLog()
    if not os.path.isfile(xml_path):
        raise EvaluationError(f"--ground-truth {xml_path!r}: no such file")
    entries = load_imglab_xml(xml_path)
    if not entries:
        raise EvaluationError(f"{xml_path!r} lists no images")
    names, sharp, boxes = [], [], []
    for e in entries:
        if limit is not None and len(names) >= limit:
            break
        im = _read(e["path"], None, log)
        if im is None:
            continue
        names.append(os.path.splitext(os.path.basename(e["path"]))[0])
        sharp.append(im)
        boxes.append(e["boxes"])
    if not names:
        raise EvaluationError(f"none of the images listed in {xml_path!r} could be read")
    from tfdeblur import blur, data

    kernels = blur.preset_bank("eval", len(sharp), seed=seed)
    blurred = [data.make_eval_pairs(im[None], kernels[i : i + 1], seed=seed)[0] for i, im in enumerate(sharp)]
    return EvalData(names, sharp, blurred, boxes,
                    {"ground_truth": os.fspath(xml_path), "blur": {"preset": "eval", "seed": int(seed)}, "size": None})


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


def _batches(images, batch_size):
    """Consecutive runs of same-shaped images, at most ``batch_size`` each: (start, stacked)."""
    i, n = 0, len(images)
    while i < n:
        j = i + 1
        while j < n and j - i < batch_size and images[j].shape == images[i].shape:
            j += 1
        yield i, np.stack(images[i:j])
        i = j


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
    for k, (_, batch) in enumerate(_batches(images, batch_size)):
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


def _detect(detector, images, batch_size, progress=None):
    faces = []
    seconds = 0.0
    for _, batch in _batches(images, batch_size):
        t = time.perf_counter()
        res = detector.detect(list(batch))
        seconds += time.perf_counter() - t
        faces.extend([sorted(r, key=lambda f: -f.confidence) for r in res])
        if progress is not None:
            progress(len(batch))
    return faces, seconds


def image_quality(images, references, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR (dB) and SSIM of uint8 ``images`` against ``references`` (``tf.image``)."""
    import tensorflow as tf

    psnr, ssim = [], []
    for start, batch in _batches(images, batch_size):
        ref = np.stack(references[start : start + len(batch)])
        a = tf.convert_to_tensor(batch, tf.float32)
        b = tf.convert_to_tensor(ref, tf.float32)
        psnr.append(tf.image.psnr(a, b, max_val=255.0).numpy())
        ssim.append(tf.image.ssim(a, b, max_val=255.0).numpy())
    return np.concatenate(psnr), np.concatenate(ssim)


# ------------------------------------------------------------------------------------ metrics


def mean_ci95(values):
    """Mean of per-image values and its 95% Student-t interval: ``(mean, [lo, hi])``.

    ``(None, None)`` when a value is not finite (PSNR of an unchanged image is infinite) or
    there are none; the interval is ``None`` for a single value.
    """
    from scipy import stats

    x = np.asarray(values, np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        return None, None
    mean = float(x.mean())
    if x.size < 2:
        return mean, None
    sem = float(stats.sem(x))
    if sem == 0.0:
        return mean, [mean, mean]
    lo, hi = stats.t.interval(0.95, x.size - 1, loc=mean, scale=sem)
    return mean, [float(lo), float(hi)]


def paired_difference(a, b) -> dict:
    """Per-image ``b - a`` (e.g. restored minus blurred PSNR): mean, 95% interval, n."""
    mean, ci = mean_ci95(np.asarray(b, np.float64) - np.asarray(a, np.float64))
    return {"mean": mean, "ci95": ci, "n": int(np.size(a))}


def _references(sharp_faces, gt_boxes):
    """Per image: (reference boxes, landmark-reference faces)."""
    refs = []
    for i, faces in enumerate(sharp_faces):
        if gt_boxes is not None:
            boxes = _boxes(gt_boxes[i])
            pairs = _greedy_match([f.box for f in faces], boxes, IOU_THRESHOLD, [f.confidence for f in faces])
            lm_refs = [faces[p] for p, _ in pairs]
        else:
            best = faces[:1]  # faces are sorted best first
            boxes = _boxes([f.box for f in best])
            lm_refs = best
        refs.append((boxes, lm_refs))
    return refs


def _finite_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def condition_metrics(faces, references, is_reference: bool = False, quality=None) -> dict:
    """Metrics of one condition for one detector.

    ``faces``: per image, detections sorted best first; ``references``: per image ``(ref_boxes,
    ref_faces)`` from :func:`_references`; ``quality``: ``(psnr, ssim)`` arrays or None.
    """
    n = len(faces)
    found = np.array([len(f) > 0 for f in faces], bool)
    failures = int(n - found.sum())
    lo, hi = wilson_interval(failures, n)
    conf = [f[0].confidence for f in faces if f]
    tp = fp = n_ref = 0
    nmes = []
    for dets, (ref_boxes, lm_refs) in zip(faces, references):
        boxes = [d.box for d in dets]
        t, f, _ = match_detections(boxes, ref_boxes, IOU_THRESHOLD, [d.confidence for d in dets])
        tp, fp, n_ref = tp + t, fp + f, n_ref + len(ref_boxes)
        if is_reference or not dets:
            continue
        for ref in lm_refs:
            if ref.landmarks is None:
                continue
            ious = iou_matrix([ref.box], boxes)[0]
            j = int(np.argmax(ious))
            if ious[j] >= IOU_THRESHOLD:
                e = landmark_nme(dets[j].landmarks, ref.landmarks)
                if e is not None:
                    nmes.append(e)
    out = {
        "n": n,
        "failures": failures,
        "failure_rate": failures / n if n else None,
        "failure_rate_ci95": [lo, hi],
        "confidence_mean": float(np.mean(conf)) if conf else None,
        "recall": tp / n_ref if n_ref else None,
        "false_positives": int(fp),
        "true_positives": int(tp),
        "n_reference_boxes": int(n_ref),
        "landmark_nme": float(np.mean(nmes)) if nmes else None,
        "landmark_nme_n": len(nmes),
        "psnr": None,
        "psnr_ci95": None,
        "ssim": None,
        "ssim_ci95": None,
    }
    if quality is not None:
        out["psnr"] = _finite_or_none(np.mean(quality[0]))
        out["ssim"] = _finite_or_none(np.mean(quality[1]))
        out["psnr_ci95"] = mean_ci95(quality[0])[1]
        out["ssim_ci95"] = mean_ci95(quality[1])[1]
    return out


_MTCNN_CACHE: dict = {}


def _progbar(total, verbose):
    if not verbose:
        return None, (lambda k: None)
    import keras

    bar = keras.utils.Progbar(total, unit_name="image", verbose=1)
    state = {"done": 0}

    def step(k):
        state["done"] += k
        bar.update(min(state["done"], total))

    return bar, step


def evaluate_models(models: dict, data: EvalData, detector=None, independent="blazeface", batch_size: int = 16,
                    verbose: int = 1, details: dict | None = None) -> dict:
    """Run the whole evaluation; returns the metrics dictionary written to ``metrics.json``.

    ``models``: ``{name: generator}`` (see :func:`load_models`). ``detector``: an MTCNN-like
    object with ``detect`` (default: :class:`tfdeblur.detectors.MTCNNDetector`). ``independent``:
    a detector object, a name for :func:`tfdeblur.independent_detector.get`, or None to skip it.
    ``details``, when given, is filled with the images and detections (for figures).
    """
    from tfdeblur.detectors import MTCNNDetector

    if not models:
        raise EvaluationError("no model to evaluate")
    n = len(data)
    if n == 0:
        raise EvaluationError("no images to evaluate")
    if detector is None:  # one MTCNN per process and batch size: building it costs seconds
        if batch_size not in _MTCNN_CACHE:
            _MTCNN_CACHE[batch_size] = MTCNNDetector(batch_size=batch_size)
        detector = _MTCNN_CACHE[batch_size]
    independent_error = None
    if isinstance(independent, str):
        from tfdeblur import independent_detector as ind

        try:
            independent = ind.get(independent, batch_size=batch_size)
        except ind.DetectorUnavailable as e:
            independent_error = str(e)
            print(f"warning: independent detector unavailable: {e}", file=sys.stderr)
            independent = None
    detectors = {"mtcnn": detector}
    if independent is not None:
        detectors["independent"] = independent

    total = n * len(detectors) * (2 + 2 * len(models)) + n * 2 * len(models)
    _, step = _progbar(total, verbose)

    sharp, blurred = data.sharp, data.blurred
    det_time = {k: 0.0 for k in detectors}
    det_count = {k: 0 for k in detectors}
    faces = {k: {} for k in detectors}  # detector -> condition (model-qualified) -> faces

    def detect(key, cond, images):
        f, s = _detect(detectors[key], images, batch_size, step)
        det_time[key] += s
        det_count[key] += len(images)
        faces[key][cond] = f
        return f

    for key in detectors:
        detect(key, "sharp", sharp)
        detect(key, "blurred", blurred)
    refs = {k: _references(faces[k]["sharp"], data.gt_boxes) for k in detectors}
    q_blurred = image_quality(blurred, sharp, batch_size)

    per_model = {}
    restored_by_model = {}
    psnr_by_model = {}  # restored PSNR per image, to compare models pairwise
    for name, model in models.items():
        restored, fps_a = deblur_images(model, blurred, batch_size, step)
        sharp_restored, fps_b = deblur_images(model, sharp, batch_size, step)
        restored_by_model[name] = (restored, sharp_restored)
        quality = {"sharp": None, "blurred": q_blurred, "restored": image_quality(restored, sharp, batch_size),
                   "sharp_restored": image_quality(sharp_restored, sharp, batch_size)}
        for key in detectors:
            detect(key, f"restored@{name}", restored)
            detect(key, f"sharp_restored@{name}", sharp_restored)
        result = {}
        for key, label in (("mtcnn", "conditions"), ("independent", "independent")):
            if key not in detectors:
                result[label] = None
                continue
            f = faces[key]
            cond_faces = {"sharp": f["sharp"], "blurred": f["blurred"], "restored": f[f"restored@{name}"],
                          "sharp_restored": f[f"sharp_restored@{name}"]}
            result[label] = {
                c: condition_metrics(cond_faces[c], refs[key], is_reference=(c == "sharp"), quality=quality[c])
                for c in CONDITIONS
            }
        success = {k: {c: np.array([len(x) > 0 for x in faces[k][c]]) for c in faces[k]} for k in detectors}
        sm = success["mtcnn"]
        tests = {"mtcnn_blurred_vs_restored": mcnemar_test(sm["blurred"], sm[f"restored@{name}"]),
                 "mtcnn_sharp_vs_sharp_restored": mcnemar_test(sm["sharp"], sm[f"sharp_restored@{name}"])}
        if "independent" in detectors:
            tests["independent_blurred_vs_restored"] = mcnemar_test(
                success["independent"]["blurred"], success["independent"][f"restored@{name}"])
        fps = len(blurred) * 2 / (len(blurred) / fps_a + len(sharp) / fps_b) if fps_a > 0 and fps_b > 0 else None
        per_model[name] = {**result, "mcnemar_p": tests["mtcnn_blurred_vs_restored"]["p"], "mcnemar": tests,
                           "psnr_gain": paired_difference(q_blurred[0], quality["restored"][0]),
                           "deblur_fps": _finite_or_none(fps)}
        psnr_by_model[name] = quality["restored"][0]

    success_m = {c: np.array([len(x) > 0 for x in faces["mtcnn"][c]]) for c in faces["mtcnn"]}
    between = {}
    names = list(models)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            between[f"{a} vs {b}"] = {
                "restored": mcnemar_test(success_m[f"restored@{a}"], success_m[f"restored@{b}"]),
                "sharp_restored": mcnemar_test(success_m[f"sharp_restored@{a}"], success_m[f"sharp_restored@{b}"]),
                "restored_psnr_difference": paired_difference(psnr_by_model[a], psnr_by_model[b]),  # B - A
            }
    first = per_model[names[0]]
    ind_name = getattr(independent, "name", None) if independent is not None else None
    metrics = {
        "n": n,
        "detector": "mtcnn",
        "independent_detector": ind_name,
        "conditions": first["conditions"],
        "independent": first["independent"],
        "mcnemar_p": first["mcnemar_p"],
        "mcnemar": first["mcnemar"],
        "psnr_gain": first["psnr_gain"],
        "deblur_fps": first["deblur_fps"],
        "detector_fps": det_count["mtcnn"] / det_time["mtcnn"] if det_time["mtcnn"] > 0 else None,
        "independent_detector_fps": (det_count["independent"] / det_time["independent"]
                                     if "independent" in det_time and det_time["independent"] > 0 else None),
        "models": names,
        "per_model": per_model,
        "mcnemar_models": between,
        "iou_threshold": IOU_THRESHOLD,
        "reference": "ground_truth_boxes" if data.gt_boxes is not None else "sharp_best_detection",
        "source": data.source,
        "paper_table1": PAPER_TABLE1,
    }
    if independent_error:
        metrics["independent_error"] = independent_error
    if details is not None:
        details.update({
            "names": data.names, "sharp": sharp, "blurred": blurred, "restored": restored_by_model,
            "faces": faces, "gt_boxes": data.gt_boxes,
        })
    return metrics


# ------------------------------------------------------------------------------------- report


def _pct(x):
    return "–" if x is None else f"{100 * x:.2f}%"


def _interval(ci, fmt):
    return "" if ci is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _num_ci(x, ci, fmt):
    return "–" if x is None else f"{x:{fmt}} {_interval(ci, fmt)}".rstrip()


def _ci(c):
    if c is None or c.get("failure_rate") is None:
        return "–"
    lo, hi = c["failure_rate_ci95"]
    return f"{100 * c['failure_rate']:.2f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def _num(x, fmt):
    return "–" if x is None else format(x, fmt)


def _p(p):
    return "–" if p is None else (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")


def _table(m: dict, independent_name) -> list[str]:
    ind = m.get("independent") or {}
    head = ("| Condition | Failure rate [95% CI] | Mean confidence | Recall | FP | Landmark NME | PSNR (dB) | SSIM "
            f"| {independent_name or 'Independent'} failure rate [95% CI] |")
    lines = [head, "|" + "---|" * 9]
    for key, label in REPORT_ROWS:
        c = m["conditions"][key]
        lines.append(
            f"| {label} | {_ci(c)} | {_num(c['confidence_mean'], '.4f')} | {_num(c['recall'], '.3f')} "
            f"| {c['false_positives']} | {_num(c['landmark_nme'], '.4f')} | {_num_ci(c['psnr'], c.get('psnr_ci95'), '.2f')} "
            f"| {_num_ci(c['ssim'], c.get('ssim_ci95'), '.3f')} | {_ci(ind.get(key))} |"
        )
    return lines


def _verdict(m: dict, n: int, independent_name) -> str:
    c = m["conditions"]
    b, r, s = c["blurred"]["failure_rate"], c["restored"]["failure_rate"], c["sharp"]["failure_rate"]
    p = m["mcnemar_p"]
    t = m["mcnemar"]["mtcnn_blurred_vs_restored"]
    direction = "fewer" if r < b else ("more" if r > b else "as many")
    sig = "significant" if p < 0.05 else "not significant"
    line = (f"On {n} images MTCNN missed {_pct(b)} of blurred faces and {_pct(r)} after restoration ({direction} misses; "
            f"{t['c']} faces found only after restoration, {t['b']} only before; McNemar exact p = {_p(p)}, "
            f"{sig} at the 5% level); the sharp originals are missed {_pct(s)} of the time")
    ind = m.get("independent")
    if ind:
        ti = m["mcnemar"].get("independent_blurred_vs_restored", {})
        line += (f". The independent detector ({independent_name}) goes from {_pct(ind['blurred']['failure_rate'])} "
                 f"to {_pct(ind['restored']['failure_rate'])} (p = {_p(ti.get('p'))})")
    sr = c["sharp_restored"]["failure_rate"]
    tsr = m["mcnemar"]["mtcnn_sharp_vs_sharp_restored"]
    line += (f"; deblurring sharp faces gives {_pct(sr)} misses vs {_pct(s)} "
             f"(p = {_p(tsr['p'])}, {'a significant change' if tsr['p'] < 0.05 else 'no significant harm'}).")
    gain = m.get("psnr_gain") or {}
    if gain.get("mean") is not None:
        line += (f" PSNR changes by {gain['mean']:+.2f} dB {_interval(gain.get('ci95'), '+.2f')} over blurred "
                 f"(per-image paired mean, 95% t-interval, n = {gain['n']}).")
    return line


def _paper_lines() -> list[str]:
    fr = PAPER_TABLE1["failure_rate"]
    return [
        "| Condition | Failure rate | Mean confidence |",
        "|---|---|---|",
        f"| Blurred | {_pct(fr['blurred'])} | ~0.99 |",
        f"| Restored (GAN) | {_pct(fr['restored_gan'])} | ~0.99 |",
        f"| Restored (LSGAN) | {_pct(fr['restored_lsgan'])} | ~0.99 |",
        f"| Restored (WGAN-GP) | {_pct(fr['restored_wgan_gp'])} | ~0.99 |",
        "| Sharp-restored | not reported | – |",
        f"| Sharp | {_pct(fr['sharp'])} | ~0.99 |",
    ]


def _report_md(metrics: dict, figures: list[str]) -> str:
    n = metrics["n"]
    ind = metrics.get("independent_detector")
    src = metrics.get("source", {})
    if "data_dir" in src:
        origin = f"sharp faces from `{src['data_dir']}`, blurred with the \"eval\" preset (seed {src['blur']['seed']})"
    elif "pairs_dir" in src:
        origin = f"sharp/blurred pairs from `{src['pairs_dir']}`"
    elif "ground_truth" in src:
        origin = (f"hand-labelled images from `{src['ground_truth']}`, blurred with the \"eval\" preset "
                  f"(seed {src['blur']['seed']})")
    else:
        origin = "supplied images"
    ref = ("hand-labelled boxes" if metrics.get("reference") == "ground_truth_boxes"
           else "each detector's best detection on the sharp image")
    lines = [
        "# Face-detection evaluation",
        "",
        f"{n} images: {origin}. Detector: MTCNN; independent detector: {ind or 'unavailable'}. "
        f"Recall / FP at IoU >= {metrics.get('iou_threshold', 0.5)} against {ref}; landmark NME against the same "
        "detector's landmarks on the sharp image, per inter-ocular distance; PSNR/SSIM against the sharp image.",
        "",
    ]
    for name in metrics["models"]:
        m = metrics["per_model"][name]
        title = "## Results" if len(metrics["models"]) == 1 else f"## Model `{name}`"
        precision = f" (computing in {metrics['precision']})" if metrics.get("precision", "float32") != "float32" else ""
        lines += [title, "", f"Model: `{name}`{precision}; deblurring {_num(m['deblur_fps'], '.1f')} img/s, "
                  f"MTCNN {_num(metrics['detector_fps'], '.1f')} img/s, {ind or 'independent'} "
                  f"{_num(metrics.get('independent_detector_fps'), '.1f')} img/s on this machine.", ""]
        lines += _table(m, ind) + ["", "**What this means:** " + _verdict(m, n, ind), ""]
    if metrics.get("mcnemar_models"):
        lines += ["## Between models (MTCNN detection success, McNemar exact; restored PSNR, paired)", "",
                  "| Models | Restored: only A / only B | p | Sharp-restored: only A / only B | p "
                  "| Restored PSNR, B − A (dB) [95% CI] |",
                  "|---|---|---|---|---|---|"]
        for pair, t in metrics["mcnemar_models"].items():
            r, s = t["restored"], t["sharp_restored"]
            d = t.get("restored_psnr_difference") or {}
            diff = _num_ci(d.get("mean"), d.get("ci95"), "+.2f")
            lines.append(f"| {pair} | {r['b']} / {r['c']} | {_p(r['p'])} | {s['b']} / {s['c']} | {_p(s['p'])} | {diff} |")
        lines.append("")
    lines += ["## The paper's numbers (Fan & Luo, Table 1; MTCNN on LFW)", ""] + _paper_lines() + [
        "",
        "The paper's blur, image set and MTCNN build differ from ours, so compare the pattern (blurred >> restored "
        ">= sharp) rather than the digits.",
        "",
    ]
    if figures:
        lines += ["## Figures", ""] + [f"![{os.path.splitext(f)[0]}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return _finite_or_none(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return _finite_or_none(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def _failure_figure(metrics, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("blurred", "Blurred", None), ("sharp", "Sharp", None)]
    for name in metrics["models"]:
        suffix = "" if len(metrics["models"]) == 1 else f"\n{os.path.basename(name)}"
        groups.insert(-1, ("restored", "Restored" + suffix, name))
        groups.insert(-1, ("sharp_restored", "Sharp-restored" + suffix, name))
    dets = [("conditions", "MTCNN")]
    if metrics.get("independent"):
        dets.append(("independent", metrics.get("independent_detector") or "independent"))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups), 4.2))
    width = 0.8 / len(dets)
    for d, (key, label) in enumerate(dets):
        xs, ys, lo, hi = [], [], [], []
        for g, (cond, _, name) in enumerate(groups):
            m = metrics["per_model"][name or metrics["models"][0]][key][cond]
            xs.append(g + (d - (len(dets) - 1) / 2) * width)
            ys.append(100 * m["failure_rate"])
            lo.append(100 * (m["failure_rate"] - m["failure_rate_ci95"][0]))
            hi.append(100 * (m["failure_rate_ci95"][1] - m["failure_rate"]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=label)
    paper = PAPER_TABLE1["failure_rate"]
    for g, (cond, _, _) in enumerate(groups):
        if cond in paper:
            ax.plot([g - 0.4, g + 0.4], [100 * paper[cond]] * 2, "k--", lw=1,
                    label="paper (MTCNN)" if cond == "blurred" else None)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[1] for g in groups], fontsize=8)
    ax.set_ylabel("failure rate (%) with 95% Wilson interval")
    ax.set_title(f"Face-detection failures, n = {metrics['n']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pick_examples(ok_b, ok_r, k=8):
    """Indices for the example grid, taken in turn from: fixed by restoration, missed in both,
    broken by restoration, found in both (so failures show, not only successes)."""
    cats = [list(np.where(~ok_b & ok_r)[0]), list(np.where(~ok_b & ~ok_r)[0]),
            list(np.where(ok_b & ~ok_r)[0]), list(np.where(ok_b & ok_r)[0])]
    picked = []
    while len(picked) < k and any(cats):
        for cat in cats:
            if cat and len(picked) < k:
                picked.append(int(cat.pop(0)))
    return sorted(picked)


def _cell(image, faces, gt_boxes, size):
    """One grid cell: the image fitted into ``size`` x ``size`` with boxes and landmarks drawn."""
    import cv2

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    im = image if (nh, nw) == (h, w) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    cell = np.full((size, size, 3), 255, np.uint8)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    cell[oy : oy + nh, ox : ox + nw] = im

    def pt(x, y):
        return int(round(ox + x * scale)), int(round(oy + y * scale))

    for b in [] if gt_boxes is None else gt_boxes:
        cv2.rectangle(cell, pt(b[0], b[1]), pt(b[2], b[3]), (255, 220, 0), 1)
    for j, f in enumerate(faces):
        cv2.rectangle(cell, pt(f.box[0], f.box[1]), pt(f.box[2], f.box[3]), (0, 230, 0) if j == 0 else (0, 200, 255), 2)
        if f.landmarks is not None:
            for x, y in f.landmarks:
                cv2.circle(cell, pt(x, y), 2, (255, 0, 0), -1)
    return cell


def _examples_figure(details, model_name, path, k=8, size=256):
    """Rows of blurred | restored | sharp with MTCNN boxes (green: best, cyan: others), landmarks
    (red) and labelled boxes (yellow, ground-truth mode). Composed as one image, then drawn with
    matplotlib at 1:1 scale (no resampling), which keeps it fast on a busy CPU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faces = details["faces"]["mtcnn"]
    restored = details["restored"][model_name][0]
    ok_b = np.array([len(f) > 0 for f in faces["blurred"]])
    ok_r = np.array([len(f) > 0 for f in faces[f"restored@{model_name}"]])
    rows = _pick_examples(ok_b, ok_r, k)
    if not rows:
        return False
    cols = [("Blurred", details["blurred"], faces["blurred"]),
            ("Restored", restored, faces[f"restored@{model_name}"]),
            ("Sharp", details["sharp"], faces["sharp"])]
    band, gap, top = 18, 4, 24
    width = 3 * size + 2 * gap
    height = top + len(rows) * (band + size + gap)
    canvas = np.full((height, width, 3), 255, np.uint8)
    labels = []
    gt = details.get("gt_boxes")
    for r, i in enumerate(rows):
        y0 = top + r * (band + size + gap)
        for c, (title, images, dets) in enumerate(cols):
            x0 = c * (size + gap)
            canvas[y0 + band : y0 + band + size, x0 : x0 + size] = _cell(
                images[i], dets[i], None if gt is None else gt[i], size)
            text = f"{title}: {dets[i][0].confidence:.3f}" if dets[i] else f"{title}: NO FACE"
            if c == 0:
                text += f"  {os.path.basename(str(details['names'][i]))[:22]}"
            labels.append((x0 + 2, y0 + band - 4, text, "black" if dets[i] else "red"))
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for x, y, text, color in labels:
        ax.text(x, y, text, fontsize=7.5, color=color, va="bottom", ha="left")
    ax.text(width / 2, top - 6, f"MTCNN on blurred | restored ({os.path.basename(model_name)}) | sharp",
            fontsize=9, ha="center", va="bottom")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return True


def write_report(metrics: dict, output_dir, details: dict | None = None) -> list[str]:
    """Write ``metrics.json``, ``report.md`` and the PNG figures; returns the written paths."""
    os.makedirs(output_dir, exist_ok=True)
    written = []
    figures = []
    fig_path = os.path.join(output_dir, "failure_rates.png")
    _failure_figure(metrics, fig_path)
    figures.append("failure_rates.png")
    if details is not None:
        stems = [_slug(n, with_folder=False) for n in metrics["models"]]
        for name in metrics["models"]:
            # runs/a/generator.keras and runs/b/generator.keras must not share a figure
            slug = _slug(name, with_folder=stems.count(_slug(name, with_folder=False)) > 1)
            fname = "examples.png" if name == metrics["models"][0] else f"examples_{slug}.png"
            if _examples_figure(details, name, os.path.join(output_dir, fname)):
                figures.append(fname)
    path = os.path.join(output_dir, "metrics.json")
    with open(path + ".tmp", "w") as f:
        json.dump(_clean(metrics), f, indent=2, default=_json_default, allow_nan=False)
    os.replace(path + ".tmp", path)
    written.append(path)
    path = os.path.join(output_dir, "report.md")
    with open(path, "w") as f:
        f.write(_report_md(metrics, figures))
    written.append(path)
    written += [os.path.join(output_dir, f) for f in figures]
    return written


def _slug(name: str, with_folder: bool = True) -> str:
    stem = os.path.splitext(os.path.basename(name))[0] or "model"
    parent = os.path.basename(os.path.dirname(os.path.abspath(name))) if with_folder else ""
    base = f"{parent}_{stem}" if parent else stem
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in base)


# ---------------------------------------------------------------------------------------- CLI


def evaluate_parser() -> argparse.ArgumentParser:
    from tfdeblur.cli import _OneLineParser
    from tfdeblur.models import PRECISIONS

    p = _OneLineParser(
        prog="evaluate.py",
        description="Face-detection evaluation of deblurring generators (MTCNN + an independent detector).",
    )
    p.add_argument("--model", action="extend", nargs="+", default=None, metavar="PATH",
                   help="generator .keras file(s); default: the shipped model. Two or more are compared.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="sharp face images (searched recursively); blur is synthesised "
                     "with the 'eval' preset and --seed")
    src.add_argument("--pairs-dir", help="folder with sharp/ and blurred/ images matched by file stem "
                     "(as written by `tfdeblur blur`)")
    src.add_argument("--ground-truth", metavar="XML", help="dlib imglab XML with hand-labelled face boxes "
                     "(e.g. shared/data/multiface/testing.xml); images keep their size")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="with --data-dir: only the validation (or training) persons of training's person split")
    p.add_argument("--limit", type=int, default=None, help="first N images in sorted order")
    p.add_argument("--seed", type=int, default=0, help="blur seed for --data-dir / --ground-truth (default 0)")
    p.add_argument("--output-dir", default="eval_out",
                   help="where metrics.json, report.md and figures go (default eval_out/)")
    p.add_argument("--batch-size", type=int, default=16, help="images per deblurring / detection batch (default 16)")
    p.add_argument("--independent", default=None,
                   help="independent detector: blazeface, blazeface-full, haar, or none (default: blazeface for "
                   "face crops, blazeface-full with --ground-truth, whose group photos have small faces)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="generators compute in this precision (default float32; bfloat16: see README, Performance)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def evaluate_main(argv=None) -> int:
    """``python evaluate.py ...``: 0 all done, 1 some inputs skipped, 2 usage error or nothing done."""
    parser = evaluate_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its one-line usage error
        return EXIT_OK if e.code == 0 else EXIT_FAILED
    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be a positive integer")
    if args.batch_size < 1:
        return _fail("--batch-size must be a positive integer")
    from tfdeblur.independent_detector import NAMES

    if args.independent is None:
        args.independent = "blazeface-full" if args.ground_truth else "blazeface"
    if args.independent.lower() != "none" and args.independent not in NAMES:
        return _fail(f"--independent {args.independent!r}: choose from {', '.join(NAMES)}, none")
    problem = output_folder_problem(args.output_dir, create=False)
    if problem:  # before minutes of evaluation, not after
        return _fail(f"cannot write results to {args.output_dir!r}: {problem}")
    log = SkipLog()
    try:
        models = load_models(args.model, args.precision)
        if args.data_dir is not None:
            data = load_data_dir(args.data_dir, args.limit, args.seed, log=log, split=args.split)
        elif args.pairs_dir is not None:
            data = load_pairs_dir(args.pairs_dir, args.limit, log=log)
        else:
            data = load_ground_truth(args.ground_truth, args.limit, args.seed, log=log)
        if len(log):
            print(f"skipped {len(log)} unreadable input(s); evaluating {len(data)} image(s)", file=sys.stderr, flush=True)
        independent = None if args.independent.lower() == "none" else args.independent
        details = {}
        metrics = evaluate_models(models, data, independent=independent, batch_size=args.batch_size,
                                  verbose=0 if args.quiet else 1, details=details)
        metrics["precision"] = args.precision
        metrics["skipped"] = [{"path": p, "reason": r} for p, r in log.skipped]
        written = write_report(metrics, args.output_dir, details)
    except EvaluationError as e:
        if len(log):
            print(f"skipped {len(log)} input(s)", file=sys.stderr)
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write results to {args.output_dir!r}: {e.strerror or e}")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    c = metrics["conditions"]
    print(
        f"\nn={metrics['n']}  MTCNN failure rate: blurred {_pct(c['blurred']['failure_rate'])}, "
        f"restored {_pct(c['restored']['failure_rate'])}, sharp {_pct(c['sharp']['failure_rate'])} "
        f"(McNemar p = {_p(metrics['mcnemar_p'])}); wrote {', '.join(written)}"
        + (f"; {len(log)} input(s) skipped" if len(log) else ""),  # the count again, at the end
        flush=True,
    )
    return EXIT_PARTIAL if len(log) else EXIT_OK


def _fail(msg: str, code: int = EXIT_FAILED) -> int:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code


