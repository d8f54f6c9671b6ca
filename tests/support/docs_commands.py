"""Every command the README and docs/ tell a reader to type, and how the tests cover it.

Commands are the lines of ```sh blocks (a trailing backslash continues a line; a `#` comment at
the end is dropped). COVERAGE says, for each, one of:
- RUN: run by test_pipeline_e2e's documented-commands test in the quick profile's workspace
  (exit 0 expected);
- FAILS: run there too, and documented to fail (exit 1 with one `error:` line);
- "elsewhere: <where>": run by another test or by CI itself;
- "not run: <why>": needs what a test machine has not (a GPU for hours, the network, a cluster).
A new documented command matches no pattern and fails test_docs until it is classified, so the
docs cannot gain a command nobody runs.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN, FAILS = "run", "fails"

COVERAGE: list[tuple[str, str]] = [
    # the two commands and CI
    (r"python3 -m venv \.venv && .* dvc repro$", "elsewhere: .ci/run builds .venv the same way; "
     "`dvc repro` of the study's params is the GPU run (not run: hours on a CPU)"),
    (r"\. \.venv/bin/activate && python -m pytest -q$", "elsewhere: .ci/run runs it"),
    (r"bash \.ci/run$", "elsewhere: CI itself; test_bench checks the script's steps"),
    # profiles
    (r"python -m squeeze profile quick --data \S+$", "elsewhere: the quick_run fixture"),
    (r"python -m squeeze profile quick --data \S+ -- -S model\.arch=torchvision:mobilenet_v2$",
     "elsewhere: test_arch_pipeline's slow test runs this profile and override through DVC "
     "(pytest -m slow: minutes on 2 cores, left out of CI)"),
    (r"python -m pytest -m slow tests/e2e/test_arch_pipeline\.py$", "not run: it is the slow "
     "tests themselves (minutes each); docs/your-model.md quotes their numbers"),
    (r"python -m squeeze profile quick$", "elsewhere: the quick_run fixture (synthetic data when "
     "the archive is absent)"),
    (r"python -m squeeze profile quick -- -n my-name$", "elsewhere: the quick_run fixture"),
    (r"python -m squeeze profile quick structured-fp32 methods/recal$", "elsewhere: test_cli_check "
     "prints its command; the methods e2e test runs the same stack through the queue"),
    (r"python -m squeeze profile cpu.*", "not run: about 80 minutes on 2 cores"),
    (r"python -m squeeze profile quick --print$", RUN),
    (r"python -m squeeze profile quick -- --queue .*", RUN),
    (r"python -m squeeze check -S 'prune\.structured\.amounts=\[0,0\.1,1\.2\]'$", FAILS),
    (r"python -m squeeze check -S model\.arch=torchvision:nonexistent_net$", FAILS),
    (r"python -m squeeze check\b.*", RUN),
    (r"python -m squeeze compare\b.*", RUN),
    (r"git checkout HEAD -- params\.yaml$", RUN),
    # DVC experiments, metrics and plots
    (r"dvc exp run --queue .*", RUN),
    (r"dvc queue status$", RUN),
    (r"dvc queue start$", "not run: starts the queued full-scale runs (hours on a CPU)"),
    (r"dvc exp show .*", RUN),
    (r"dvc exp apply EXP_A$", RUN),
    (r"dvc (plots|metrics) diff EXP_A EXP_B$", RUN),
    (r"dvc plots show$", RUN),
    (r"dvc exp run -S 'quantize\.qat_types=\[w4a4\]'$", "elsewhere: test_pipeline_e2e's low-bit "
     "test sets the same params (and a 1-epoch QAT) and runs dvc repro in the quick workspace"),
    (r"dvc exp run -S data\.source=folder -S data\.path=\S+$", RUN),
    (r"dvc repro -f prepare$", RUN),
    (r"python tools/offline_plots\.py$", "not run: fetches vega from the npm registry"),
    (r"dvc plots show --html-template local/dvc-plots-offline\.html$",
     "not run: needs the template offline_plots.py fetches"),
    (r"dvc config --local plots\.html_template .*", "not run: needs the template offline_plots.py "
     "fetches"),
    # the result
    (r"python -m squeeze recommend .*", RUN),
    (r"python -m squeeze export models/quantized/\S+ --format onnx --out model\.onnx$", RUN),
    (r"python -m squeeze inspect .*", RUN),
    # architecture, levers, benchmarks
    (r"python tools/depgraph\.py --write$", RUN),
    (r"python -m squeeze methods (list|table)$", RUN),
    (r"python -m squeeze methods run .*", "elsewhere: test_pipeline_e2e runs one method through "
     "the queue on the quick base; on the cpu base each method is minutes of fine-tuning"),
    (r"python tools/bench\.py --data \S+ --quick$", "elsewhere: test_bench runs bench.py's "
     "parts on tiny settings"),
    (r"python tools/bench\.py .*", "not run: minutes to an hour of timing; never in CI"),
    (r"pip download torch-pruning .*", "not run: needs the package index"),
    (r"python tools/lowbit_libs\.py .*", "not run: needs brevitas, not a squeeze requirement; "
     "test_bench checks its one-line error without it"),
    (r"bash tools/gpu-check\.sh ARCHIVE \S+ --paths --budget-seconds \d+$",
     "elsewhere: test_bench runs it with --tiny on the CPU; the real run needs a GPU"),
    # many machines
    (r"dvc remote (add|modify) .*", "elsewhere: test_remote (a local directory and an SSH "
     "server); S3 and a team mount are not here"),
    (r"dvc push --run-cache$", "elsewhere: test_remote"),
    (r"dvc repro --pull$", "elsewhere: test_remote and the sharded fresh clone"),
    (r"python -m squeeze shard plan --workers \d+$", RUN),
    (r"python -m squeeze shard run --workers N --worker I --wave W$",
     "elsewhere: the sharded e2e tests run it for every wave"),
    (r"python -m squeeze shard slurm .*", "not run: submits to Slurm; test_shard checks the text"),
    (r"for w in .*kubectl apply.*", "not run: needs a Kubernetes cluster; test_shard checks "
     "the manifests"),
    (r"for i in .*git worktree add.*", "not run: one worktree per GPU"),
    (r"for w in .*shard run.*", "not run: one worker per GPU"),
    (r"python tools/shard_sim\.py .*", "elsewhere: the sharded e2e fixture calls it"),
]


def documented() -> list[tuple[str, str]]:
    """(page, command) for every command line in a ```sh block, in the order of the pages."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), flags=re.S):
            command = ""
            for line in block.splitlines():
                text = line.rstrip()
                if text.endswith("\\"):
                    command += text[:-1].strip() + " "
                    continue
                command = strip_comment(command + text.strip())
                if command:
                    found.append((page.name, re.sub(r"\s+", " ", command)))
                command = ""
    return found


def strip_comment(line: str) -> str:
    """The line without a trailing ` # comment` (a # inside quotes is kept)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def coverage(command: str) -> str:
    matches = [how for pattern, how in COVERAGE if re.fullmatch(pattern, command)]
    if not matches:
        raise LookupError(f"documented command not classified in tests/support/docs_commands.py: {command}")
    return matches[0]


def runnable() -> list[tuple[str, str]]:
    """(command, RUN or FAILS) in the order a reader meets them, each once."""
    seen, out = set(), []
    for _, command in documented():
        how = coverage(command)
        if how in (RUN, FAILS) and command not in seen:
            seen.add(command)
            out.append((command, how))
    return out
