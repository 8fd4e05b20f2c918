"""Independent face recognizers: the judges of whether a restored face keeps its identity.

A recognizer maps RGB uint8 images (and, per image, an optional face box) to one embedding row
per image; two faces are "the same person" when the Euclidean distance of their embeddings is at
most the recognizer's ``threshold``::

    rec = get_recognizer("dlib")               # RecognizerUnavailable if dlib is not installed
    boxes = sharp_face_boxes(sharp_images)     # MTCNN on the sharp images, (x, y, w, h) or None
    emb = rec.embed(images, boxes)             # float32 [N, 128]

The first (and only) implementation is dlib's ResNet face recognizer (the model behind the
``face_recognition`` package, 99.38% on LFW), aligned with dlib's own 5-point shape predictor. It
is never used in training, so a model cannot be tuned to it by accident.

Missing rows: every image gets a row. A box of ``None`` means the whole image; a box that
falls outside the image is clipped to it. A row is NaN only when the recognizer cannot embed the
image at all (an image smaller than 2x2 pixels after clipping); :mod:`tfdeblur.identity` treats
a pair with a NaN row as "no match" (distance +inf).
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os

import numpy as np

from tfdeblur.errors import one_line

__all__ = ["RecognizerUnavailable", "DlibRecognizer", "get_recognizer", "sharp_face_boxes", "best_face_boxes", "NAMES"]

NAMES = ("dlib",)


class RecognizerUnavailable(RuntimeError):
    """The recognizer's packages or model files are missing; str() is one line. Callers skip the
    identity measures and carry on."""


def _dlib_model_files() -> tuple[str, str]:
    """Paths of dlib's 5-point shape predictor and ResNet recognizer from ``face-recognition-models``.

    The files are found beside the package rather than through its functions: its ``__init__``
    imports ``pkg_resources``, which recent setuptools no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        raise RecognizerUnavailable(
            "identity measures need the face-recognition-models package (pip install face-recognition-models)"
        )
    folder = os.path.join(os.path.dirname(spec.origin), "models")
    files = (os.path.join(folder, "shape_predictor_5_face_landmarks.dat"),
             os.path.join(folder, "dlib_face_recognition_resnet_model_v1.dat"))
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise RecognizerUnavailable(f"face-recognition-models is installed but lacks {missing[0]}")
    return files


def _import_dlib():
    try:
        import dlib
    except ImportError as e:
        raise RecognizerUnavailable(
            f"identity measures need dlib (pip install dlib-bin): {one_line(e) if str(e) else 'not found'}"
        ) from None
    return dlib


