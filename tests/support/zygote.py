"""A fork server for stage scripts: one clean interpreter imports torch and squeeze once, then
forks a child per run that executes stages/<x>.py as `__main__` with its own cwd, argv, stdout
and stderr, and exits with the status the interpreter would give. Starting torch takes 5-15 s on
the shared test machines; a fork takes milliseconds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


ZYGOTE = r"""
import json, os, runpy, signal, sys, traceback
import torch, squeeze.steps.baseline, squeeze.steps.quantized  # imported once for every forked run
torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # its first use imports torch._dynamo

def run(request):
    os.chdir(request["cwd"])
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
    signal.alarm(request["timeout"])
    exec(request["setup"], {})
    sys.argv = request["argv"]
    runpy.run_path(sys.argv[0], run_name="__main__")

for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            run(json.loads(line))
            code = 0
        except SystemExit as stop:  # what the interpreter makes of sys.exit(...)
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()  # what the interpreter prints for an uncaught exception
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Zygote:
    """A clean interpreter with squeeze imported; `run` forks it to run one stage script."""

    def __init__(self, folder: Path, env: dict):
        self.folder, self.runs = folder, 0
        self.stderr = folder / "zygote.stderr"
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=folder, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr.open("w"))

    def run(self, argv: list, cwd: Path, setup: str = "", timeout: int = 120):
        self.runs += 1
        out, err = (self.folder / f"{self.runs}.{name}" for name in ("stdout", "stderr"))
        argv = [str(a) for a in argv]
        request = {"argv": argv, "cwd": str(cwd), "stdout": str(out), "stderr": str(err),
                   "setup": setup, "timeout": timeout}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        status = self.proc.stdout.readline()
        assert status, f"zygote died: {self.stderr.read_text()}"
        return subprocess.CompletedProcess(argv, int(status), out.read_text(), err.read_text())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
