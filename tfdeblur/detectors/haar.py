"""OpenCV's frontal-face Haar cascade, an alternative independent detector.

OpenCV 5 (the current ``opencv-python-headless``) no longer has ``cv2.CascadeClassifier`` and
ships no cascade XML files (``cv2.data.haarcascades`` is an empty folder), so this works only
where an OpenCV 4 with its bundled cascades is installed, and says clearly when it is not.
"""

from __future__ import annotations

import os

import numpy as np

from tfdeblur.detectors.base import DetectorUnavailable, Face

__all__ = ["HaarDetector", "haar_installed"]

_DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def _cascade_path(cascade: str) -> str | None:
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        return None
    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = cascade if os.path.isfile(cascade) else (os.path.join(base, cascade) if base else cascade)
    return path if os.path.isfile(path) else None


def haar_installed() -> bool:
    """Whether this OpenCV has the cascade classifier and its frontal-face XML."""
    try:
        return _cascade_path(_DEFAULT_CASCADE) is not None
    except ImportError:
        return False


class HaarDetector:
    """Haar cascades give no calibrated confidence: ``confidence`` is the cascade's level weight
    squashed to (0, 1) with a logistic, so only its ordering means anything."""

    name = "haar"

    def __init__(self, cascade: str = _DEFAULT_CASCADE, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 20, batch_size: int | None = None):
        import cv2

        path = _cascade_path(cascade)
        if path is None:
            raise DetectorUnavailable(
                f"OpenCV {cv2.__version__} has no Haar cascades (CascadeClassifier and its XML files "
                "were dropped in OpenCV 5); use --independent blazeface"
            )
        self._cascade = cv2.CascadeClassifier(path)
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, images) -> list[list[Face]]:
        import cv2

        out = []
        for im in images:
            gray = cv2.cvtColor(np.ascontiguousarray(im, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
            rects, _, weights = self._cascade.detectMultiScale3(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(self.min_size, self.min_size), outputRejectLevels=True,
            )
            faces = [
                Face(np.array([x, y, x + w, y + h], np.float32), float(1.0 / (1.0 + np.exp(-float(s)))), None)
                for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).ravel())
            ]
            faces.sort(key=lambda f: -f.confidence)
            out.append(faces)
        return out
