"""Train a deblurring GAN: ``python train.py --gan lsgan [--config configs/cpu.yaml] ...``.

Only parses flags (tfdeblur/commands/train.py); the logic lives in ``tfdeblur.training.train``.
"""
import sys

from tfdeblur.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