class DlibRecognizer:
    """dlib's ResNet face recognizer (128-D embeddings, same person at distance <= 0.6)."""

    name = "dlib"
    threshold = 0.6  # dlib's / face_recognition's standard tolerance
    dim = 128
    chip_size, chip_padding = 150, 0.25  # what compute_face_descriptor(img, shape) uses itself

    def __init__(self, batch_size: int = 32, workers: int | None = None):
        """``workers``: processes that run the network (default: the usable CPU cores). dlib-bin is
        built without BLAS, so one process uses one core; the chips are split between forked
        workers, which inherit the loaded network."""
        self._dlib = _import_dlib()
        shape_file, net_file = _dlib_model_files()
        try:
            self._shape = self._dlib.shape_predictor(shape_file)
            self._net = self._dlib.face_recognition_model_v1(net_file)
        except RuntimeError as e:
            raise RecognizerUnavailable(f"dlib could not load its face models: {one_line(e)}") from None
        self.batch_size = int(batch_size)
        self.workers = max(1, int(workers if workers is not None else _usable_cores()))

    def _rectangle(self, shape, box):
        """dlib rectangle (inclusive corners) for an (x, y, w, h) box clipped to the image, or None."""
        h, w = shape[:2]
        if box is None:
            x1, y1, x2, y2 = 0, 0, w - 1, h - 1
        else:
            bx, by, bw, bh = (float(v) for v in box)
            x1, y1 = max(0, int(round(bx))), max(0, int(round(by)))
            x2, y2 = min(w - 1, int(round(bx + bw)) - 1), min(h - 1, int(round(by + bh)) - 1)
        if x2 - x1 < 1 or y2 - y1 < 1:
            return None
        return self._dlib.rectangle(x1, y1, x2, y2)

    def chip(self, image, box=None):
        """The aligned 150x150 face chip the network sees (5-point alignment on ``box``), or None."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        rect = self._rectangle(image.shape, box)
        if rect is None:
            return None
        landmarks = self._shape(image, rect)
        return self._dlib.get_face_chip(image, landmarks, size=self.chip_size, padding=self.chip_padding)

    def embed(self, images, boxes=None) -> np.ndarray:
        """float32 ``[N, 128]``: one row per image; ``boxes`` is None or one (x, y, w, h) / None each."""
        images = list(images)
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        out = np.full((len(images), self.dim), np.nan, np.float32)
        chips = [(i, self.chip(im, b)) for i, (im, b) in enumerate(zip(images, boxes))]
        chips = [(i, c) for i, c in chips if c is not None]
        if chips:
            out[[i for i, _ in chips]] = self._descriptors([c for _, c in chips])
        return out

    def _descriptors(self, chips) -> np.ndarray:
        """float32 ``[len(chips), 128]`` from aligned chips, over ``self.workers`` processes."""
        workers = min(self.workers, -(-len(chips) // self.batch_size))
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            global _FORKED
            _FORKED = (self, chips)  # a forked worker reads it (and the network) from its copy
            parts = np.array_split(np.arange(len(chips)), workers)
            try:
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    rows = pool.map(_forked_descriptors, [(int(p[0]), int(p[-1]) + 1) for p in parts])
            finally:
                _FORKED = None
            return np.concatenate(rows)
        return self._descriptor_rows(chips)

    def _descriptor_rows(self, chips) -> np.ndarray:
        rows = []
        for k in range(0, len(chips), self.batch_size):  # batched: ~20% faster than one by one
            rows += self._net.compute_face_descriptor(chips[k : k + self.batch_size])
        return np.asarray([np.asarray(r) for r in rows], np.float32).reshape(-1, self.dim)


_FORKED = None  # (recognizer, chips) for the forked workers of DlibRecognizer._descriptors


def _forked_descriptors(span) -> np.ndarray:
    recognizer, chips = _FORKED
    return recognizer._descriptor_rows(chips[span[0] : span[1]])


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_recognizer(name: str = "dlib", **kwargs):
    """A recognizer by name; raises :class:`RecognizerUnavailable` (one line) when it cannot load."""
    if name == "dlib":
        return DlibRecognizer(**kwargs)
    raise ValueError(f"unknown recognizer {name!r}; choose from {', '.join(NAMES)}")


def _mtcnn():
    # tfdeblur.detectors may be a module or a package; both keep MTCNNDetector public (README).
    from tfdeblur.detectors import MTCNNDetector

    return MTCNNDetector()


def sharp_face_boxes(sharp_images, detector=None) -> list:
    """Per sharp image, MTCNN's most confident face as an (x, y, w, h) tuple, or None (whole image).

    Give these boxes to every condition of an image (blurred, restored, ...) so that each is
    embedded from the same region, wherever the blur moved or hid the face.
    """
    detector = detector if detector is not None else _mtcnn()
    return best_face_boxes(detector.detect(list(sharp_images)))


def best_face_boxes(faces_per_image) -> list:
    """Per image, the most confident of its detected faces as an (x, y, w, h) tuple, or None."""
    boxes = []
    for faces in faces_per_image:
        if not faces:
            boxes.append(None)
            continue
        best = max(faces, key=lambda f: f.confidence)
        x1, y1, x2, y2 = (float(v) for v in best.box)
        boxes.append((x1, y1, x2 - x1, y2 - y1))
    return boxes
