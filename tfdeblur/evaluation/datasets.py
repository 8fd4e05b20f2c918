"""The images to evaluate: sharp faces blurred here (``--data-dir``), matched sharp/blurred pairs
(``--pairs-dir``), or hand-labelled photos (``--ground-truth``, dlib imglab XML)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from tfdeblur.errors import one_line
from tfdeblur.evaluation.common import EVAL_SIZE, EvaluationError
from tfdeblur.imageio import DEFAULT_MAX_PIXELS, ImageError, SkipLog, find_images, read_rgb

__all__ = ["EvalData", "load_imglab_xml", "synthesize_blur", "stem_key", "match_pairs", "load_data_dir",
           "load_pairs_dir", "load_ground_truth"]


@dataclass
class EvalData:
    """Images to evaluate: ``sharp`` and ``blurred`` lists of RGB uint8 (same shapes pairwise)."""

    names: list
    sharp: list
    blurred: list
    gt_boxes: list | None = None  # per image [n, 4] xyxy, or None: use sharp detections
    source: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.names)


def load_imglab_xml(path) -> list[dict]:
    """Read a dlib imglab XML (``<image file=...><box top= left= width= height=/>``).

    Returns ``[{"path", "boxes": float32 [n, 4] as [x1, y1, x2, y2]}]`` in file order; image paths
    are resolved relative to the XML's folder. Boxes marked ``ignore='1'`` are dropped.
    """
    path = os.fspath(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise EvaluationError(f"{path}: not a readable imglab XML ({one_line(e)})") from None
    base = os.path.dirname(os.path.abspath(path))
    out = []
    for image in root.iter("image"):
        file = image.get("file")
        if not file:
            continue
        boxes = []
        for box in image.findall("box"):
            if box.get("ignore", "0") not in ("0", "", "false"):
                continue
            try:
                top, left = float(box.get("top")), float(box.get("left"))
                w, h = float(box.get("width")), float(box.get("height"))
            except (TypeError, ValueError):
                raise EvaluationError(f"{path}: box without numeric top/left/width/height in {file}") from None
            boxes.append([left, top, left + w, top + h])
        out.append({"path": os.path.join(base, file), "boxes": np.asarray(boxes, np.float32).reshape(-1, 4)})
    return out


def synthesize_blur(sharp_uint8: np.ndarray, seed: int = 0, preset: str = "eval", batch_size: int = 32) -> np.ndarray:
    """Blur ``[N, H, W, 3]`` uint8 faces with ``blur.indexed_bank(preset, N, seed)``: deterministic,
    and image ``i`` gets the same kernel whatever ``--limit`` is."""
    from tfdeblur import blur, data

    n = len(sharp_uint8)
    if n == 0:
        return np.zeros_like(sharp_uint8)
    kernels = blur.indexed_bank(preset, n, seed=seed)
    return data.make_eval_pairs(sharp_uint8, kernels, noise_sigma=0.0, seed=seed, batch_size=batch_size)


def stem_key(rel: str) -> str:
    return os.path.splitext(rel.replace(os.sep, "/"))[0]


def match_pairs(pairs_dir, log: SkipLog | None = None) -> list[tuple[str, str, str]]:
    """``DIR/sharp/*`` and ``DIR/blurred/*`` matched by file stem (relative path without the
    extension): ``[(stem, sharp_path, blurred_path)]`` sorted by stem.

    Raises :class:`EvaluationError` for a missing folder, an empty one, a stem that is not unique
    within one side, or stems with no partner (naming a few).
    """
    pairs_dir = os.fspath(pairs_dir)
    if not os.path.isdir(pairs_dir):
        raise EvaluationError(f"--pairs-dir {pairs_dir!r}: no such folder")
    for side in ("sharp", "blurred"):
        if not os.path.isdir(os.path.join(pairs_dir, side)):
            raise EvaluationError(
                f"--pairs-dir {pairs_dir!r} has no {side}/ folder (expected sharp/ and blurred/ "
                "with matching file names, as written by `tfdeblur blur`)"
            )
    sides = {}
    for side in ("sharp", "blurred"):
        d = os.path.join(pairs_dir, side)
        found = {}
        for full, rel in find_images(d, log=log):
            key = stem_key(rel)
            if key in found:
                raise EvaluationError(f"{side}/ has two images with the stem {key!r}: {found[key]} and {full}")
            found[key] = full
        if not found:
            raise EvaluationError(f"no images (.jpg/.png/.webp/.bmp) in {d!r}")
        sides[side] = found
    sharp, blurred = sides["sharp"], sides["blurred"]
    only_sharp = sorted(set(sharp) - set(blurred))
    only_blurred = sorted(set(blurred) - set(sharp))
    if only_sharp or only_blurred:
        parts = []
        for label, items in (("sharp/ only", only_sharp), ("blurred/ only", only_blurred)):
            if items:
                shown = ", ".join(items[:3]) + (f" (and {len(items) - 3} more)" if len(items) > 3 else "")
                parts.append(f"{label}: {shown}")
        n = len(only_sharp) + len(only_blurred)
        raise EvaluationError(f"{n} unmatched file stem{'s' if n > 1 else ''} in {pairs_dir!r}: " + "; ".join(parts))
    return [(k, sharp[k], blurred[k]) for k in sorted(sharp)]


def _read(path, size, log):
    try:  # size None: the image's own size, within the same cap as deblur's
        im = read_rgb(path, size, max_pixels=None if size else DEFAULT_MAX_PIXELS)
    except ImageError as e:
        log.skip(path, e)
        return None
    if min(im.shape[:2]) < 16:
        log.skip(path, f"image too small ({im.shape[1]}x{im.shape[0]})")
        return None
    return im


def load_data_dir(data_dir, limit: int | None = None, seed: int = 0, size: int = EVAL_SIZE,
                  log: SkipLog | None = None, split: str = "all") -> EvalData:
    """Sharp faces found recursively under ``data_dir`` (first ``limit`` readable ones in sorted
    order), resized to ``size``, blurred with the "eval" preset and ``seed``.

    ``split="val"`` / ``"train"`` keeps only the persons that training's default person split
    (``tfdeblur.data.split_by_person``) puts on that side, so a model is judged on people it never saw.
    """
    from tfdeblur.data import load_faces

    log = log if log is not None else SkipLog()
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise EvaluationError(f"--data-dir {data_dir!r}: no such folder")
    found = find_images(data_dir, log=log)
    if split != "all":
        from tfdeblur.config import DEFAULTS
        from tfdeblur.data import split_by_person

        train, val = split_by_person([p for p, _ in found], DEFAULTS["data"]["val_fraction"], DEFAULTS["data"]["split_seed"])
        keep = set(val if split == "val" else train)
        found = [(p, r) for p, r in found if p in keep]
    if not found:
        raise EvaluationError(f"no images (.jpg/.png/.webp/.bmp) found under {data_dir!r}")
    sharp, kept = load_faces([p for p, _ in found], size=size, log=log, limit=limit)
    if len(kept) == 0:
        raise EvaluationError(f"none of the {len(found)} images under {data_dir!r} could be read")
    blurred = synthesize_blur(sharp, seed=seed)
    rel = {p: r for p, r in found}
    return EvalData([stem_key(rel[p]) for p in kept], list(sharp), list(blurred), None,
                    {"data_dir": data_dir, "split": split, "blur": {"preset": "eval", "seed": int(seed)}, "size": size})


def load_pairs_dir(pairs_dir, limit: int | None = None, size: int = EVAL_SIZE, log: SkipLog | None = None) -> EvalData:
    """Matched ``sharp/`` + ``blurred/`` pairs (see :func:`match_pairs`), resized to ``size``.
    A pair one of whose files cannot be read is skipped (logged)."""
    log = log if log is not None else SkipLog()
    pairs = match_pairs(pairs_dir, log)
    names, sharp, blurred = [], [], []
    for stem, sp, bp in pairs:
        if limit is not None and len(names) >= limit:
            break
        s = _read(sp, size, log)
        b = _read(bp, size, log) if s is not None else None
        if s is None or b is None:
            if s is not None:  # the blurred twin was bad: say the sharp one goes too
                log.skip(sp, "its blurred twin could not be read")
            continue
        names.append(stem)
        sharp.append(s)
        blurred.append(b)
    if not names:
        raise EvaluationError(f"no readable image pairs in {os.fspath(pairs_dir)!r}")
    return EvalData(names, sharp, blurred, None, {"pairs_dir": os.fspath(pairs_dir), "size": size})


def load_ground_truth(xml_path, limit: int | None = None, seed: int = 0, log: SkipLog | None = None) -> EvalData:
    """A hand-labelled dataset (dlib imglab XML, e.g. ``shared/data/multiface/testing.xml``).

    Images keep their own size (their boxes are in those pixels; group photos have small faces
    that a 256x256 squash would lose) and are blurred with the "eval" preset and ``seed``, one
    kernel per image. Recall and false positives are then scored against the labelled boxes.
    """
    log = log if log is not None else SkipLog()
    if not os.path.isfile(xml_path):
        raise EvaluationError(f"--ground-truth {xml_path!r}: no such file")
    entries = load_imglab_xml(xml_path)
    if not entries:
        raise EvaluationError(f"{xml_path!r} lists no images")
    names, sharp, boxes = [], [], []
    for e in entries:
        if limit is not None and len(names) >= limit:
            break
        im = _read(e["path"], None, log)
        if im is None:
            continue
        names.append(os.path.splitext(os.path.basename(e["path"]))[0])
        sharp.append(im)
        boxes.append(e["boxes"])
    if not names:
        raise EvaluationError(f"none of the images listed in {xml_path!r} could be read")
    from tfdeblur import blur, data

    kernels = blur.preset_bank("eval", len(sharp), seed=seed)
    blurred = [data.make_eval_pairs(im[None], kernels[i : i + 1], seed=seed)[0] for i, im in enumerate(sharp)]
    return EvalData(names, sharp, blurred, boxes,
                    {"ground_truth": os.fspath(xml_path), "blur": {"preset": "eval", "seed": int(seed)}, "size": None})
