"""CI's metrics report: the quick profile at the base revision and at HEAD, diffed, as markdown.

    python tools/ci_metrics.py --out ci-summary.md [--base REV] [--data ARCHIVE] [--work DIR]

In a scratch clone of this repository (the working tree's commit; uncommitted edits are not in
it), it runs the quick profile as two DVC experiments: `ci-base` at the base revision and
`ci-head` at HEAD, sharing one DVC cache, so every stage whose code and params did not change
between the two is a run-cache hit in the second run rather than a recomputation (with a
shared remote, `dvc pull --run-cache` first makes even the base run free). The markdown holds
`dvc params diff` and `dvc metrics diff` between them, the stages HEAD reran, and HEAD's
figures (paths under --work, which CI uploads or attaches).

With $DVC_REMOTE_URL set (credentials in the remote's usual env vars), the scratch clone uses
that remote: run-cache fetched first, pushed after.
--base defaults to $CI_BASE_REF when set (a pull request's target), else HEAD~1; a base that
does not exist or has no dvc.yaml (before the pipeline existed) gives a report of HEAD alone.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from benchlib import child_env  # noqa: E402
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def sh(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed ({proc.returncode}): "
                 f"{(proc.stdout + proc.stderr).strip()[-3000:]}")
    return proc


def environment() -> dict:
    return child_env(SQUEEZE_DEVICE=os.environ.get("SQUEEZE_DEVICE", "cpu"))


def run_profile(work: Path, rev: str, name: str, data: str | None, env: dict) -> tuple[float, list[str]]:
    """The quick profile at `rev` as experiment `name`: seconds, and the stages it ran."""
    sh(["git", "checkout", "-q", "--force", rev], work, env)
    sh(["dvc", "checkout", "-q", "--force"], work, env, check=False)
    cmd = [sys.executable, "-m", "squeeze", "profile", "quick"]
    if data:
        cmd += ["--data", data]
    start = time.perf_counter()
    # the source at `rev` (not this checkout's) runs the stages: the module comes from `work`
    extra = ["--pull"] if env.get("DVC_REMOTE_URL") else []
    proc = sh(cmd + ["--", "-n", name, *extra], work, {**env, "PYTHONPATH": str(work / "src")})
    return time.perf_counter() - start, re.findall(r"Running stage '([^']+)'", proc.stdout)


def report(base: str | None, head: str, work: Path, env: dict, timings: dict) -> str:
    lines = [f"## squeeze CI: quick profile metrics ({head[:10]} vs "
             f"{base[:10] if base else 'no base'})", ""]
    for name, (seconds, ran) in timings.items():
        lines.append(f"- `{name}`: {seconds:.0f} s, {len(ran)} stages ran"
                     + (f" ({', '.join(ran[:8])}{', ...' if len(ran) > 8 else ''})" if ran else ""))
    lines.append("")
    if base:
        for what in ("params", "metrics"):
            diff = sh(["dvc", what, "diff", "ci-base", "ci-head", "--md"], work, env).stdout.strip()
            rows = diff.splitlines()[2:]  # under the table's header and rule
            lines += [f"### dvc {what} diff", "", diff if rows else f"No {what} changed.", ""]
    else:
        shown = sh(["dvc", "metrics", "show", "--md"], work, env).stdout.strip()
        lines += ["### dvc metrics show (no base to diff against)", "", shown, ""]
    figures = sorted((work / "reports" / "figures").glob("*.png"))
    lines += ["### Figures (HEAD)", ""] + [f"- {f}" for f in figures]
    return "\n".join(lines) + "\n"


def base_revision(given: str | None, env: dict) -> str | None:
    rev = given or os.environ.get("CI_BASE_REF") or "HEAD~1"
    proc = sh(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], ROOT, env,
              check=False)
    if proc.returncode != 0:
        return None
    sha = proc.stdout.strip()
    has = sh(["git", "cat-file", "-e", f"{sha}:dvc.yaml"], ROOT, env, check=False)
    return sha if has.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the markdown file to write")
    parser.add_argument("--base", help="the revision to diff against (default: $CI_BASE_REF "
                        "or HEAD~1)")
    parser.add_argument("--data", help="CIFAR-10 archive (default: ../shared/data/... if present)")
    parser.add_argument("--work", help="the scratch clone (default: a new temporary folder)")
    args = parser.parse_args()
    env = environment()
    data = args.data or (str(DEFAULT_ARCHIVE) if DEFAULT_ARCHIVE.is_file() else None)
    head = sh(["git", "rev-parse", "HEAD"], ROOT, env).stdout.strip()
    base = base_revision(args.base, env)
    if args.work:
        work = Path(args.work)
        if work.exists():
            sys.exit(f"error: --work {work} exists; give a new folder")
    else:
        import tempfile
        work = Path(tempfile.mkdtemp(prefix="squeeze-ci-")) / "repo"
    sh(["git", "clone", "-q", "--no-checkout", str(ROOT), str(work)], ROOT, env)
    for key, value in (("user.name", "squeeze-ci"), ("user.email", "ci@squeeze.invalid")):
        sh(["git", "config", key, value], work, env)
    sh(["git", "checkout", "-q", head], work, env)  # a .dvc/ for the remote's local config
    remote = env.get("DVC_REMOTE_URL")
    if remote:  # a team's shared remote: its run-cache turns unchanged stages into restores
        sh(["dvc", "remote", "add", "--local", "-d", "ci", remote], work, env)
        sh(["dvc", "fetch", "--run-cache"], work, env)
    timings = {}
    if base:
        timings["ci-base"] = run_profile(work, base, "ci-base", data, env)
    timings["ci-head"] = run_profile(work, head, "ci-head", data, env)
    if remote:
        sh(["dvc", "push", "--run-cache"], work, env)
    text = report(base, head, work, env, timings)
    Path(args.out).write_text(text)
    print(text)
    print(f"scratch clone with HEAD's outputs: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
