"""Face detectors behind one interface (:class:`Detector`: ``detect(images)`` -> per image a list
of :class:`Face`, best first): MTCNN, the paper's; BlazeFace and Haar as independent second
detectors for evaluation (:func:`get` builds one by name).

Importing this package is cheap: each detector loads its framework when it is built.
"""

from __future__ import annotations

from tfdeblur.detectors.base import Detector, DetectorUnavailable, Face
from tfdeblur.detectors.blazeface import BlazeFaceDetector, blazeface_installed
from tfdeblur.detectors.haar import HaarDetector, haar_installed
from tfdeblur.detectors.mtcnn_detector import MTCNNDetector
from tfdeblur.detectors.tiled import TiledDetector

__all__ = ["Face", "Detector", "DetectorUnavailable", "MTCNNDetector", "BlazeFaceDetector", "HaarDetector",
           "TiledDetector", "NAMES", "available", "get"]

NAMES = ("blazeface", "blazeface-full", "blazeface-tiled", "haar")  # the independent detectors, by --independent name


def available() -> list[str]:
    """Names of the independent detectors that can be built here."""
    return (["blazeface", "blazeface-full", "blazeface-tiled"] if blazeface_installed() else []) + (["haar"] if haar_installed() else [])


def get(name: str = "blazeface", **kwargs):
    """Build an independent detector by name: ``blazeface`` (default), ``blazeface-full``,
    ``blazeface-tiled`` (full range on 192 px tiles and the whole frame, for small faces), ``haar``.

    Raises :class:`DetectorUnavailable` (one-line message) when it cannot be built here.
    """
    if name == "blazeface":
        return BlazeFaceDetector("short", **kwargs)
    if name == "blazeface-full":
        return BlazeFaceDetector("full", **kwargs)
    if name == "blazeface-tiled":
        return TiledDetector(BlazeFaceDetector("full", **kwargs), tile=192, stride=128, name="blazeface-tiled")
    if name == "haar":
        return HaarDetector(**kwargs)
    raise ValueError(f"unknown independent detector {name!r}; choose from {', '.join(NAMES)}")
