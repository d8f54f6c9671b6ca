"""`dvc exp run` for `python -m squeeze profile`: params.yaml put back when the run fails, and
DVC's one known-harmless warning counted instead of printed once per output.

Why the warning appears: `dvc exp run` checks out every declared output before it reproduces
(dvc/repo/experiments/executor/base.py), and in a workspace with no dvc.lock (main commits none)
no output has a hash yet, so DVC logs `No file hash info found for '<path>'. It won't be
created.` for each of them: 54 lines for the quick profile's grid, 156 for the full one. Nothing
is wrong and nothing is skipped; the stages then produce every output.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

NO_HASH = re.compile(r"^WARNING: No file hash info found for '.*'\. It won't be created\.\s*$")


def _index_entry(path: str) -> str:
    """git's index line for `path` (mode, blob, stage), '' when it is not tracked."""
    done = subprocess.run(["git", "ls-files", "-s", "--", path], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _restore_index(entry: str, path: str) -> None:
    """Put back the index entry `dvc exp run` staged over (it `git add`s params.yaml)."""
    if entry and _index_entry(path) != entry:
        mode, blob = entry.split()[:2]
        subprocess.run(["git", "update-index", "--cacheinfo", f"{mode},{blob},{path}"],
                       capture_output=True)


def run(command: list[str], params_path: str = "params.yaml") -> int:
    """Run `command` (a `dvc exp run`), stderr filtered of NO_HASH lines; on a non-zero exit,
    params.yaml's bytes and git index entry are restored to what they were before."""
    path = Path(params_path)
    before, entry = path.read_bytes(), _index_entry(params_path)
    hidden = 0
    try:
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=1)
        for line in proc.stderr:
            if NO_HASH.match(line):
                hidden += 1
                continue
            sys.stderr.write(line)
            sys.stderr.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        code = 130
    if hidden:
        print(f"(hid {hidden} DVC warnings 'No file hash info found': a workspace without "
              "dvc.lock has no output hashes to check out yet; harmless, see docs/experiments.md)",
              file=sys.stderr, flush=True)
    if code != 0 and path.read_bytes() != before:
        path.write_bytes(before)
        _restore_index(entry, params_path)
        print(f"params.yaml restored to what it was before this run (exit {code})",
              file=sys.stderr, flush=True)
    return code
