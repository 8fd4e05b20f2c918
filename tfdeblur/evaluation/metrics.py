"""Per-condition measures: detection failures, confidence, recall / false positives, landmark
error, and image quality (PSNR / SSIM with ``tf.image``)."""

from __future__ import annotations

import numpy as np

from tfdeblur.evaluation.common import IOU_THRESHOLD, finite_or_none
from tfdeblur.evaluation.matching import iou_matrix, landmark_nme, match_detections
from tfdeblur.evaluation.statistics import mean_ci95, wilson_interval

__all__ = ["image_quality", "condition_metrics", "same_shape_batches"]


def same_shape_batches(images, batch_size):
    """Consecutive runs of same-shaped images, at most ``batch_size`` each: (start, stacked)."""
    i, n = 0, len(images)
    while i < n:
        j = i + 1
        while j < n and j - i < batch_size and images[j].shape == images[i].shape:
            j += 1
        yield i, np.stack(images[i:j])
        i = j


def image_quality(images, references, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR (dB) and SSIM of uint8 ``images`` against ``references`` (``tf.image``)."""
    import tensorflow as tf

    psnr, ssim = [], []
    for start, batch in same_shape_batches(images, batch_size):
        ref = np.stack(references[start : start + len(batch)])
        a = tf.convert_to_tensor(batch, tf.float32)
        b = tf.convert_to_tensor(ref, tf.float32)
        psnr.append(tf.image.psnr(a, b, max_val=255.0).numpy())
        ssim.append(tf.image.ssim(a, b, max_val=255.0).numpy())
    return np.concatenate(psnr), np.concatenate(ssim)


def condition_metrics(faces, references, is_reference: bool = False, quality=None) -> dict:
    """Metrics of one condition for one detector.

    ``faces``: per image, detections sorted best first; ``references``: per image ``(ref_boxes,
    ref_faces)`` from :func:`~tfdeblur.evaluation.matching.detection_references`; ``quality``: ``(psnr, ssim)`` arrays or None.
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
        out["psnr"] = finite_or_none(np.mean(quality[0]))
        out["ssim"] = finite_or_none(np.mean(quality[1]))
        out["psnr_ci95"] = mean_ci95(quality[0])[1]
        out["ssim_ci95"] = mean_ci95(quality[1])[1]
    return out
