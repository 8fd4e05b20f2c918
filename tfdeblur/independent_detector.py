"""Old import path (README: ``tfdeblur.independent_detector.get(name)``); the detectors live in
:mod:`tfdeblur.detectors`."""

from tfdeblur.detectors import NAMES, BlazeFaceDetector, DetectorUnavailable, HaarDetector, available, get

__all__ = ["BlazeFaceDetector", "HaarDetector", "DetectorUnavailable", "available", "get", "NAMES"]
