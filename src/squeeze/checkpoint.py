"""Checkpoints: plain dicts of tensors and JSON-like values, written atomically, loaded with
`torch.load(..., weights_only=True)`. Nothing here unpickles arbitrary objects.

A model checkpoint holds: format, kind, state_dict, spec (architecture widths), config, epoch.
Modules are never pickled; a model is rebuilt from its spec (see models.from_state).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from . import models
from .errors import SqueezeError
from .fsutil import atomic_path

FORMAT = "squeeze/1"


class CheckpointError(SqueezeError, ValueError):
    """A checkpoint that cannot be used; the message is one line for the user."""


def save(path: str | Path, payload: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # to a file object: given a path, torch records the (random) temporary file name inside
        # the archive, and the same weights would hash differently on every run
        torch.save({"format": FORMAT, **payload}, fh)


def load(path: str | Path, kind: str | None = None) -> dict:
    """Load and check a checkpoint. Truncated files, non-checkpoints and pickled code all end in
    a CheckpointError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # storage/quantized-tensor deprecation notices
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's weights-only loader raises many types on damaged input
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        unsafe = [line for line in lines if "Unsupported global" in line or "GLOBAL" in line]
        if unsafe:
            raise CheckpointError(f"{path}: refused to load: it holds objects other than plain "
                                  f"weights, which are never unpickled ({unsafe[0][:120]})") from None
        first = lines[0][:120] if lines else ""
        raise CheckpointError(f"{path}: not a readable checkpoint: truncated or corrupt "
                              f"({type(err).__name__}: {first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a squeeze checkpoint (no format marker {FORMAT!r})")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path}: is a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    return payload


def save_model(path, model, config: dict, epoch: int, kind: str = "model",
               preprocess: dict | None = None) -> None:
    """Weights, architecture, the settings that made them, epoch, and `preprocess` (the
    normalisation, classes and image size the model was trained with: batches.DeviceData's).
    No metrics: those are files of the stage that measured them."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save(path, {"kind": kind, "state_dict": state, "spec": model.spec.to_dict(),
                "config": config, "epoch": epoch, "preprocess": preprocess})


def load_model(path, payload: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild a float model from a model checkpoint -> (model on CPU, payload). `payload`:
    the file already loaded (`load`), so it is not read twice."""
    if payload is None:
        payload = load(path, kind="model")
    try:
        spec = models.spec_from_dict(payload.get("spec") or {})
        model = models.from_state(spec, payload["state_dict"])
    except models.ArchError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: architecture spec does not match its weights ({err})") from None
    return model, payload
