"""Box geometry and matching: IoU, greedy (PASCAL VOC) matching of detections to reference boxes,
landmark error, and the reference each image is scored against."""

from __future__ import annotations

import math

import numpy as np

from tfdeblur.evaluation.common import IOU_THRESHOLD

__all__ = ["iou", "iou_matrix", "greedy_match", "match_detections", "landmark_nme", "detection_references"]


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


def greedy_match(pred_boxes, ref_boxes, thr, scores=None):
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
    pairs = greedy_match(pred_boxes, ref_boxes, thr, scores)
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


def detection_references(sharp_faces, gt_boxes):
    """Per image: (reference boxes, landmark-reference faces)."""
    refs = []
    for i, faces in enumerate(sharp_faces):
        if gt_boxes is not None:
            boxes = _boxes(gt_boxes[i])
            pairs = greedy_match([f.box for f in faces], boxes, IOU_THRESHOLD, [f.confidence for f in faces])
            lm_refs = [faces[p] for p, _ in pairs]
        else:
            best = faces[:1]  # faces are sorted best first
            boxes = _boxes([f.box for f in best])
            lm_refs = best
        refs.append((boxes, lm_refs))
    return refs
