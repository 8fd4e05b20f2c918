"""A detector run on overlapping tiles of a frame as well as on the whole frame.

BlazeFace letterboxes its input to 192x192 (full range): a 40 px face in a 640x480 frame shrinks
to 12 px, below what it can see, so on camera frames it found only a third of the *sharp* 32-64 px
faces and could not judge that size. Tiles of the model's own input side keep small faces at
their pixel size; the whole-frame pass keeps the large ones that no tile holds.
"""

from __future__ import annotations

import numpy as np

from tfdeblur.detectors.base import Face

__all__ = ["TiledDetector", "tile_origins"]

NMS_IOU = 0.3


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride`` px, the last tile flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _cut_by_tile_edge(box, x0, y0, tile, shape, slack=2.0):
    """Whether ``box`` (tile pixels) touches an edge of the tile that is not an edge of the frame:
    such a detection may be part of a face that the tile cut."""
    h, w = shape[:2]
    return ((box[0] <= slack and x0 > 0) or (box[1] <= slack and y0 > 0)
            or (box[2] >= tile - slack and x0 + tile < w) or (box[3] >= tile - slack and y0 + tile < h))


class TiledDetector:
    """``detector`` on the whole frame and on square tiles of side ``tile`` every ``stride`` px;
    detections cut by a tile's inner edge are dropped, the rest merged by NMS (best first).
    A face up to ``tile - stride`` px high lies whole inside some tile."""

    def __init__(self, detector, tile: int = 192, stride: int = 128, name: str | None = None):
        if not 0 < stride <= tile:
            raise ValueError(f"tiling needs 0 < stride <= tile, got stride {stride}, tile {tile}")
        self.detector, self.tile, self.stride = detector, int(tile), int(stride)
        self.name = name or f"{detector.name}-tiled"

    def _tiles(self, image):
        h, w = image.shape[:2]
        return [(x0, y0) for y0 in tile_origins(h, self.tile, self.stride) for x0 in tile_origins(w, self.tile, self.stride)]

    def detect(self, images) -> list[list[Face]]:
        out = []
        for image in images:
            image = np.asarray(image)
            origins = self._tiles(image)
            crops = [image] + [image[y0 : y0 + self.tile, x0 : x0 + self.tile] for x0, y0 in origins]
            found = self.detector.detect(crops)
            faces = list(found[0])
            if len(origins) > 1:
                for (x0, y0), tile_faces in zip(origins, found[1:]):
                    for f in tile_faces:
                        if _cut_by_tile_edge(f.box, x0, y0, self.tile, image.shape):
                            continue
                        shift = np.array([x0, y0], np.float32)
                        box = np.asarray(f.box, np.float32) + np.tile(shift, 2)
                        marks = None if f.landmarks is None else np.asarray(f.landmarks, np.float32) + shift
                        faces.append(Face(box, f.confidence, marks))
            faces.sort(key=lambda f: -f.confidence)
            kept: list[Face] = []
            for f in faces:
                if all(_iou(f.box, k.box) <= NMS_IOU for k in kept):
                    kept.append(f)
            out.append(kept)
        return out
