"""Camera frames built from face photos: several faces of 24-300 px anywhere on a real-texture
background, with their boxes, and whole-frame camera shake measured in pixels of the frame.

Why composite: the project has no labelled frames of many persons beside the nine multiface
photos (kept for evaluation), while LFW holds thousands of faces with background around them. A
frame here is a background mosaic of LFW border patches (the image corners, which hold the
scene behind the person) with LFW faces pasted at a chosen height and a feathered edge.

Every frame is one shake: the same kernel, in frame pixels, blurs all its faces, so a small face
is relatively more blurred than a large one, as in a real photo.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Scene", "SceneError", "compose_scene", "make_scenes", "write_imglab_xml", "read_scenes",
           "blur_frames", "face_photos", "photos_with_faces", "DEFAULT_FRAME", "DEFAULT_BLUR_PX", "FACE_HEIGHTS"]

DEFAULT_FRAME = (480, 640)  # (H, W): VGA, a phone preview or a CCTV stream
FACE_HEIGHTS = (24.0, 300.0)  # face box heights drawn log-uniformly in this range, px
# A hand-held shake of 10-40 px at VGA: the recorded camera-shake kernels of Köhler et al. are
# 26-54 px on 800 px photos. Smaller faces are then relatively more blurred.
DEFAULT_BLUR_PX = (10.0, 40.0)
_CONTEXT = 1.8  # pasted patch = face box grown 1.8x (hair, ears, some background)
_CORNER = 56  # LFW border patch side used for backgrounds (250 px images)


class SceneError(ValueError):
    """A scene folder or XML that cannot be used; str() is one line."""


@dataclass
class Scene:
    """One frame: ``image`` uint8 [H, W, 3] and ``boxes`` float32 [n, 4] as [x1, y1, x2, y2]."""

    image: np.ndarray
    boxes: np.ndarray
    name: str = ""
    sources: list = field(default_factory=list)  # the face photos placed, in box order


def _resize(image, width, height):
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((max(1, int(width)), max(1, int(height))), Image.BICUBIC))


def _background(rng, photos, shape):
    """A mosaic of upscaled LFW corner patches: real texture, no faces."""
    h, w = shape
    canvas = np.zeros((h, w, 3), np.uint8)
    y = 0
    while y < h:
        cell_h = int(rng.integers(80, 200))
        x = 0
        while x < w:
            cell_w = int(rng.integers(80, 200))
            patch = _border_patch(rng, photos)
            if rng.uniform() < 0.5:
                patch = patch[:, ::-1]
            patch = _resize(np.ascontiguousarray(patch), cell_w, cell_h)
            canvas[y:y + cell_h, x:x + cell_w] = patch[: h - y, : w - x]
            x += cell_w
        y += cell_h
    return canvas


def _border_patch(rng, photos, tries: int = 20):
    """A patch of a photo's top band (the scene behind the person), avoiding the black wedges
    that LFW's deep-funnel alignment leaves in the corners."""
    for _ in range(tries):
        photo = photos[int(rng.integers(len(photos)))]
        ph, pw = photo.shape[:2]
        c = min(_CORNER, ph // 4, pw // 4)
        x = int(rng.integers(0, pw - c + 1))
        patch = photo[:c, x:x + c]
        if np.mean(patch.max(axis=-1) < 10) < 0.02:
            return patch
    return np.full((c, c, 3), 128, np.uint8)


def _feather_alpha(h, w, ramp=0.18):
    """1 in the middle, linear ramps to 0 over ``ramp`` of each side: pasted edges do not show."""
    def axis(n):
        r = max(1.0, ramp * n)
        t = np.arange(n, dtype=np.float32) + 0.5
        return np.clip(np.minimum(t, n - t) / r, 0.0, 1.0)

    return np.minimum.outer(axis(h), axis(w))[..., None]


def _overlaps(a, b):
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def compose_scene(rng, faces, face_boxes, backgrounds, shape=DEFAULT_FRAME, heights=FACE_HEIGHTS,
                  max_faces: int = 8, tries: int = 40) -> Scene:
    """One frame from face photos ``faces`` (uint8 [h, w, 3]) with their face boxes (xyxy).

    A target face height is drawn log-uniformly from ``heights`` for the frame and jittered per face
    (frames hold faces of similar size, as a group photo does); faces are placed where their
    patches do not overlap, until ``max_faces`` or ``tries`` placements have been tried.
    """
    h, w = shape
    frame = _background(rng, backgrounds, shape).astype(np.float32)
    lo, hi = np.log(heights[0]), np.log(heights[1])
    target = float(np.exp(rng.uniform(lo, hi)))
    placed, boxes, sources = [], [], []
    for _ in range(tries):
        if len(boxes) >= max_faces:
            break
        i = int(rng.integers(len(faces)))
        photo, (x1, y1, x2, y2) = faces[i], face_boxes[i]
        face_h = float(np.clip(target * rng.uniform(0.8, 1.25), heights[0], heights[1]))
        s = face_h / max(1.0, y2 - y1)
        fw, fh = (x2 - x1) * s, (y2 - y1) * s
        if fh > h - 4 or fw > w - 4:
            continue
        # The patch: the face box grown by _CONTEXT, clipped to the photo.
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = _CONTEXT * (x2 - x1) / 2, _CONTEXT * (y2 - y1) / 2
        px0, py0 = max(0, int(cx - half_w)), max(0, int(cy - half_h))
        px1, py1 = min(photo.shape[1], int(np.ceil(cx + half_w))), min(photo.shape[0], int(np.ceil(cy + half_h)))
        pw, ph = (px1 - px0) * s, (py1 - py0) * s
        # Where the face box lands: fully inside the frame.
        fx = rng.uniform(0, w - fw)
        fy = rng.uniform(0, h - fh)
        ox, oy = fx - (x1 - px0) * s, fy - (y1 - py0) * s  # patch origin in the frame
        rect = (ox, oy, ox + pw, oy + ph)
        if any(_overlaps(rect, r) for r in placed):
            continue
        patch = _resize(np.ascontiguousarray(photo[py0:py1, px0:px1]), round(pw), round(ph)).astype(np.float32)
        alpha = _feather_alpha(*patch.shape[:2])
        gx0, gy0 = int(round(ox)), int(round(oy))
        sx0, sy0 = max(0, -gx0), max(0, -gy0)
        gx1, gy1 = min(w, gx0 + patch.shape[1]), min(h, gy0 + patch.shape[0])
        if gx1 <= max(0, gx0) or gy1 <= max(0, gy0):
            continue
        region = frame[max(0, gy0):gy1, max(0, gx0):gx1]
        p = patch[sy0:sy0 + region.shape[0], sx0:sx0 + region.shape[1]]
        a = alpha[sy0:sy0 + region.shape[0], sx0:sx0 + region.shape[1]]
        frame[max(0, gy0):gy1, max(0, gx0):gx1] = region + a * (p - region)
        placed.append(rect)
        boxes.append([fx, fy, fx + fw, fy + fh])
        sources.append(i)
    image = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return Scene(image, np.asarray(boxes, np.float32).reshape(-1, 4), sources=sources)


def make_scenes(photos, face_boxes, n: int, seed: int = 0, shape=DEFAULT_FRAME, heights=FACE_HEIGHTS,
                max_faces: int = 8, backgrounds=None) -> list[Scene]:
    """``n`` frames, deterministic for ``seed`` (frame ``i`` depends only on ``(seed, i)``)."""
    if not len(photos):
        raise SceneError("no face photos to build scenes from")
    backgrounds = photos if backgrounds is None else backgrounds
    scenes = []
    for i in range(int(n)):
        rng = np.random.default_rng([int(seed), i])
        scene = compose_scene(rng, photos, face_boxes, backgrounds, shape, heights, max_faces)
        scene.name = f"frame_{i:04d}"
        scenes.append(scene)
    return scenes


def write_imglab_xml(path, entries) -> None:
    """Write ``[(file relative to the XML, boxes xyxy)]`` as a dlib imglab dataset XML."""
    root = ET.Element("dataset")
    ET.SubElement(root, "name").text = "tfdeblur scenes"
    images = ET.SubElement(root, "images")
    for file, boxes in entries:
        im = ET.SubElement(images, "image", file=str(file))
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            ET.SubElement(im, "box", top=str(int(round(y1))), left=str(int(round(x1))),
                          width=str(int(round(x2 - x1))), height=str(int(round(y2 - y1))))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _xml_files(scene_dir):
    if os.path.isfile(scene_dir) and scene_dir.endswith(".xml"):
        return [scene_dir]
    if not os.path.isdir(scene_dir):
        raise SceneError(f"--scenes {scene_dir!r}: no such folder")
    found = sorted(os.path.join(scene_dir, f) for f in os.listdir(scene_dir) if f.endswith(".xml"))
    if not found:
        raise SceneError(f"--scenes {scene_dir!r} holds no imglab .xml file (make one with scripts/make_scenes.py)")
    return found


def read_scenes(scene_dir, limit: int | None = None, log=None) -> list[Scene]:
    """Frames and boxes listed by the imglab XML file(s) of ``scene_dir`` (or one .xml path).

    Skipped, one line each in ``log``: unreadable images, frames with no box, boxes that are
    empty or reach outside the image (clipped boxes would bias the per-size bins).
    """
    from tfdeblur.errors import one_line
    from tfdeblur.imageio import DEFAULT_MAX_PIXELS, ImageError, SkipLog, read_rgb

    log = log if log is not None else SkipLog()
    scene_dir = os.fspath(scene_dir)
    scenes = []
    for xml in _xml_files(scene_dir):
        try:
            root = ET.parse(xml).getroot()
        except (OSError, ET.ParseError) as e:
            raise SceneError(f"{xml}: not a readable imglab XML ({one_line(e)})") from None
        base = os.path.dirname(os.path.abspath(xml))
        for node in root.iter("image"):
            if limit is not None and len(scenes) >= limit:
                return scenes
            file = node.get("file")
            if not file:
                continue
            path = os.path.join(base, file)
            boxes = []
            for b in node.findall("box"):
                if b.get("ignore", "0") not in ("0", "", "false"):
                    continue
                try:
                    top, left, bw, bh = (float(b.get(k)) for k in ("top", "left", "width", "height"))
                except (TypeError, ValueError):
                    boxes = None
                    break
                boxes.append([left, top, left + bw, top + bh])
            if boxes is None:
                log.skip(path, "a box without numeric top/left/width/height")
                continue
            if not boxes:
                log.skip(path, "no face box")
                continue
            try:
                image = read_rgb(path, None, max_pixels=DEFAULT_MAX_PIXELS)
            except ImageError as e:
                log.skip(path, e)
                continue
            boxes = np.asarray(boxes, np.float32)
            h, w = image.shape[:2]
            bad = ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]) | (boxes[:, 0] < -1)
                   | (boxes[:, 1] < -1) | (boxes[:, 2] > w + 1) | (boxes[:, 3] > h + 1))
            if bad.any():
                log.skip(path, f"{int(bad.sum())} box(es) empty or outside the {w}x{h} image")
                continue
            scenes.append(Scene(image, boxes, os.path.splitext(file)[0].replace(os.sep, "/")))
    if not scenes:
        raise SceneError(f"no usable frame in {scene_dir!r} (every frame was skipped)")
    return scenes


