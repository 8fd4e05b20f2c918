"""tfdeblur: GAN-based deblurring of motion-blurred face photos (TensorFlow / Keras 3).

>>> import tfdeblur
>>> model = tfdeblur.load_model()          # the shipped generator
>>> restored = tfdeblur.deblur(model, image_uint8_hw3)
"""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter off the console

__version__ = "0.1.0"

from tfdeblur import models as _models  # noqa: E402,F401  registers the custom layers with Keras


def __getattr__(name):
    # deblur / load_model live in tfdeblur.inference; imported lazily to keep `import tfdeblur` light.
    if name in ("deblur", "load_model"):
        from tfdeblur import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'tfdeblur' has no attribute {name!r}")


__all__ = ["deblur", "load_model", "__version__"]
