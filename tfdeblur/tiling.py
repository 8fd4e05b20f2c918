"""Tiled inference with whole-image normalisation statistics (used by :func:`tfdeblur.inference.deblur`).

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
import sys

import numpy as np

__all__ = ["UnsupportedGraph", "round_up", "default_overlap", "tile_starts", "graph_of", "deblur_tiled"]


class UnsupportedGraph(TypeError):
    """The generator's graph cannot be walked layer by layer (e.g. a nested or multi-input model)."""


def round_up(v, m):
    return -(-int(v) // m) * m


def default_overlap(tile, m):
    return round_up(max(tile // 8, 2 * m), m)


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
            raise UnsupportedGraph("not a single-input functional model")
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
                raise UnsupportedGraph("graph has nodes that cannot be computed from its input")
        if self.output_id not in available:
            raise UnsupportedGraph("output not reachable")
        for node in steps:
            if isinstance(node.operation, keras.Model):
                raise UnsupportedGraph("nested models are not supported by the graph walker")
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


def graph_of(model):
    """The model's :class:`_Graph`, cached on the model; False for an architecture the walker
    cannot run (tiles then use their own normalisation statistics, said once on stderr)."""
    cached = getattr(model, "_tfdeblur_graph", None)
    if cached is not None:
        return cached
    try:
        graph = _Graph(model)
    except UnsupportedGraph as e:
        print(f"warning: tiles use their own normalisation statistics ({e})", file=sys.stderr)
        graph = False
    object.__setattr__(model, "_tfdeblur_graph", graph)  # not tracked by Keras
    return graph


def deblur_tiled(model, x, tile, overlap, multiple, batch_size, cache_bytes, run_batch):
    """Float [-1, 1] ``[H, W, 3]`` -> float output, in tiles with whole-image normalisation.

    ``multiple``: the generator's size multiple; ``run_batch(float batch) -> float output`` runs
    the generator as a whole (used when its graph cannot be walked).
    """
    m = multiple
    h, w = x.shape[:2]
    hc, wc = round_up(h, m), round_up(w, m)
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

    graph = graph_of(model)
    if graph is False:
        for group in groups:
            blend(group, run_batch(batch(group)))
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