def blur_frames(frames, seed: int = 0, blur_px=DEFAULT_BLUR_PX, noise_sigma: float = 0.0,
                jpeg_quality: int | None = None) -> list[np.ndarray]:
    """Blur whole frames with camera shake of ``blur_px`` (min, max) path length in frame pixels.

    Frame ``i`` gets kernel ``(seed, i)`` of the "eval" trajectory shape (the crop benchmark's),
    with its length in pixels of this frame, whatever the frame's size.
    """
    from tfdeblur import blur, data

    lo, hi = (float(v) for v in blur_px)
    if not (0 < lo <= hi):
        raise SceneError(f"--blur-px needs 0 < MIN <= MAX, got {lo:g} {hi:g}")
    out = []
    for i, frame in enumerate(frames):
        kernel = blur.kernel_bank(1, seed=[int(seed), i], params=blur.PRESETS["eval"], length=(lo, hi))
        out.append(data.make_eval_pairs(frame[None], kernel, noise_sigma=noise_sigma, seed=seed,
                                        jpeg_quality=jpeg_quality)[0])
    return out


def face_photos(data_dir, split: str = "val", limit: int | None = None, detector=None, log=None):
    """Face photos of one side of training's person split, with their face boxes.

    A photo's box is MTCNN's most confident detection on the sharp photo (LFW holds one centred
    person per photo); photos where it finds none are skipped. Returns ``(photos, boxes, paths)``.
    """
    from tfdeblur.config import DEFAULTS
    from tfdeblur.data import split_by_person
    from tfdeblur.imageio import SkipLog, find_images

    log = log if log is not None else SkipLog()
    if not os.path.isdir(data_dir):
        raise SceneError(f"--data-dir {data_dir!r}: no such folder")
    paths = [p for p, _ in find_images(data_dir, log=log)]
    if split != "all":
        train, val = split_by_person(paths, DEFAULTS["data"]["val_fraction"], DEFAULTS["data"]["split_seed"])
        paths = val if split == "val" else train
    paths = sorted(paths)
    if limit is not None:
        paths = paths[: int(limit)]
    return photos_with_faces(paths, detector, log, where=f"under {data_dir!r} ({split} persons)")


