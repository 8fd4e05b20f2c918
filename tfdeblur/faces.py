"""Scale-aware face restoration in whole camera frames: ``deblur_faces`` (the faces only) and
``deblur_frame`` (the whole frame, with its faces restored again at scale).

The generator was trained on aligned faces filling about 45% of the height of a 256 px crop.
A frame holds faces of 30-300 px anywhere, so each face is restored where the model is best:
a square context around it is resized to the model's working size (the face then has the
training height), restored, resized back and blended in with a feathered mask. A 40 px face gets
the same treatment as a 256 px one, and all faces of a frame go through the model in one batch.

Faces are found in the *blurred* frame, where a detector misses the blurriest ones, so the
proposals come from several looks, merged by non-maximum suppression: tiled BlazeFace, a
detector of another family that keeps finding small blurred faces where MTCNN stops, on the blurred
frame and the 1x restoration; and MTCNN with relaxed thresholds on the frame restored whole at 1x
and on the frame upscaled 2x and restored whole by a fast 4-block generator (a 30 px face then has
the size the model and MTCNN work best at). Only where BlazeFace is not installed does MTCNN look at
the blurred frame too. With perfect boxes, restoration at scale lets MTCNN find 91% of the 32-64 px
validation faces; the looks are what limit it. A false proposal costs one crop of compute and is
restored like any other region; a missed face is a face left blurred.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["WORK_SIZE", "FACE_FRACTION", "MIN_FACE", "PROPOSAL_THRESHOLDS", "BLAZEFACE_MIN_SCORE",
           "FAST_MODE_MTCNN_MIN_FACE", "LOOK_MODEL",
           "proposal_detector", "blazeface_proposal_detector", "blazeface_to_mtcnn_box", "propose_faces",
           "merge_proposals",
           "restored_look", "deblur_faces", "deblur_frame", "face_regions"]

WORK_SIZE = 256  # the training crop side
FACE_FRACTION = 0.45  # face-box height / crop side in the training crops (LFW deep-funneled at 256)
MIN_FACE = 16  # px: below this there is no face to restore, only pixels to smear
# Relaxed MTCNN stage thresholds for proposals (defaults 0.6 / 0.7 / 0.8): blur lowers the
# stages' scores before it hides a face.
# On 60 development frames of training persons, 0.4 / 0.4 / 0.5 found 2 points more of the
# 32-64 px faces than 0.5 / 0.5 / 0.6, for 0.4 more false proposals per frame (one crop each).
PROPOSAL_THRESHOLDS = {"threshold_pnet": 0.4, "threshold_rnet": 0.4, "threshold_onet": 0.5}
_NMS_IOU = 0.4
# Tiled BlazeFace as a second proposal detector. On 60 development frames of training persons it
# raised the 32-64 px proposal recall of the three MTCNN looks from 87.6% to 92.5% and the 0-32 px
# one from 44% to 76% for 0.11 s and 2.2 more proposals per frame; score 0.2 found no more 32-64 px
# faces for 3 more proposals per frame, 0.5 found 14 points fewer on its own.
BLAZEFACE_MIN_SCORE = 0.3
# ... of detections made from score 0.1: BlazeFace's weighted NMS then averages more candidate boxes,
# which found 3 points more of those 32-64 px faces at 0.3 than detecting from 0.3 directly.
_BLAZEFACE_DETECT_SCORE = 0.1
# The fast mode (no 2x look) starts MTCNN's pyramid at 32 px: tiled BlazeFace finds the smaller
# faces. On the development frames, when MTCNN still looked at the blurred frame in that mode, this
# halved MTCNN's time (0.20 -> 0.09 s per VGA frame) and lost 1 of 161 proposals of 32-64 px faces.
FAST_MODE_MTCNN_MIN_FACE = 32
# BlazeFace's box against MTCNN's on the same faces (median over 595 matches on those frames):
# 0.875x the height, 1.18x the width, centre 0.04 of the height lower. Its proposals are mapped to
# MTCNN's convention, the one the context square (FACE_FRACTION) was measured in.
_BLAZEFACE_HEIGHT, _BLAZEFACE_WIDTH, _BLAZEFACE_DY = 0.875, 1.18, 0.04
LOOK_SCALE = 2.0  # the restored look's upscale factor
LOOK_MAX_PIXELS = 1.3e6  # ... capped at this many pixels (a VGA frame gets the full 2x)
_MODELS: dict = {}  # the look generator, loaded once


def _box(f):
    return np.asarray(getattr(f, "box", f), np.float64)[:4]


def _score(f):
    return float(getattr(f, "confidence", 1.0))


def _nms(faces, thr=_NMS_IOU):
    from tfdeblur.evaluation.matching import iou

    kept = []
    for f in sorted(faces, key=_score, reverse=True):
        if all(iou(_box(f), _box(k)) < thr for k in kept):
            kept.append(f)
    return kept


def _resize(image, width, height):
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((int(width), int(height)), Image.BICUBIC))


def _look_scale(shape, max_pixels=LOOK_MAX_PIXELS):
    """Upscale factor of the restored look: 2 (small faces grow to where the model and MTCNN work
    best), less for large frames so the look stays within ``max_pixels``."""
    h, w = shape[:2]
    return float(min(LOOK_SCALE, math.sqrt(max_pixels / float(h * w))))


def restored_look(model, image, scale: float | None = None):
    """The frame upscaled by ``scale`` (default :func:`_look_scale`) and restored whole:
    ``(look, scale)``. Upscaling gives a 30 px face the size it had in training; the shake grows
    with it but stays within the training range for the shakes that hide such faces."""
    from tfdeblur.inference import deblur

    h, w = image.shape[:2]
    scale = _look_scale(image.shape) if scale is None else float(scale)
    big = image if abs(scale - 1.0) < 1e-3 else _resize(image, round(w * scale), round(h * scale))
    return deblur(model, big), scale


# The 2x look's generator: the 4-block fast model shipped until 2026-12-03. Today's fast model
# (re-distilled from the default, +0.33 dB on crops) is a worse look: as the 2x look it found 4 fewer
# of the 32-64 px dev faces (85.1 vs 87.6%) and on the validation frames cost the default 1-5 points
# of recall under 64 px and one frame worse than blurred (docs/scenes.md). A look needs faces found,
# not fidelity, so it keeps the older weights.
LOOK_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "generator_look.keras")


def _proposal_model(model, proposal_model):
    """The generator of the 2x look: "fast" (the 4-block look generator, ``LOOK_MODEL``), ``model``
    (None), none (False), or as given."""
    if proposal_model is False:
        return None
    if proposal_model == "fast":
        if "look" not in _MODELS:
            from tfdeblur.inference import load_model

            _MODELS["look"] = load_model(LOOK_MODEL)
        return _MODELS["look"]
    return model if proposal_model is None else proposal_model


class _BlazeFaceProposal:
    """A BlazeFace detection in its own box convention, until the proposals are merged."""

    def __init__(self, box, confidence):
        self.box, self.confidence, self.landmarks = box, confidence, None


def blazeface_to_mtcnn_box(box):
    """A BlazeFace box ``[x1, y1, x2, y2]`` mapped to MTCNN's box convention (taller, narrower,
    higher), so a face's context square does not depend on which detector proposed it."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)[:4]
    h, w = (y2 - y1) / _BLAZEFACE_HEIGHT, (x2 - x1) / _BLAZEFACE_WIDTH
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - _BLAZEFACE_DY * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def propose_faces(image, detector=None, model=None, min_face: int = MIN_FACE, restored=None, blazeface: bool = True,
                  mtcnn_on_blurred: bool | None = None, mtcnn_min_face: int | None = None):
    """Face proposals for a blurred uint8 frame: with ``blazeface``, tiled BlazeFace (score >=
    ``BLAZEFACE_MIN_SCORE``, its boxes mapped to MTCNN's convention) on the frame and on
    ``restored`` (the frame restored whole at 1x, when given), and MTCNN (``detector``, relaxed
    thresholds) on ``restored`` and, when ``model`` is given, on :func:`restored_look`. Without
    BlazeFace (``blazeface=False`` or not installed), or with ``mtcnn_on_blurred=True`` (the
    proposals before 2026-12-07, for comparisons), MTCNN also looks at the blurred frame. Merged
    by NMS, faces under ``min_face`` px dropped. Without ``detector``, relaxed MTCNN from
    ``mtcnn_min_face`` px (default ``min_face``) is built once, and only when a look needs it.
    Returns :class:`tfdeblur.detectors.Face` objects in frame pixels."""
    views = [image] + ([] if restored is None else [np.asarray(restored)])
    second = _second_detector() if blazeface else None
    # With BlazeFace on the blurred frame, MTCNN there added no proposal on the development frames
    # (in any mode), so MTCNN looks at the restorations only: the fast mode then runs no MTCNN.
    mtcnn_views = views if second is None or mtcnn_on_blurred else views[1:]
    faces = []
    if mtcnn_views or model is not None:
        detector = detector or _default_detector(min_face if mtcnn_min_face is None else mtcnn_min_face)
        faces = [f for view in mtcnn_views for f in detector.detect([view])[0]]
    if second is not None:
        faces += [_BlazeFaceProposal(np.asarray(f.box, np.float32), float(f.confidence)) for view in views
                  for f in second.detect([view])[0] if f.confidence >= BLAZEFACE_MIN_SCORE]
    if model is not None:
        look, scale = restored_look(model, image)
        for f in detector.detect([look])[0]:
            f.box = np.asarray(f.box, np.float32) / scale
            if f.landmarks is not None:
                f.landmarks = np.asarray(f.landmarks, np.float32) / scale
            faces.append(f)
    return merge_proposals(faces, min_face)


