"""Training a deblurring GAN (``python train.py``).

* :mod:`~tfdeblur.training.loop` - :func:`train`: data, the step loop, the summary;
* :mod:`~tfdeblur.training.build` - :func:`build_models` (shared with the benchmark), strategy
  and precision;
* :mod:`~tfdeblur.training.checkpoints` - checkpoints, validation and the generator files;
* :mod:`~tfdeblur.training.errors` - why a run stopped (one-line messages).
"""

from tfdeblur.training.build import build_models, make_strategy
from tfdeblur.training.checkpoints import Checkpoints, init_models_from
from tfdeblur.training.errors import NonFiniteLoss, TrainingError, TrainingInterrupted
from tfdeblur.training.loop import learning_rate_at, resolve_data_dir, train

__all__ = ["TrainingError", "TrainingInterrupted", "NonFiniteLoss", "resolve_data_dir", "train", "build_models",
           "make_strategy", "Checkpoints", "init_models_from", "learning_rate_at"]
