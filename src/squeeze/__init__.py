"""squeeze: a reproducible DVC pipeline that trains a CIFAR-10 ResNet-18 and compresses it."""

__version__ = "0.1.0"
