"""`python -m squeeze compare [EXP ...]`: the experiments side by side on one screen, from DVC's
own `dvc exp show --json`: the params that differ between them and the headline metrics
(reports/metrics.json), accuracies in percent with the test set's noise, ties called ties.

Why not only `dvc exp show --only-changed`: DVC always shows the committed (HEAD) row, whose
params.yaml is the study's full-scale settings, never run on a small machine; every key a profile
overrides differs from it, so two quick-profile experiments that differ in one param still show
~18 param columns, and every data dependency (checkpoints, metrics folder) as a hash column: about
1,900 characters a line. This compares the experiments with each other, not with HEAD.
"""
from __future__ import annotations

import json
import subprocess
from typing import Any, Iterable, Mapping, Sequence

from ..errors import SqueezeError

METRICS_FILE = "reports/metrics.json"
# headline keys shown (tradeoff.headline), accuracies as percentages
ACCURACIES = ("base_acc", "acc_at_4x", "acc_at_16x", "acc_at_64x", "front_auc")
OTHERS = ("base_score", "front", "train_min")
MAX_VALUE = 24  # characters of a param value before it is cut


class CompareError(SqueezeError):
    """Nothing to compare; the message is one line."""


def dvc_experiments(repo: str = ".") -> list:
    done = subprocess.run(["dvc", "exp", "show", "--json", "--no-pager"], cwd=repo,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise CompareError("`dvc exp show --json` failed: " + " ".join(done.stderr.split())[:300])
    return json.loads(done.stdout)


def flatten(tree: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def rows_of(shown: Sequence[Mapping]) -> list[dict]:
    """One row per experiment (name, flat params, headline metrics); the committed rows only
    where they carry metrics (a commit whose pipeline ran)."""
    rows = []
    for entry in shown:
        if entry.get("rev") == "workspace":
            continue  # the workspace holds the last experiment run or applied: a duplicate
        candidates = [(entry.get("name") or entry["rev"][:7], entry.get("data"))]
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                candidates.append((rev.get("name") or rev["rev"][:7], rev.get("data")))
        for name, data in candidates:
            metrics = ((data or {}).get("metrics") or {}).get(METRICS_FILE, {}).get("data")
            if not metrics:
                continue
            params = flatten((data.get("params") or {}).get("params.yaml", {}).get("data", {}))
            rows.append({"name": name, "params": params, "metrics": metrics})
    return rows


def _value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    text = text.replace('"', "")
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 1] + "…"


def table(rows: Sequence[Mapping], names: Iterable[str] = ()) -> str:
    names = list(names)
    if names:
        missing = [n for n in names if n not in {r["name"] for r in rows}]
        if missing:
            known = ", ".join(r["name"] for r in rows) or "none"
            raise CompareError(f"no experiment {missing[0]!r} with results; known: {known}")
        rows = [r for r in rows if r["name"] in names]
    if not rows:
        raise CompareError("no experiment with reports/metrics.json yet: run one first, e.g. "
                           "`python -m squeeze profile quick`")
    keys = sorted({k for r in rows for k in r["params"]})
    changed = [k for k in keys if len({json.dumps(r["params"].get(k)) for r in rows}) > 1]
    header = ["experiment", *changed, *(f"{m}%" for m in ACCURACIES), *OTHERS]
    lines = []
    for r in rows:
        m = r["metrics"]
        lines.append([r["name"], *(_value(r["params"].get(k)) for k in changed),
                      *("—" if m.get(a) is None else f"{100 * m[a]:.1f}" for a in ACCURACIES),
                      *("—" if m.get(o) is None else f"{m[o]:g}" for o in OTHERS)])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
            for line in (header, *lines)]
    return "\n".join([*text, *footer(rows)])


def footer(rows: Sequence[Mapping]) -> list[str]:
    """What a reader needs to read the numbers: the noise, and which columns are ties."""
    noise = [r["metrics"].get("ci95") for r in rows if r["metrics"].get("ci95")]
    if not noise:
        return []
    half = max(noise)
    spreads = {a: _spread(rows, a) for a in ACCURACIES if a != "front_auc"}
    ties = [a for a, spread in spreads.items() if spread is not None and spread <= half]
    lines = [f"accuracies: test-set %, 95% interval about ±{100 * half:.1f} points; "
             "a difference within that is a tie"]
    if len(rows) > 1 and ties:
        lines.append("ties across these experiments: " + ", ".join(ties))
    if not changed_any(rows):
        lines.append("these experiments have the same params")
    return lines


def changed_any(rows: Sequence[Mapping]) -> bool:
    return len({json.dumps(r["params"], sort_keys=True) for r in rows}) > 1


def _spread(rows: Sequence[Mapping], key: str) -> float | None:
    values = [r["metrics"].get(key) for r in rows if r["metrics"].get(key) is not None]
    return (max(values) - min(values)) if len(values) > 1 else None
