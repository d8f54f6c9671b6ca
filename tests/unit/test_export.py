"""deploy.export's writer, in process (the CLI and the export stage run in tests/e2e)."""
from __future__ import annotations

import zipfile

import torch

from squeeze import models
from squeeze.deploy.export import _write


def test_a_torchscript_archive_is_not_named_after_its_temporary_file(tmp_path):
    """The export is written through a temporary name (atomic_path). torch.jit.save given a path
    names the archive's inner folder after the file, so two exports of one model differed in
    bytes (a random temporary name inside); written through a buffer, the folder is `archive`
    whatever the file is called. (Two traces in one process differ anyway, by torch's name
    mangling, so this checks the folder's name, not two files' bytes.)"""
    torch.manual_seed(0)
    model = models.build(models.ResNetSpec.resnet18(width=4)).eval()
    x = torch.randn(3, 3, 32, 32)
    path = tmp_path / ".model.pt.a1b2c3.tmp"
    out = _write(model, "fp32", "torchscript", x, path)
    folders = {name.split("/")[0] for name in zipfile.ZipFile(path).namelist()}
    assert folders == {"archive"}
    with torch.no_grad():
        assert torch.allclose(out, model(x), atol=1e-5)
