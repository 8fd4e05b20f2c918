"""What every face detector shares: the :class:`Face` it returns and the :class:`Detector` interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["Face", "Detector", "DetectorUnavailable"]


@dataclass
class Face:
    box: np.ndarray  # [x1, y1, x2, y2] in pixels
    confidence: float
    landmarks: np.ndarray | None = None  # [K, 2] (x, y), the two eyes first


class Detector(Protocol):
    """A batch of RGB uint8 images (any sizes) -> one list of :class:`Face` per image, best first."""

    name: str

    def detect(self, images) -> list[list[Face]]: ...


class DetectorUnavailable(RuntimeError):
    """The detector's package or model files are not installed; str() says what to install."""
