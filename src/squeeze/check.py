"""`python -m squeeze check [--profile NAME] [--data ARCHIVE] [-S key=value ...]`: validate the
params a run would use, before DVC writes any of them into params.yaml.

`dvc exp run -S key=value` first writes the overrides into params.yaml, then runs the first stage,
which validates the file: a bad value is reported only after the workspace's params.yaml has
been edited (and reformatted). This applies the same overrides to an in-memory copy and runs the
same whole-file validation (config.validate) in about a second, touching no file, so a run can be
refused before anything changes. `python -m squeeze profile` calls it first.

The -S grammar is DVC's (Hydra's) for the cases a params file needs: `key=value` sets an existing
key, `+key=value` adds a new one, `++key=value` sets or adds, `~key` removes; the value is YAML
(`[0, 0.5]`, `0.3`, `int8`, `{a: 1}`).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable, Mapping, Sequence


from . import profiles
from .config import ARCH_DEFAULT, ConfigError, dotted_delete, dotted_get, dotted_set, load_params, validate

_ABSENT = object()


def parse_set(text: str) -> tuple[str, str, object]:
    """One -S argument -> (operation, dotted key, value): '=' set, '+' add, '++' set or add,
    '~' remove (value None)."""
    if text.startswith("~"):
        key, op, value = text[1:].partition("=")[0], "~", None
    else:
        op = "++" if text.startswith("++") else "+" if text.startswith("+") else "="
        key, eq, raw = text[len(op.rstrip("=")):].partition("=")
        if not eq:
            raise ConfigError(f"-S {text!r}: expected key=value (or +key=value, ++key=value, ~key)")
        value = _hydra_value(text, raw)
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise ConfigError(f"-S {text!r}: {key!r} is not a dotted key such as train.epochs")
    return op, key, value


def _hydra_value(text: str, raw: str) -> object:
    """A value as DVC reads it: Hydra's override grammar, not YAML's (`1e-3` and `5.6e6` are
    numbers there and strings to PyYAML, `yes` is a string, `{width:16}` is {width: 16} where
    YAML would read one key "width:16")."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        value = OverridesParser.create().parse_override(f"key={raw}").value()
    except Exception:  # Hydra's grammar errors come in several types; all mean the same here
        raise ConfigError(f"-S {text!r}: DVC cannot read the value {raw!r} (Hydra's override "
                          "grammar: e.g. 0.5, [0, 0.5], {width_mult:0.5}, auto)") from None
    return _plain(value)


def _plain(value: object) -> object:
    """Hydra's parsed value as the stages will read it: plain Python, and each string as it comes
    back after DVC writes it into params.yaml (ruamel, YAML 1.2) and squeeze reads the file
    (PyYAML, YAML 1.1): `yes` is written bare and read back as true."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        import yaml
        from dvc.utils.serialize import dumps_yaml

        return yaml.safe_load(dumps_yaml({"value": value}))["value"]
    return value


def apply_sets(params: Mapping, sets: Iterable[str]) -> dict:
    """A copy of params with the -S overrides applied, refused as DVC would refuse them."""
    out = copy.deepcopy(dict(params))
    for text in sets:
        op, key, value = parse_set(text)
        current = dotted_get(out, key, _ABSENT)
        present = current is not _ABSENT
        if op == "=" and not present:
            raise ConfigError(f"-S {text!r}: params.yaml has no key {key}; check its spelling "
                              f"(`+{key}=...` adds a new key)")
        if isinstance(current, Mapping) and isinstance(value, Mapping) and op != "~":
            # DVC (Hydra) merges a mapping into a mapping; `=` may not add keys to it
            new = sorted(set(value) - set(current))
            if op == "=" and new:
                raise ConfigError(f"-S {text!r}: DVC adds no key to {key} this way; use "
                                  f"+{key}.{new[0]}={value[new[0]]} (a -S per key) or "
                                  f"++{key}={text.partition('=')[2]}")
            dotted_set(out, key, {**current, **value})
            continue
        if op == "+" and present:
            raise ConfigError(f"-S {text!r}: {key} already exists; use {key}=... to change it")
        if op == "~":
            if not present:
                raise ConfigError(f"-S {text!r}: params.yaml has no key {key} to remove")
            dotted_delete(out, key)
            continue
        dotted_set(out, key, value)
    return out


def sets_in(dvc_args: list[str]) -> list[str]:
    """The -S/--set-param values among `dvc exp run` arguments."""
    found, args = [], list(dvc_args)
    for i, arg in enumerate(args):
        if arg in ("-S", "--set-param") and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith("--set-param="):
            found.append(arg.split("=", 1)[1])
    return found


def check(params_path: str | Path = "params.yaml", profile: str | Sequence[str] | None = None,
          data: str | None = None, sets: Iterable[str] = (),
          directory: Path = profiles.PROFILE_DIR) -> dict:
    """The params a run would use, validated: params.yaml, then the profiles' overrides in order
    (and --data), then the -S overrides. Returns them; raises ConfigError (or ArchError: a
    model.arch other than the study's is built once, so an unknown name fails here)."""
    overrides = profiles.with_data(profiles.stack(profile, directory) if profile else {}, data)
    applied = [f"{key}={text}" for key, text in profiles.set_pairs(overrides)] + list(sets)
    params = apply_sets(load_params(params_path), applied)
    model = validate(params).model
    if model.arch != ARCH_DEFAULT:  # the study's needs no build (nor torch imported)
        from .models import check_arch

        check_arch(model.arch, model.kwargs, model.num_classes, params["data"]["image_size"])
    return params
