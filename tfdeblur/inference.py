"""Inference: load a generator, deblur uint8 images of any size, faces-only mode, ``tfdeblur deblur``.

Large images are processed in overlapping tiles with feathered blending, so memory is bounded by
the tile size. The generator uses *instance* normalisation, whose statistics are a property of the
whole image: tiles normalised with their own statistics come out visibly different from a
whole-image run (about 30/255 mean absolute difference for an untrained generator). Tiled inference
therefore uses the whole image's statistics, gathered tile by tile: the generator's graph is walked
layer by layer on every tile, pausing at each normalisation layer until the per-channel sums over
all tiles' (disjoint) core cells give that layer's global mean and variance. The result equals the
whole-image output up to the tiles' borders, which the overlap and the feathered blend absorb.
Costs: one forward pass per tile plus the overlap. Each paused tile keeps its live activations
(about one activation map of the whole image in total); beyond ``cache_bytes`` tiles are recomputed
from their input instead (same result, more compute).
"""

from __future__ import annotations

import math
import os
import sys
import zipfile

import numpy as np

from tfdeblur.imageio import one_line, output_folder_problem

__all__ = [
    "SHIPPED_MODEL",
    "SHIPPED_MODELS",
    "ModelLoadError",
    "ModelNotFoundError",
    "check_model_file",
    "load_model",
    "model_multiple",
    "min_input_size",
    "deblur",
    "deblur_faces",
    "face_regions",
    "tile_starts",
    "deblur_command",
]

SHIPPED_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "generator.keras")
# Shipped generators by name (``--model fast``): the default one (ngf 40, 3.88 GMAC per 256² image),
# and a 4-block ngf-24 one (1.15 GMAC) for phones; MODEL_CARD.md measures the trade-off.
SHIPPED_MODELS = {
    "default": SHIPPED_MODEL,
    "fast": os.path.join(os.path.dirname(SHIPPED_MODEL), "generator_fast.keras"),
}
DEFAULT_TILE = 512
DEFAULT_CACHE_BYTES = 1 << 30  # activations kept for paused tiles before switching to recompute


class ModelLoadError(Exception):
    """The generator cannot be loaded; str() is a one-line message."""


class ModelNotFoundError(ModelLoadError):
    """The model file (or the shipped model) does not exist."""


# ------------------------------------------------------------------------------ loading


def check_model_file(path=None) -> str:
    """Cheap checks (no TensorFlow): the file exists and looks like a Keras model. Returns the path.

    ``None`` is the shipped default generator; a name of ``SHIPPED_MODELS`` ("default", "fast")
    that is not also an existing path is that shipped generator.
    """
    if path is None:
        path = "default"
    if isinstance(path, str) and path in SHIPPED_MODELS and not os.path.lexists(path):
        shipped = SHIPPED_MODELS[path]
        if not os.path.isfile(shipped):
            raise ModelNotFoundError(
                f"the shipped model is not installed ({shipped} is missing); pass --model PATH "
                "to a generator .keras file (train.py writes one)"
            )
        path = shipped
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise ModelNotFoundError(f"model file {path} not found")
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ModelLoadError(f"{path} is a SavedModel (for serving); pass the generator .keras file")
        raise ModelLoadError(f"{path} is a directory; pass a generator .keras file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {one_line(e)}") from None
    if head.startswith(b"\x89HDF"):
        return path  # legacy .h5: let Keras try it
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path} is not a Keras model file (a .keras file is a zip archive)")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelLoadError(f"{path} is not a readable Keras model file ({one_line(e)})") from None
    if "config.json" not in names:
        raise ModelLoadError(f"{path} is a zip file but not a Keras model (no config.json inside)")
    return path


