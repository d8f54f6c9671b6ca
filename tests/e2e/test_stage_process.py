"""A stage as DVC starts it: a new Python process from the stage script, in any environment."""
from __future__ import annotations

from depgraph import ROOT


def test_a_stage_runs_its_own_checkouts_code_whatever_squeeze_is_installed(tmp_path):
    """dvc.yaml hashes this checkout's src/ as a stage's deps, so that is the code the stage must
    run, even where the environment's `squeeze` is another checkout (an editable install of a
    clone beside this one): a decoy package first on PYTHONPATH is never imported."""
    import os
    import subprocess
    import sys

    decoy = tmp_path / "decoy" / "squeeze"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy squeeze was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(decoy.parent)}
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "check_params.py"), "--params",
                           str(ROOT / "params.yaml"), "--out", str(tmp_path / "valid.txt")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "valid.txt").read_text() == "valid\n"
