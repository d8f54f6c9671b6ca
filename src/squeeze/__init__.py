"""squeeze: a reproducible DVC pipeline that trains a CIFAR-10 ResNet-18 and compresses it.

Public API (loaded on first use, so that pipeline stages never import it):
squeeze.load(path) -> model, squeeze.preprocess(images, model) -> batch, squeeze.classes(model).
"""
import importlib

__version__ = "0.1.0"
__all__ = ["load", "preprocess", "classes"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("squeeze.deploy.api"), name)
    raise AttributeError(f"module 'squeeze' has no attribute {name!r}")
