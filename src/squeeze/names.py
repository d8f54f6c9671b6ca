"""Names of grid points: the readable model name, and the file stem DVC gives a stage's output.

Apart from steps (which needs torch) so that the report names models without importing torch.
"""
from __future__ import annotations

from typing import Callable


def model_name(structured, unstructured=None, quant=None) -> str:
    """`s0.5`, `s0.5-u0.3`, `s0.5-u0.3-int8` (amounts in shortest form: 0, not 0.0)."""
    return _join(lambda amount: f"{amount:g}", structured, unstructured, quant)


def file_stem(structured, unstructured=None, quant=None) -> str:
    """The stem that dvc.yaml's `s${item.structured}-u${item.unstructured}-${item.quant}` gives.

    DVC spells an amount as str() of the value params.yaml holds, so pass the values as loaded
    (0 -> "s0", 0.5 -> "s0.5"; a user who writes 0.0 gets "s0.0"), not floats made from them.
    """
    return _join(str, structured, unstructured, quant)


def _join(spell: Callable[[object], str], structured, unstructured, quant) -> str:
    parts = [f"s{spell(structured)}"]
    if unstructured is not None:
        parts.append(f"u{spell(unstructured)}")
    if quant is not None:
        parts.append(quant)
    return "-".join(parts)
