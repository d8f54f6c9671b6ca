"""Step export: recommend a model under the budget, export it, record what was exported."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import names
from ..deploy import export, recommend
from ..config import ExportConfig
from ..fsutil import write_json

SUFFIX = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}


def run(cfg: ExportConfig, report: Path, data_path: Path, out: Path) -> dict:
    """out: a folder, rewritten whole: the exported file and model.json."""
    chosen = recommend.recommend(recommend.read_report(report), cfg.budget, cfg.score)
    root = Path(report).resolve().parent.parent  # the workspace: checkpoints are relative to it
    checkpoint = root / chosen["checkpoint"]
    quant = names.parse(chosen["model"])[2]
    fmt = cfg.format if cfg.format != "auto" else export.SUPPORTED[quant][0]
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        checked = export.export(checkpoint, fmt, out / SUFFIX[fmt], data_path, cfg.images)
        record = {"budget": cfg.budget, "score_name": cfg.score, **chosen,
                  "export": {**checked, "checkpoint": chosen["checkpoint"],
                             # beside model.json: the folder is written under a temporary
                             # name and moved into place when the stage succeeds (cli.run)
                             "out": SUFFIX[fmt]}}
        write_json(out / "model.json", record)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # nothing half-written for DVC to see
        raise
    return record