def merge_proposals(faces, min_face: int = MIN_FACE):
    """All looks' detections as proposals: faces under ``min_face`` px dropped, NMS over each
    detector's own boxes, then BlazeFace's survivors mapped to MTCNN's box convention."""
    from tfdeblur.detectors import Face

    # Mapped after the merge: on the development frames, mapping first let MTCNN's looser boxes
    # suppress 4 of 59 under-32 px faces that BlazeFace had right.
    return [Face(blazeface_to_mtcnn_box(f.box), f.confidence) if isinstance(f, _BlazeFaceProposal) else f
            for f in _nms(_at_least(faces, min_face))]


def _at_least(faces, min_face):
    """The faces whose box is at least ``min_face`` px on its shorter side."""
    return [f for f in faces if min(_box(f)[2] - _box(f)[0], _box(f)[3] - _box(f)[1]) >= min_face]


def blazeface_proposal_detector(min_score: float = _BLAZEFACE_DETECT_SCORE):
    """Tiled full-range BlazeFace (the ``blazeface-tiled`` detector) as a proposal look;
    :func:`propose_faces` keeps its detections from ``BLAZEFACE_MIN_SCORE``."""
    from tfdeblur.detectors import get

    return get("blazeface-tiled", min_score=min_score)


def proposal_detector(min_face: int = MIN_FACE, batch_size: int = 8, fast_mode: bool = False):
    """MTCNN with the relaxed proposal thresholds (faces from ``min_face`` px, at least 12; in the
    ``fast_mode`` from ``FAST_MODE_MTCNN_MIN_FACE`` where tiled BlazeFace is there for the small ones)."""
    from tfdeblur.detectors import MTCNNDetector

    min_face = _mtcnn_min_face(min_face, fast_mode)
    return MTCNNDetector(batch_size=batch_size, min_face_size=max(12, int(min_face)), thresholds=PROPOSAL_THRESHOLDS)


