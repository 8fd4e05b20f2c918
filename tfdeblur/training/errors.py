"""Why training stopped: every error's str() is a one-line message for the user."""

from __future__ import annotations

import signal

__all__ = ["TrainingError", "TrainingInterrupted", "NonFiniteLoss"]


class TrainingError(RuntimeError):
    """Training cannot go on; str() is a one-line message for the user."""


class TrainingInterrupted(TrainingError):
    def __init__(self, signum, step):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved, resume with --resume")
        self.signum = signum


class NonFiniteLoss(TrainingError):
    pass
