"""Names of grid points: the readable model name, and the file stem DVC gives a stage's output.

Apart from steps (which needs torch) so that the report names models without importing torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

KINDS = ("structured", "unstructured", "models")  # the metrics folder of each grid stage


def model_name(structured, unstructured=None, quant=None) -> str:
    """`s0.5`, `s0.5-u0.3`, `s0.5-u0.3-int8` (amounts in shortest form: 0, not 0.0)."""
    return _join(lambda amount: f"{amount:g}", structured, unstructured, quant)


def file_stem(structured, unstructured=None, quant=None) -> str:
    """The stem that dvc.yaml's `s${item.structured}-u${item.unstructured}-${item.quant}` gives.

    DVC spells an amount as str() of the value params.yaml holds, so pass the values as loaded
    (0 -> "s0", 0.5 -> "s0.5"; a user who writes 0.0 gets "s0.0"), not floats made from them.
    """
    return _join(str, structured, unstructured, quant)


def parse(name: str) -> tuple[float, float | None, str | None]:
    """A model name back to (structured, unstructured, quant): `s0.5-u0.3-int8` -> (0.5, 0.3,
    "int8"); `s0.5` -> (0.5, None, None). A ValueError names a string that is not one."""
    parts = name.split("-")
    try:
        if not 1 <= len(parts) <= 3 or parts[0][:1] != "s" or \
                (len(parts) > 1 and parts[1][:1] != "u"):
            raise ValueError
        structured = float(parts[0][1:])
        unstructured = float(parts[1][1:]) if len(parts) > 1 else None
    except ValueError:
        raise ValueError(f"{name!r} is not a model name (s<amount>[-u<amount>[-<type>]])") from None
    return structured, unstructured, parts[2] if len(parts) > 2 else None


def metrics_file(directory, structured, unstructured=None, quant=None) -> Path:
    """The metrics file of a grid point's stage: structured/s0.5.json, unstructured/s0.5-u0.3.json,
    models/s0.5-u0.3-int8.json (pass the amounts as params.yaml holds them)."""
    kind = KINDS[(unstructured is not None) + (quant is not None)]
    return Path(directory) / kind / f"{file_stem(structured, unstructured, quant)}.json"


def _join(spell: Callable[[object], str], structured, unstructured, quant) -> str:
    parts = [f"s{spell(structured)}"]
    if unstructured is not None:
        parts.append(f"u{spell(unstructured)}")
    if quant is not None:
        parts.append(quant)
    return "-".join(parts)
