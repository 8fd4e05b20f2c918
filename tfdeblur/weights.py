"""Weight transfer between generators built by :func:`tfdeblur.models.build_generator`.

Every layer the builder makes has a name, so weights move layer by layer, by name: a generator
with fewer or more ResNet blocks (or, with ``grow``, more channels) can start from a trained one.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["copy_weights_by_name", "grow_weight"]

# The last norm of each ResNet block (basic / separable: ``_b_norm``, inverted: ``_project_norm``):
# with its scale at zero the block adds nothing, so a new block starts as the identity. (No ReLU
# follows it, so the zero scale still gets gradients.)
_BLOCK_OUTPUT_NORM = re.compile(r"^res\d+_(b|project)_norm$")


def _input_axis(layer, weight) -> int | None:
    """The axis of ``weight`` that runs over the layer's input channels, for layers that mix
    channels (None for per-channel weights: norms, biases, depthwise kernels)."""
    import keras

    if weight is getattr(layer, "pointwise_kernel", None):
        return 2
    if isinstance(layer, (keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)):
        return None
    if isinstance(layer, keras.layers.Conv2DTranspose):  # kernel (h, w, out, in)
        return 3 if weight is layer.kernel else None
    if isinstance(layer, keras.layers.Conv2D):
        return 2 if weight is layer.kernel else None
    return None


def grow_weight(small, initial, input_axis):
    """``small`` in the leading corner of an array like ``initial``; the weights from new input
    channels (along ``input_axis``, None for per-channel weights) are zero, so new channels
    cannot change the old ones; the rest keep ``initial``."""
    out = np.array(initial, copy=True)
    if input_axis is not None:
        index = [slice(None)] * out.ndim
        index[input_axis] = slice(small.shape[input_axis], None)
        out[tuple(index)] = 0.0
    out[tuple(slice(0, n) for n in small.shape)] = small
    return out


def _is_wider(want, got) -> bool:
    """Every target weight shape is at least the source's, axis by axis."""
    return len(want) == len(got) and all(
        len(a) == len(b) and all(x >= y for x, y in zip(a, b)) for a, b in zip(want, got))


def copy_weights_by_name(source, target, grow: bool = False):
    """Copy weights layer by layer, matching layer names: (copied, fresh, unused) layer names.

    Lets a generator with fewer or more ResNet blocks start from a trained one (the builder names
    every layer). Layers of ``target`` missing from ``source`` keep their initial weights; a layer
    whose weight shapes differ (another ngf, say) is an error, not a silent restart.

    ``grow=True`` starts a wider and/or deeper generator as the same function as ``source``
    (Net2Net-style, Chen et al. 2016): a wider layer gets the source weights in its leading
    channels; new channels compute fresh features from the old ones, but every weight *from* a new
    channel starts at zero, so they change nothing until training moves those weights (they get
    gradients at once, since the new features are not zero). New ResNet blocks start as the
    identity: their last norm's scale is zero. Only narrowing is still an error.
    """
    by_name = {layer.name: layer for layer in source.layers if layer.weights}
    copied, fresh = 0, []
    for layer in target.layers:
        if not layer.weights:
            continue
        src = by_name.pop(layer.name, None)
        if src is None:
            fresh.append(layer.name)
            if grow and _BLOCK_OUTPUT_NORM.match(layer.name):
                layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
            continue
        weights = src.get_weights()
        want = [tuple(w.shape) for w in layer.weights]
        got = [w.shape for w in weights]
        if want != got:
            if not (grow and _is_wider(want, got)):
                raise ValueError(f"layer {layer.name!r} has weight shapes {got} in the source, {want} here")
            weights = [grow_weight(w, v.numpy(), _input_axis(layer, v)) for w, v in zip(weights, layer.weights)]
        layer.set_weights(weights)
        copied += 1
    if not copied:
        raise ValueError("no layer of the source matches this generator by name")
    return copied, fresh, sorted(by_name)
