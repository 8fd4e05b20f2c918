"""tfdeblur: GAN-based deblurring of motion-blurred face photos (TensorFlow / Keras 3).

>>> import tfdeblur
>>> model = tfdeblur.load_model()          # the shipped generator
>>> restored = tfdeblur.deblur(model, image_uint8_hw3)

``import tfdeblur`` does not import TensorFlow: the names below load their module on first use
(the command line's ``--help`` stays instant). Loading a model goes through
:func:`tfdeblur.inference.load_model`, which imports :mod:`tfdeblur.models` first, so the custom
layers are registered with Keras whenever a generator file is read.
"""
import os as _os

# Keep TF's C++ chatter off the console; the command line goes further (tfdeblur.quiet), but never
# overrides a level the user set.
_TF_LOG_LEVEL_IS_OURS = "TF_CPP_MIN_LOG_LEVEL" not in _os.environ
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_LAZY = {"deblur": "tfdeblur.inference", "load_model": "tfdeblur.inference", "deblur_faces": "tfdeblur.faces",
         "deblur_frame": "tfdeblur.faces"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfdeblur' has no attribute {name!r}")


__all__ = ["deblur", "load_model", "deblur_faces", "deblur_frame", "__version__"]