_DETECTORS: dict = {}


def _mtcnn_min_face(min_face, fast_mode, blazeface=True):
    """MTCNN's smallest face: ``min_face``, or ``FAST_MODE_MTCNN_MIN_FACE`` in the fast mode when
    tiled BlazeFace is there for the smaller ones."""
    if fast_mode and blazeface and _second_detector() is not None:
        return max(min_face, FAST_MODE_MTCNN_MIN_FACE)
    return min_face


def _second_detector():
    """Tiled BlazeFace, built once; None (MTCNN alone) where its model files are not installed."""
    if "blazeface" not in _DETECTORS:
        from tfdeblur.detectors import blazeface_installed

        _DETECTORS["blazeface"] = blazeface_proposal_detector() if blazeface_installed() else None
    return _DETECTORS["blazeface"]


def _default_detector(min_face):
    # Building MTCNN costs seconds: one per process and face size.
    if min_face not in _DETECTORS:
        _DETECTORS[min_face] = proposal_detector(min_face)
    return _DETECTORS[min_face]


def _context_square(box, work_size=WORK_SIZE, face_fraction=FACE_FRACTION):
    """The square (x0, y0, side) around a face that, resized to ``work_size``, gives the face the
    training height."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) / face_fraction
    side = max(8, int(math.ceil(side)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def _crop_padded(image, x0, y0, side):
    """``image[y0:y0+side, x0:x0+side]``, reflect-padded where the square leaves the frame (the
    face keeps its scale at the border)."""
    h, w = image.shape[:2]
    pad = [(max(0, -y0), max(0, y0 + side - h)), (max(0, -x0), max(0, x0 + side - w)), (0, 0)]
    cx0, cy0 = max(0, x0), max(0, y0)
    crop = image[cy0:min(h, y0 + side), cx0:min(w, x0 + side)]
    if any(p for p in pad[:2] for p in p):
        mode = "reflect" if min(crop.shape[:2]) > max(max(pad[0]), max(pad[1])) else "edge"
        crop = np.pad(crop, pad, mode=mode)
    return crop


def face_regions(faces, shape, margin: float = 0.25):
    """Margin-expanded, clipped integer regions ``(x0, y0, x1, y1)`` of faces (Face objects or
    ``[x1, y1, x2, y2]`` boxes); the box grows by ``margin`` times its longer side on every side."""
    return [region for region, _, _ in _face_boxes(faces, shape, margin)]


def _face_boxes(faces, shape, margin):
    """``[(region, inner, box)]``: the margin-expanded region, the box grown by half the margin."""
    h, w = shape[:2]
    out = []
    for f in faces:
        box = _box(f)
        x1, y1, x2, y2 = box
        if not np.all(np.isfinite(box)) or x2 <= x1 or y2 <= y1:
            continue
        pad = margin * max(x2 - x1, y2 - y1)

        def grow(p):
            return (max(0, int(math.floor(x1 - p))), max(0, int(math.floor(y1 - p))),
                    min(w, int(math.ceil(x2 + p))), min(h, int(math.ceil(y2 + p))))

        region = grow(pad)
        if region[2] > region[0] and region[3] > region[1]:
            out.append((region, grow(pad / 2), box))
    return out


def _feather(region, inner, shape):
    """Blend mask over ``region``: 1 inside ``inner``, linear ramps to 0 at the region's edges
    (no ramp where the region touches the image border)."""
    x0, y0, x1, y1 = region
    ix0, iy0, ix1, iy1 = inner
    h, w = shape[:2]

    def axis(a0, a1, i0, i1, limit):
        n = a1 - a0
        v = np.ones(n, np.float32)
        left, right = max(0, i0 - a0), max(0, a1 - i1)
        if a0 > 0 and left > 0:
            v[:left] = (np.arange(left, dtype=np.float32) + 0.5) / (left + 0.5)
        if a1 < limit and right > 0:
            v[n - right:] = np.minimum(v[n - right:], ((np.arange(right, dtype=np.float32) + 0.5) / (right + 0.5))[::-1])
        return v

    return np.minimum.outer(axis(y0, y1, iy0, iy1, h), axis(x0, x1, ix0, ix1, w))


def _restore_at_scale(model, rgb, boxes, work_size, batch_size):
    """Each face's context square resized to ``work_size``, restored in batches, resized back:
    ``[(x0, y0, restored square)]``."""
    from tfdeblur.inference import deblur

    squares = [_context_square(box, work_size) for box in boxes]
    crops = np.stack([_resize(_crop_padded(rgb, x0, y0, side), work_size, work_size) for x0, y0, side in squares])
    restored = deblur(model, crops, tile=None, batch_size=batch_size)
    return [(x0, y0, _resize(out, side, side)) for (x0, y0, side), out in zip(squares, restored)]


def deblur_faces(model, image, faces=None, detector=None, margin: float = 0.25, tile=None,
                 batch_size: int = 8, work_size: int = WORK_SIZE, min_face: int = MIN_FACE,
                 proposal_model="fast", blazeface: bool = True, mtcnn_on_blurred: bool | None = None):
    """Restore the faces of a blurred uint8 ``[H, W, 3]`` frame, each at the model's scale.

    ``faces``: Face objects or ``[x1, y1, x2, y2]`` boxes; by default :func:`propose_faces`:
    tiled BlazeFace on the frame and on the frame restored whole by ``model``, relaxed MTCNN on that
    restoration and on a 2x restored look made by ``proposal_model`` ("fast": the 4-block look
    generator ``LOOK_MODEL``, cheap; None: ``model`` itself; False: neither restored look, the fast
    mode: tiled BlazeFace on the blurred frame alone). ``blazeface=False`` (or BlazeFace not
    installed): MTCNN alone, on the blurred frame too (in the fast mode from
    ``FAST_MODE_MTCNN_MIN_FACE`` px unless ``detector`` is given); ``mtcnn_on_blurred``: as for
    :func:`propose_faces`.
    Each face's square context is resized so the face has the training height in a
    ``work_size`` crop, restored, resized back and blended with a feathered mask over the box
    grown by ``margin``. Faces under ``min_face`` px are left alone; pixels outside the regions
    are returned unchanged. ``tile`` is accepted for compatibility (crops are never tiled).
    Returns ``(image, regions)`` with regions ``(x0, y0, x1, y1)``.
    """
    rgb = np.asarray(image)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"deblur_faces expects a uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
    if faces is None:
        from tfdeblur.inference import deblur

        look_model = _proposal_model(model, proposal_model)
        whole = None if look_model is None else deblur(model, rgb, batch_size=batch_size)  # False: no restored look
        faces = propose_faces(rgb, detector, look_model, min_face, restored=whole, blazeface=blazeface,
                              mtcnn_on_blurred=mtcnn_on_blurred,
                              mtcnn_min_face=_mtcnn_min_face(min_face, proposal_model is False, blazeface))
    return _restore_faces_onto(model, rgb, rgb, faces, margin, batch_size, work_size, min_face)


def _restore_faces_onto(model, rgb, base, faces, margin, batch_size, work_size, min_face):
    """``base`` with each face of ``faces`` (in blurred frame ``rgb``) restored at the model's scale
    and blended in with a feathered mask, the most confident last: ``(image, regions)``."""
    faces = _at_least(faces, min_face)
    # Least confident first, so where two regions overlap the surer face is blended last, on top:
    # a weak proposal on part of a face must not paint over that face's own restoration.
    faces = sorted(faces, key=_score)
    boxes = _face_boxes(faces, rgb.shape, margin)
    if not boxes:
        return base.copy(), []
    restored = _restore_at_scale(model, rgb, [b for _, _, b in boxes], int(work_size), batch_size)
    canvas = base.astype(np.float32)
    for ((x0, y0, x1, y1), inner, _), (sx, sy, square) in zip(boxes, restored):
        out = square[y0 - sy:y1 - sy, x0 - sx:x1 - sx].astype(np.float32)
        mask = _feather((x0, y0, x1, y1), inner, rgb.shape)[..., None]
        region = canvas[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1] = region + mask * (out - region)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), [r for r, _, _ in boxes]


def deblur_frame(model, image, faces=None, detector=None, margin: float = 0.25, tile="default",
                 batch_size: int = 8, work_size: int = WORK_SIZE, min_face: int = MIN_FACE, proposal_model="fast",
                 blazeface: bool = True, mtcnn_on_blurred: bool | None = None):
    """Whole-frame restoration that does not smear away the faces in it.

    The frame is restored whole (:func:`tfdeblur.deblur`); then every face found (``faces``, or
    :func:`deblur_faces`'s proposals, whose 1x look is this whole-frame restoration) is restored
    again at the model's scale and blended over the whole-frame result. Whole-frame restoration of a
    face far from the training scale (a 30 px face) can lose it; every face proposed now gets the
    scale-aware treatment, and a face no look finds gets whatever the whole-frame pass recovers.
    ``proposal_model=False`` skips the 2x look (faster; fewer small faces found: the blurred frame
    and the whole-frame restoration are still looked at); ``blazeface`` and ``mtcnn_on_blurred``:
    as for :func:`propose_faces`. Images no larger
    than ``work_size`` on both sides (face crops) are restored whole only. ``tile``: as for
    :func:`tfdeblur.deblur` ("default": its default). Returns ``(image, regions)``.
    """
    from tfdeblur.inference import deblur

    rgb = np.asarray(image)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"deblur_frame expects a uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
    whole = deblur(model, rgb, batch_size=batch_size, **({} if tile == "default" else {"tile": tile}))
    if faces is None:
        if max(rgb.shape[:2]) <= int(work_size):
            return whole, []
        faces = propose_faces(rgb, detector, _proposal_model(model, proposal_model), min_face, restored=whole,
                              blazeface=blazeface, mtcnn_on_blurred=mtcnn_on_blurred,
                              mtcnn_min_face=_mtcnn_min_face(min_face, proposal_model is False, blazeface))
    return _restore_faces_onto(model, rgb, whole, faces, margin, batch_size, work_size, min_face)
