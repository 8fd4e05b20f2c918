"""Scene evaluation: does restoration help a detector find the faces of whole camera frames?

Frames (``tfdeblur.scenes``) carry labelled face boxes. Each frame is blurred whole by one shake in
frame pixels, then four conditions are detected: ``blurred``, ``restored`` (the whole frame through
``tfdeblur.deblur_frame``, as ``tfdeblur deblur`` runs it), ``restored_faces`` (``tfdeblur.deblur_faces``) and ``sharp``. A labelled face
counts as found when a detection overlaps it at IoU >= 0.5 (PASCAL VOC matching). Measures are per
face-height bin, because the gain depends on the face size:

* ``per_size[bin]``: ``faces``, ``recall[condition]`` and ``gap_closed[condition]`` =
  (recall - blurred) / (sharp - blurred), None when sharp does not beat blurred in that bin;
* ``frames_worse[condition]``: frames in which the condition finds fewer labelled faces than the
  blurred frame (restoration that loses faces).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["SIZE_BINS", "CONDITIONS", "bin_label", "found_references", "per_size_metrics", "frames_worse",
           "evaluate_scenes"]

SIZE_BINS = ((0, 32), (32, 64), (64, 128), (128, 256), (256, None))  # face-box height, px
CONDITIONS = ("blurred", "restored", "restored_faces", "sharp")
IOU_THRESHOLD = 0.5


def bin_label(lo, hi) -> str:
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def found_references(pred_boxes, ref_boxes, scores=None, thr: float = IOU_THRESHOLD) -> np.ndarray:
    """Boolean per reference box: matched by a prediction at IoU >= ``thr`` (the evaluation's
    PASCAL VOC matching, :func:`tfdeblur.evaluation.matching.greedy_match`)."""
    from tfdeblur.evaluation.matching import greedy_match

    found = np.zeros(len(np.asarray(ref_boxes, np.float64).reshape(-1, 4)), bool)
    for _, j in greedy_match(pred_boxes, ref_boxes, thr, scores):
        found[j] = True
    return found


def _gap(recall, c):
    lo, hi = recall.get("blurred"), recall.get("sharp")
    if recall.get(c) is None or lo is None or hi is None or hi - lo <= 0:
        return None
    return (recall[c] - lo) / (hi - lo)


def _flat(per_frame, dtype) -> np.ndarray:
    """Per-frame arrays (one value per labelled face) as one array over all faces."""
    return np.concatenate([np.asarray(x, dtype).reshape(-1) for x in per_frame]) if per_frame else np.zeros(0, dtype)


def per_size_metrics(found: dict, heights: list, bins=SIZE_BINS) -> dict:
    """``found``: condition -> per frame a boolean array over its labelled faces; ``heights``: per
    frame the faces' box heights. Returns the ``per_size`` dictionary (every bin, empty ones with
    0 faces and None recalls)."""
    h = _flat(heights, float)
    flags = {c: _flat(v, bool) for c, v in found.items()}
    for c, f in flags.items():
        if len(f) != len(h):
            raise ValueError(f"{c}: {len(f)} face flags for {len(h)} face heights")
    out = {}
    for lo, hi in bins:
        sel = (h >= lo) & (h < (np.inf if hi is None else hi))
        n = int(sel.sum())
        recall = {c: (float(f[sel].mean()) if n else None) for c, f in flags.items()}
        out[bin_label(lo, hi)] = {"faces": n, "recall": recall,
                                  "gap_closed": {c: _gap(recall, c) for c in flags if c not in ("blurred", "sharp")}}
    return out


def paired_per_size(found_a, found_b, heights, bins=SIZE_BINS) -> dict:
    """Two runs' flags for the same labelled faces (per frame a boolean array each), compared face
    by face per size bin: ``{bin: {"faces", "only_a", "only_b", "p"}}`` with McNemar's exact test
    on the faces only one of them found (p None for an empty bin)."""
    from tfdeblur.evaluation.statistics import mcnemar_test

    h, a, b = _flat(heights, float), _flat(found_a, bool), _flat(found_b, bool)
    if not len(a) == len(b) == len(h):
        raise ValueError(f"{len(a)} and {len(b)} face flags for {len(h)} face heights")
    out = {}
    for lo, hi in bins:
        sel = (h >= lo) & (h < (np.inf if hi is None else hi))
        t = mcnemar_test(a[sel], b[sel])
        out[bin_label(lo, hi)] = {"faces": int(sel.sum()), "only_a": t["b"], "only_b": t["c"],
                                  "p": t["p"] if sel.any() else None}
    return out


def frames_worse(found: dict, reference: str = "blurred") -> dict:
    """Per condition, the number of frames where it finds fewer labelled faces than ``reference``."""
    base = [int(np.sum(x)) for x in found[reference]]
    return {c: int(sum(int(np.sum(x)) < b for x, b in zip(v, base))) for c, v in found.items() if c != reference}


def _detect_found(detector, frames, boxes):
    results = detector.detect(frames)
    return [found_references([f.box for f in faces], ref, [f.confidence for f in faces])
            for faces, ref in zip(results, boxes)]


def _restore_conditions(model, blurred, progress, batch_size, proposal_model="fast"):
    from tfdeblur.faces import deblur_faces, deblur_frame

    whole, faces_only, seconds = [], [], {"restored": 0.0, "restored_faces": 0.0}
    for frame in blurred:
        t = time.perf_counter()
        # what `tfdeblur deblur` does
        whole.append(deblur_frame(model, frame, batch_size=batch_size, proposal_model=proposal_model)[0])
        seconds["restored"] += time.perf_counter() - t
        t = time.perf_counter()
        faces_only.append(deblur_faces(model, frame, batch_size=batch_size, proposal_model=proposal_model)[0])
        seconds["restored_faces"] += time.perf_counter() - t
        progress()
    n = max(1, len(blurred))
    return {"restored": whole, "restored_faces": faces_only}, {k: v / n for k, v in seconds.items()}


def _summary(found, heights):
    total = {c: int(sum(int(np.sum(x)) for x in v)) for c, v in found.items()}
    return {"per_size": per_size_metrics(found, heights), "frames_worse": frames_worse(found), "found": total}


def evaluate_scenes(models: dict, scenes, blurred, detector=None, independent=None, batch_size: int = 8,
                    verbose: int = 1, details: dict | None = None, proposal_model="fast") -> dict:
    """Scene metrics for ``{name: generator}`` on frames ``scenes`` (with boxes) and their blurred
    twins. ``independent``: a second detector object or None. ``proposal_model``: as for
    :func:`tfdeblur.deblur_faces` (False: the fast mode, no 2x look). The first model's measures are also
    the top-level ``per_size`` / ``frames_worse`` keys, as the crop evaluation does."""
    from keras.utils import Progbar

    from tfdeblur.detectors import MTCNNDetector

    if not scenes:
        raise ValueError("no frames to evaluate")
    detector = detector or MTCNNDetector(batch_size=batch_size)
    detectors = {"mtcnn": detector, **({"independent": independent} if independent is not None else {})}
    sharp = [s.image for s in scenes]
    boxes = [s.boxes for s in scenes]
    heights = [b[:, 3] - b[:, 1] for b in boxes]
    bar = Progbar(len(scenes) * len(models), verbose=verbose, unit_name="frame")
    base = {k: {"sharp": _detect_found(d, sharp, boxes), "blurred": _detect_found(d, blurred, boxes)}
            for k, d in detectors.items()}
    per_model, images, flags = {}, {}, {}
    for name, model in models.items():
        restored, seconds = _restore_conditions(model, blurred, lambda: bar.add(1), batch_size, proposal_model)
        images[name] = restored
        result = {"seconds_per_frame": seconds}
        for key, d in detectors.items():
            found = {**base[key], **{c: _detect_found(d, restored[c], boxes) for c in restored}}
            found = {c: found[c] for c in CONDITIONS}
            result[key] = _summary(found, heights)
            flags[(name, key)] = found
        per_model[name] = result
    first = per_model[next(iter(models))]
    metrics = {
        "frames": len(scenes),
        "faces": int(sum(len(b) for b in boxes)),
        "conditions": list(CONDITIONS),
        "iou_threshold": IOU_THRESHOLD,
        "size_bins": [bin_label(lo, hi) for lo, hi in SIZE_BINS],
        "per_size": first["mtcnn"]["per_size"],
        "frames_worse": first["mtcnn"]["frames_worse"],
        "independent_detector": getattr(independent, "name", None),
        "independent": first.get("independent"),
        "models": list(models),
        "per_model": per_model,
    }
    names = list(models)
    if len(names) > 1:  # each further model against the first, face by face
        metrics["paired"] = {
            f"{other} vs {names[0]}": {
                key: {c: paired_per_size(flags[(names[0], key)][c], flags[(other, key)][c], heights)
                      for c in ("restored", "restored_faces")}
                for key in detectors}
            for other in names[1:]}
    if details is not None:
        details.update({"names": [s.name for s in scenes], "sharp": sharp, "blurred": blurred,
                        "restored": images, "boxes": boxes})
    return metrics