def photos_with_faces(paths, detector=None, log=None, where: str = ""):
    """Read face photos and find each one's face: MTCNN's most confident detection on the sharp
    photo (LFW holds one centred person per photo). Unreadable photos and photos with no face are
    skipped, one line each in ``log``. Returns ``(photos, boxes, paths)``."""
    from tfdeblur.imageio import SkipLog

    log = log if log is not None else SkipLog()
    photos, kept = [], []
    for p in paths:
        im, ok = _read_photo(p, log)
        if ok:
            photos.append(im)
            kept.append(p)
    if not photos:
        raise SceneError(f"no readable face photo {where}".rstrip())
    if detector is None:
        from tfdeblur.detectors import MTCNNDetector

        detector = MTCNNDetector()
    found = detector.detect(photos)
    out_photos, boxes, out_paths = [], [], []
    for im, faces, p in zip(photos, found, kept):
        if not faces:
            log.skip(p, "MTCNN finds no face in the sharp photo")
            continue
        best = max(faces, key=lambda f: f.confidence)
        out_photos.append(im)
        boxes.append(np.asarray(best.box[:4], np.float32))
        out_paths.append(p)
    return out_photos, boxes, out_paths


def _read_photo(path, log):
    from tfdeblur.imageio import ImageError, read_rgb

    try:
        return read_rgb(path, None), True
    except ImageError as e:
        log.skip(path, e)
        return None, False
