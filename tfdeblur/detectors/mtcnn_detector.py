"""MTCNN (the paper's detector): the ``mtcnn`` package with its shipped weights, run in batches."""

from __future__ import annotations

import os

import numpy as np

from tfdeblur.detectors.base import Face

__all__ = ["MTCNNDetector"]

_LANDMARK_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class MTCNNDetector:
    """Landmarks are MTCNN's five points ``[5, 2]``: left eye, right eye, nose, mouth left, mouth right."""

    name = "mtcnn"

    def __init__(self, batch_size: int = 32, min_face_size: int = 20, thresholds: dict | None = None):
        import logging

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("mtcnn").setLevel(logging.ERROR)
        from mtcnn import MTCNN

        self._mtcnn = MTCNN()
        self.batch_size = int(batch_size)
        self.min_face_size = int(min_face_size)
        # Stage thresholds (threshold_pnet / _rnet / _onet); deblur_faces relaxes them for proposals.
        self.thresholds = dict(thresholds or {})

    def detect(self, images) -> list[list[Face]]:
        images = list(images)
        out: list[list[Face]] = []
        for i in range(0, len(images), self.batch_size):
            chunk = [np.ascontiguousarray(im, dtype=np.uint8) for im in images[i : i + self.batch_size]]
            same = len({im.shape for im in chunk}) == 1
            groups = [chunk] if same else [[im] for im in chunk]  # mixed sizes: one at a time
            for group in groups:
                result = self._mtcnn.detect_faces(group, min_face_size=self.min_face_size, box_format="xyxy",
                                                  **self.thresholds)
                if len(group) == 1 and (not result or isinstance(result[0], dict)):
                    result = [result]
                for faces in result:
                    out.append([_to_face(f) for f in faces])
        return out


def _to_face(d: dict) -> Face:
    x1, y1, x2, y2 = (float(v) for v in d["box"])
    lm = d.get("keypoints")
    landmarks = np.array([lm[k] for k in _LANDMARK_ORDER], dtype=np.float32) if lm else None
    return Face(np.array([x1, y1, x2, y2], np.float32), float(d["confidence"]), landmarks)
