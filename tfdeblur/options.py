"""Option values the library and the command line share, free of NumPy and TensorFlow so that
``--help`` stays instant (the precisions and GAN losses live in :mod:`tfdeblur.config`)."""

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")  # TFLite export (tfdeblur.export.tflite_model)

# Images kept at their own size (deblur, blur --size 0, evaluate --ground-truth) above this are
# refused from the header: bigger ones need several GB and minutes
DEFAULT_MAX_MEGAPIXELS = 64.0