def load_model(path=None, precision: str = "float32"):
    """Load a generator (``.keras``); ``None`` loads the shipped one (``tfdeblur/pretrained/generator.keras``),
    ``"fast"`` the shipped 4-block one (``generator_fast.keras``). It computes in ``precision``
    whatever policy it was saved with (:func:`tfdeblur.models.with_precision`): float32 by default,
    also for a generator trained under a mixed policy; ``"bfloat16"`` is faster on CPUs with
    AVX512-BF16 or AMX.

    Raises :class:`ModelNotFoundError` when the file is missing and :class:`ModelLoadError` when it
    is not a loadable image-to-image generator; both carry a one-line message.
    """
    import keras

    from tfdeblur.models import PRECISIONS, with_precision  # also registers the custom layers

    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    path = check_model_file(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for bad files; the user needs one line
        raise ModelLoadError(f"cannot load model {path}: {one_line(e)}") from None
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(f"{path} is not a generator (expected one image input and one image output)")
    shape_in, shape_out = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(shape_in) != 4 or shape_in[-1] != 3 or len(shape_out) != 4 or shape_out[-1] != 3:
        raise ModelLoadError(
            f"{path} is not a generator: input {shape_in}, output {shape_out} (expected [N, H, W, 3] both)"
        )
    try:
        return with_precision(model, precision)
    except Exception as e:  # noqa: BLE001  e.g. a layer that cannot be rebuilt from its config
        raise ModelLoadError(f"cannot run {path} in {precision}: {one_line(e)}") from None


def model_multiple(model) -> int:
    """The size multiple the generator pads its input to (1 if it has no ``pad_to_multiple`` layer)."""
    try:
        return int(model.get_layer("pad_to_multiple").multiple)
    except (ValueError, AttributeError):
        return 1


def min_input_size(model) -> int:
    """Smallest H and W the generator handles: its reflect paddings need a few pixels at the
    bottleneck. Smaller images are edge-padded up to this and cropped back."""
    return max(2 * model_multiple(model), 16)


# ------------------------------------------------------------------------------ deblur


def _to_float(images_uint8):
    return images_uint8.astype(np.float32) / 127.5 - 1.0


def _to_uint8(x):
    return np.rint(np.clip((np.asarray(x, np.float32) + 1.0) * 127.5, 0.0, 255.0)).astype(np.uint8)


def _run_model(model, x):
    import tensorflow as tf

    fn = getattr(model, "_tfdeblur_fn", None)
    if fn is None:
        # One graph for every input size (eager Keras spends ~1 ms of Python per layer: 4.6x
        # slower than the graph at 128x128 for the lean generator, measured side by side).
        fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        try:
            object.__setattr__(model, "_tfdeblur_fn", fn)
        except Exception:
            pass
    return fn(tf.constant(x)).numpy().astype(np.float32)


def deblur(model, image, tile: int | None = DEFAULT_TILE, overlap: int | None = None, batch_size: int = 4,
           cache_bytes: int = DEFAULT_CACHE_BYTES):
    """Deblur uint8 images with a generator.

    ``image``: uint8 ``[H, W, 3]`` (any H, W) or a batch ``[N, H, W, 3]`` of equal size; also
    ``[H, W]`` / ``[H, W, 1]`` grayscale and ``[H, W, 4]`` RGBA (alpha passed through). Returns
    uint8 of the same shape. Images larger than ``tile`` in either side are processed in tiles of
    ``tile`` pixels overlapping by ``overlap`` (default ``tile // 8``) with whole-image
    normalisation statistics (see the module docstring); ``tile=None`` or ``0`` never tiles.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"deblur expects uint8 images (0..255), got dtype {arr.dtype}")
    if arr.ndim == 2:
        return deblur(model, arr[..., None], tile, overlap, batch_size, cache_bytes)[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        rgb = np.repeat(arr, 3, axis=-1)
        out = deblur(model, rgb, tile, overlap, batch_size, cache_bytes)
        return _luma(out)[..., None]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        out = deblur(model, arr[..., :3], tile, overlap, batch_size, cache_bytes)
        return np.concatenate([out, arr[..., 3:]], axis=-1)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return deblur(model, arr[None], tile, overlap, batch_size, cache_bytes)[0]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"deblur expects [H, W, 3] or [N, H, W, 3] uint8 images, got shape {arr.shape}")
    n, h, w = arr.shape[:3]
    if n == 0 or h == 0 or w == 0:
        return arr.copy()
    batch_size = max(1, int(batch_size))

    # Tiny images: edge-pad up to the generator's minimum (its reflect paddings need room), crop back.
    lo = min_input_size(model)
    ph, pw = max(0, lo - h), max(0, lo - w)
    x = arr
    if ph or pw:
        x = np.pad(arr, [(0, 0), (0, ph), (0, pw), (0, 0)], mode="edge")
    hh, ww = x.shape[1:3]

    m = model_multiple(model)
    tile = _check_tile(tile, model)
    if tile is None or (_round_up(hh, m) <= tile and _round_up(ww, m) <= tile):
        outs = [_run_model(model, _to_float(x[i : i + batch_size])) for i in range(0, n, batch_size)]
        y = np.concatenate(outs)
    else:
        ov = _default_overlap(tile, m) if overlap is None else _round_up(max(0, int(overlap)), m)
        if ov >= tile // 2 + 1:
            raise ValueError(f"overlap={overlap} is too large for tile={tile} (at most tile / 2)")
        y = np.stack([_deblur_tiled(model, _to_float(x[i]), tile, ov, batch_size, cache_bytes) for i in range(n)])
    return _to_uint8(y[:, :h, :w, :])


def _luma(rgb):
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _round_up(v, m):
    return -(-int(v) // m) * m


def _default_overlap(tile, m):
    return _round_up(max(tile // 8, 2 * m), m)


def _check_tile(tile, model):
    if tile is None or int(tile) == 0:
        return None
    m = model_multiple(model)
    t = int(tile) // m * m
    lo = max(min_input_size(model), 4 * m)
    if t < lo:
        raise ValueError(f"tile={tile} is too small for this generator (at least {lo}, or 0 for no tiling)")
    return t


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Tile offsets covering ``length`` (a multiple of ``multiple``) with tiles of ``tile`` pixels
    overlapping by at least ``overlap``; offsets are multiples of ``multiple``, spread evenly."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    span = length - tile
    inner = {int(i * span / (n - 1) / multiple + 0.5) * multiple for i in range(n - 1)}
    return sorted({min(s, span) for s in inner} | {span})


def _ramps(starts, size):
    """Per tile, a 1-D blend weight. Over each overlap with a neighbour the weight is 0 on the
    outer quarter (a tile's border pixels are its least accurate), ramps linearly across the middle
    half, and is 1 beyond; the two neighbours' weights sum to 1 everywhere."""
    out = []
    for i, s in enumerate(starts):
        w = np.ones(size, np.float32)
        for o, flip in ((starts[i - 1] + size - s if i > 0 else 0, False),
                        (s + size - starts[i + 1] if i < len(starts) - 1 else 0, True)):
            if o <= 0:
                continue
            q = o // 4
            ramp = np.clip((np.arange(o, dtype=np.float32) - q + 0.5) / (o - 2 * q), 0.0, 1.0)
            if flip:
                w[size - o :] = np.minimum(w[size - o :], ramp[::-1])
            else:
                w[:o] = np.minimum(w[:o], ramp)
        out.append(np.maximum(w, 1e-6))  # never a zero weight sum, whatever the layout
    return out


def _cells(starts, size, total, m):
    """Disjoint core cells (tile-relative ``[a, b)``) that partition ``[0, total)``; boundaries
    sit mid-overlap, on multiples of ``m`` so they map to whole pixels at every network scale."""
    bounds = [0]
    for i in range(len(starts) - 1):
        mid = (starts[i + 1] + starts[i] + size) // 2 // m * m
        bounds.append(min(max(mid, starts[i + 1]), starts[i] + size))
    bounds.append(total)
    return [(bounds[i] - s, bounds[i + 1] - s) for i, s in enumerate(starts)]


class _Graph:
    """The generator's functional graph as a list of steps that can pause at normalisation layers."""

    def __init__(self, model):
        import keras

        from tfdeblur.models import FusedInstanceNorm

        if not hasattr(model, "_nodes_by_depth") or len(model.inputs) != 1 or len(model.outputs) != 1:
            raise TypeError("not a single-input functional model")
        self.input_id = id(model.inputs[0])
        self.output_id = id(model.outputs[0])
        available = {self.input_id}
        steps = []
        pending = []
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.operation is None or node.is_input:
                    continue
                pending.append(node)
        # Topological order (depth order already is one for a well-formed graph; keep it robust).
        while pending:
            progressed = False
            for node in list(pending):
                if all(id(t) in available for t in node.input_tensors):
                    steps.append(node)
                    available.update(id(t) for t in node.outputs)
                    pending.remove(node)
                    progressed = True
            if not progressed:
                raise TypeError("graph has nodes that cannot be computed from its input")
        if self.output_id not in available:
            raise TypeError("output not reachable")
        for node in steps:
            if isinstance(node.operation, keras.Model):
                raise TypeError("nested models are not supported by the graph walker")
        last_use = {}
        for i, node in enumerate(steps):
            for t in node.input_tensors:
                last_use[id(t)] = i
        self.steps = []
        self.norms = []  # (gamma, beta, epsilon, groups)
        for i, node in enumerate(steps):
            op = node.operation
            norm = None
            if isinstance(op, FusedInstanceNorm):
                norm = (op.gamma, op.beta, float(op.epsilon), int(op.gamma.shape[0]))
            elif isinstance(op, keras.layers.GroupNormalization) and op.axis in (-1, 3):
                norm = (op.gamma, op.beta, float(op.epsilon), int(op.groups))
            release = [tid for tid, last in last_use.items() if last == i and tid != self.output_id]
            index = None
            if norm is not None:
                index = len(self.norms)
                self.norms.append(norm)
            self.steps.append((node, index, release))

    def walk(self, x, stats):
        """Generator: run ``x`` through the graph. At each normalisation layer whose ``stats[k]`` is
        None it yields ``(k, input, live_bytes)`` and resumes once the caller has filled
        ``stats[k] = (mean, var)``; returns the output."""
        import keras
        import tensorflow as tf

        env = {self.input_id: tf.constant(x)}
        for node, k, release in self.steps:
            args, kwargs = node.arguments.fill_in(env)
            if k is not None:
                inp = tf.cast(args[0], tf.float32)
                if stats[k] is None:
                    live = sum(int(np.prod(t.shape)) * t.dtype.size for t in env.values())
                    yield k, inp, live
                out = self._normalise(k, inp, stats[k])
            else:
                out = node.operation(*args, **kwargs)
            for t, y in zip(node.outputs, keras.tree.flatten(out)):
                env[id(t)] = y
            for tid in release:
                env.pop(tid, None)
        return env[self.output_id].numpy().astype(np.float32)

    def _normalise(self, k, x, stats):
        import tensorflow as tf

        gamma, beta, eps, _ = self.norms[k]
        mean, var = stats
        inv = tf.math.rsqrt(tf.constant(var, tf.float32) + eps)
        if gamma is not None:
            inv = inv * tf.cast(gamma, tf.float32)
        shift = -tf.constant(mean, tf.float32) * inv
        if beta is not None:
            shift = shift + tf.cast(beta, tf.float32)
        return x * inv + shift

    def finish_stats(self, k, s1, s2, count):
        """Per-channel sums -> (mean, var) per channel, pooled over each group's channels."""
        groups = self.norms[k][3]
        c = s1.shape[0]
        g1 = s1.reshape(groups, c // groups).sum(1)
        g2 = s2.reshape(groups, c // groups).sum(1)
        n = count * (c // groups)
        mean = g1 / n
        var = np.maximum(g2 / n - mean**2, 0.0)
        return np.repeat(mean, c // groups).astype(np.float32), np.repeat(var, c // groups).astype(np.float32)


def _graph_of(model):
    cached = getattr(model, "_tfdeblur_graph", None)
    if cached is not None:
        return cached
    try:
        graph = _Graph(model)
    except Exception as e:  # unknown architecture: plain per-tile inference (approximate)
        print(f"warning: tiles use their own normalisation statistics ({one_line(e)})", file=sys.stderr)
        graph = False
    try:
        object.__setattr__(model, "_tfdeblur_graph", graph)
    except Exception:
        pass
    return graph


def _deblur_tiled(model, x, tile, overlap, batch_size, cache_bytes):
    """Float [-1, 1] ``[H, W, 3]`` -> float output, in tiles with whole-image normalisation."""
    m = model_multiple(model)
    h, w = x.shape[:2]
    hc, wc = _round_up(h, m), _round_up(w, m)
    if (hc, wc) != (h, w):  # what the generator's own PadToMultiple does, done once for the canvas
        x = np.pad(x, [(0, hc - h), (0, wc - w), (0, 0)], mode="reflect")
    th, tw = min(tile, hc), min(tile, wc)
    ys, xs = tile_starts(hc, th, overlap, m), tile_starts(wc, tw, overlap, m)
    wy, wx = _ramps(ys, th), _ramps(xs, tw)
    cy, cx = _cells(ys, th, hc, m), _cells(xs, tw, wc, m)
    tiles = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    groups = [tiles[i : i + batch_size] for i in range(0, len(tiles), batch_size)]

    acc = np.zeros((hc, wc, 3), np.float32)
    wsum = np.zeros((hc, wc, 1), np.float32)

    def batch(group):
        return np.stack([x[ys[i] : ys[i] + th, xs[j] : xs[j] + tw] for i, j in group])

    def blend(group, out):
        for (i, j), o in zip(group, out):
            wgt = (wy[i][:, None] * wx[j][None, :])[..., None]
            acc[ys[i] : ys[i] + th, xs[j] : xs[j] + tw] += o * wgt
            wsum[ys[i] : ys[i] + th, xs[j] : xs[j] + tw] += wgt

    graph = _graph_of(model)
    if graph is False:
        for group in groups:
            blend(group, _run_model(model, batch(group)))
        return (acc / wsum)[:h, :w]

    stats = [None] * len(graph.norms)
    gens = [None] * len(groups)
    done = [False] * len(groups)
    while not all(done):
        k_now, s1, s2, count, cached = None, None, None, 0, 0
        for g, group in enumerate(groups):
            if done[g]:
                continue
            if gens[g] is None:  # start (or restart, after a cache eviction) from the input
                gens[g] = graph.walk(batch(group), stats)
            try:
                k, a, live = next(gens[g])
            except StopIteration as stop:
                blend(group, stop.value)
                gens[g], done[g] = None, True
                continue
            k_now = k
            a = a.numpy()
            fy, fx = a.shape[1] / th, a.shape[2] / tw
            for (i, j), t in zip(group, a):
                (y0, y1), (x0, x1) = cy[i], cx[j]
                core = t[int(round(y0 * fy)) : int(round(y1 * fy)), int(round(x0 * fx)) : int(round(x1 * fx))]
                core = core.reshape(-1, core.shape[-1]).astype(np.float64)
                s1 = core.sum(0) if s1 is None else s1 + core.sum(0)
                s2 = (core * core).sum(0) if s2 is None else s2 + (core * core).sum(0)
                count += core.shape[0]
            cached += live
            if cached > cache_bytes:
                gens[g].close()
                gens[g] = None
        if k_now is not None:
            stats[k_now] = graph.finish_stats(k_now, s1, s2, count)
    return (acc / wsum)[:h, :w]


# ------------------------------------------------------------------------------ faces


def face_regions(faces, shape, margin: float = 0.25):
    """Margin-expanded, clipped integer regions ``(x0, y0, x1, y1)`` of detected faces.

    ``faces``: :class:`tfdeblur.detectors.Face` objects or ``[x1, y1, x2, y2]`` boxes; the box
    grows by ``margin`` times its longer side on every side.
    """
    return [region for region, _ in _face_boxes(faces, shape, margin)]


def _face_boxes(faces, shape, margin):
    """``[(region, inner)]``: the margin-expanded region and the box grown by half the margin."""
    h, w = shape[:2]
    out = []
    for f in faces:
        box = np.asarray(getattr(f, "box", f), np.float64)
        x1, y1, x2, y2 = box[:4]
        if not np.all(np.isfinite(box[:4])) or x2 <= x1 or y2 <= y1:
            continue
        pad = margin * max(x2 - x1, y2 - y1)

        def grow(p):
            return (max(0, int(math.floor(x1 - p))), max(0, int(math.floor(y1 - p))),
                    min(w, int(math.ceil(x2 + p))), min(h, int(math.ceil(y2 + p))))

        region = grow(pad)
        if region[2] > region[0] and region[3] > region[1]:
            out.append((region, grow(pad / 2)))
    return out


def _feather(region, inner, shape):
    """Blend mask over ``region``: 1 inside ``inner``, linear ramps to 0 at the region's edges
    (no ramp where the region touches the image border)."""
    x0, y0, x1, y1 = region
    ix0, iy0, ix1, iy1 = inner
    h, w = shape[:2]

    def axis(a0, a1, i0, i1, limit):
        n = a1 - a0
        v = np.ones(n, np.float32)
        left, right = max(0, i0 - a0), max(0, a1 - i1)
        if a0 > 0 and left > 0:
            v[:left] = (np.arange(left, dtype=np.float32) + 0.5) / (left + 0.5)
        if a1 < limit and right > 0:
            v[n - right :] = np.minimum(v[n - right :], ((np.arange(right, dtype=np.float32) + 0.5) / (right + 0.5))[::-1])
        return v

    return np.minimum.outer(axis(y0, y1, iy0, iy1, h), axis(x0, x1, ix0, ix1, w))


def deblur_faces(model, image, faces=None, detector=None, margin: float = 0.25, tile: int | None = DEFAULT_TILE,
                 batch_size: int = 4):
    """Deblur only the faces of a uint8 ``[H, W, 3]`` image: each face crop (box plus ``margin``)
    is deblurred and blended back with a feathered mask. Pixels outside the margin-expanded boxes
    are returned unchanged. ``faces`` defaults to MTCNN detections. Returns ``(image, regions)``.
    """
    rgb = np.asarray(image)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"deblur_faces expects a uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
    if faces is None:
        if detector is None:
            from tfdeblur.detectors import MTCNNDetector

            detector = MTCNNDetector()
        faces = detector.detect([rgb])[0]
    h, w = rgb.shape[:2]
    boxes = _face_boxes(faces, rgb.shape, margin)
    regions = [region for region, _ in boxes]
    if not regions:
        return rgb.copy(), []
    canvas = rgb.astype(np.float32)
    for (x0, y0, x1, y1), inner in boxes:
        # The model sees some extra context around the region; only the region is blended back.
        ctx = max(8, int(0.1 * max(x1 - x0, y1 - y0)))
        cx0, cy0, cx1, cy1 = max(0, x0 - ctx), max(0, y0 - ctx), min(w, x1 + ctx), min(h, y1 + ctx)
        out = deblur(model, rgb[cy0:cy1, cx0:cx1], tile=tile, batch_size=batch_size)
        out = out[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0].astype(np.float32)
        mask = _feather((x0, y0, x1, y1), inner, rgb.shape)[..., None]
        region = canvas[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1] = region + mask * (out - region)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), regions


# ------------------------------------------------------------------------------ CLI

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")


def _error(msg) -> int:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return EXIT_FAILED


def _source_is_gray(path):
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.mode in _GRAY_MODES
    except Exception:
        return False


def deblur_command(args) -> int:
    """``tfdeblur deblur INPUT... -o OUT_DIR``: 0 all done, 1 some inputs skipped, 2 usage error or nothing done."""
    from tfdeblur.imageio import ImageError, ImageTooLarge, SkipLog, find_images, read_image, write_image

    if args.batch_size is None or args.batch_size < 1:
        return _error("--batch-size must be at least 1")
    if args.tile is not None and args.tile < 0:
        return _error("--tile must be 0 (no tiling) or a positive size")
    max_mp = getattr(args, "max_megapixels", None)
    if max_mp is not None and not (max_mp > 0 and math.isfinite(max_mp)):
        return _error("--max-megapixels must be a positive number")
    max_pixels = None if max_mp is None else int(max_mp * 1e6)
    try:
        check_model_file(args.model)
    except ModelLoadError as e:
        return _error(e)
    # refuse early; the folder itself is made by the first image written (write_image), so a
    # run that writes nothing leaves nothing behind
    msg = output_folder_problem(args.out_dir, create=False)
    if msg:
        return _error(f"output folder: {msg}")

    log = SkipLog()
    items = find_images(args.inputs, log=log)
    # Outputs keep each input's path relative to its folder argument (files: just the name).
    seen, jobs = {}, []
    for path, rel in items:
        dest = os.path.join(args.out_dir, rel)
        key = os.path.normcase(os.path.realpath(dest))
        if key == os.path.normcase(os.path.realpath(path)):
            log.skip(path, "output would overwrite the input (choose another output folder)")
        elif key in seen:
            log.skip(path, f"same output path as {seen[key]}")
        else:
            seen[key] = path
            jobs.append((path, dest))
    if not jobs:
        return _error("no images to deblur (inputs: .jpg, .jpeg, .png, .webp, .bmp files or folders)")

    try:
        model = load_model(args.model, getattr(args, "precision", "float32"))
        tile = _check_tile(args.tile, model)
    except (ModelLoadError, ValueError) as e:
        return _error(e)
    detector = None
    if args.faces:
        try:
            from tfdeblur.detectors import MTCNNDetector

            detector = MTCNNDetector()
        except Exception as e:
            return _error(f"cannot start the MTCNN face detector: {one_line(e)}")

    import keras

    bar = keras.utils.Progbar(len(jobs), unit_name="image", verbose=0 if getattr(args, "quiet", False) else 1)
    counts = {"done": 0, "seen": 0, "no_face": 0}
    pending = []  # same-size images that fit one tile, batched through the model together

    def advance(path=None, reason=None):
        if reason is not None:
            if getattr(bar, "_dynamic_display", False) and counts["seen"]:
                print(file=sys.stdout, flush=True)  # end the progress line before the skip line
            log.skip(path, reason)
        counts["seen"] += 1
        bar.update(counts["seen"])

    def finish(entry, out):
        path, dest, _, alpha, gray = entry
        try:
            _write(write_image, dest, out, alpha, gray)
        except OSError as e:
            return advance(path, f"cannot write {dest}: {one_line(e)}")
        counts["done"] += 1
        advance()

    def flush():
        entries = list(pending)
        pending.clear()
        if not entries:
            return
        try:
            outs = deblur(model, np.stack([e[2] for e in entries]), tile=tile, batch_size=args.batch_size)
        except Exception as e:  # e.g. out of memory: one line per input, keep going
            for entry in entries:
                advance(entry[0], f"deblurring failed: {one_line(e)}")
            return
        for entry, out in zip(entries, outs):
            finish(entry, out)

    limit = tile or (1 << 62)
    for path, dest in jobs:
        try:
            rgb, alpha = read_image(path, max_pixels=max_pixels)
        except ImageTooLarge as e:
            advance(path, f"{e}; downscale it or raise --max-megapixels")
            continue
        except ImageError as e:
            advance(path, e)
            continue
        entry = (path, dest, rgb, alpha, alpha is None and _source_is_gray(path))
        if detector is not None:
            try:
                out, regions = deblur_faces(model, rgb, detector=detector, tile=tile, batch_size=args.batch_size)
            except Exception as e:
                advance(path, f"deblurring failed: {one_line(e)}")
                continue
            counts["no_face"] += not regions
            finish(entry, out)
            continue
        if pending and (pending[0][2].shape != rgb.shape or len(pending) >= args.batch_size):
            flush()
        pending.append(entry)
        if max(rgb.shape[:2]) > limit:  # tiled: on its own
            flush()
    flush()

    done = counts["done"]
    if done == 0:  # nothing done is an error, said in one line like every other CLI's
        return _error(f"no images deblurred: none of the {len(jobs)} input image(s) could be used "
                      f"({len(log)} skipped)")
    note = f" ({counts['no_face']} without a detected face, left unchanged)" if args.faces and counts["no_face"] else ""
    print(f"deblurred {done} image{'s' * (done != 1)} into {args.out_dir}{note}; skipped {len(log)}",
          file=sys.stderr, flush=True)
    return EXIT_PARTIAL if len(log) else EXIT_OK


def _write(write_image, dest, rgb, alpha, gray):
    ext = os.path.splitext(dest)[1].lower()
    if ext in (".jpg", ".jpeg", ".bmp"):
        alpha = None  # no alpha channel in these formats (an RGBA input is only kept as PNG/WebP)
    if gray and ext in (".png", ".jpg", ".jpeg", ".bmp"):
        write_image(dest, _luma(rgb), alpha)
    else:
        write_image(dest, rgb, alpha)
