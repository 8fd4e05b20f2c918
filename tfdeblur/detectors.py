"""Face detectors used for evaluation: MTCNN (the paper's) and an independent second detector.

Every detector maps a batch of RGB uint8 images to one list of :class:`Face` per image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Face", "MTCNNDetector", "get_detector"]


@dataclass
class Face:
    box: np.ndarray  # [x1, y1, x2, y2] in pixels
    confidence: float
    landmarks: np.ndarray | None = None  # [5, 2] (x, y): left eye, right eye, nose, mouth L, mouth R


class MTCNNDetector:
    """The ``mtcnn`` package's detector with its shipped weights, run in batches."""

    name = "mtcnn"

    def __init__(self, batch_size: int = 32, min_face_size: int = 20):
        import logging

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("mtcnn").setLevel(logging.ERROR)
        from mtcnn import MTCNN

        self._mtcnn = MTCNN()
        self.batch_size = int(batch_size)
        self.min_face_size = int(min_face_size)

    def detect(self, images) -> list[list[Face]]:
        images = list(images)
        out: list[list[Face]] = []
        for i in range(0, len(images), self.batch_size):
            chunk = [np.ascontiguousarray(im, dtype=np.uint8) for im in images[i : i + self.batch_size]]
            same = len({im.shape for im in chunk}) == 1
            groups = [chunk] if same else [[im] for im in chunk]  # mixed sizes: one at a time
            for group in groups:
                result = self._mtcnn.detect_faces(group, min_face_size=self.min_face_size, box_format="xyxy")
                if len(group) == 1 and (not result or isinstance(result[0], dict)):
                    result = [result]
                for faces in result:
                    out.append([_to_face(f) for f in faces])
        return out


def _to_face(d: dict) -> Face:
    x1, y1, x2, y2 = (float(v) for v in d["box"])
    lm = d.get("keypoints")
    landmarks = None
    if lm:
        order = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        landmarks = np.array([lm[k] for k in order], dtype=np.float32)
    return Face(np.array([x1, y1, x2, y2], np.float32), float(d["confidence"]), landmarks)


def get_detector(name: str, **kwargs):
    if name == "mtcnn":
        return MTCNNDetector(**kwargs)
    from tfdeblur import independent_detector  # noqa: F401  (second detector lives there)

    return independent_detector.get(name, **kwargs)
