"""DVC remotes as a team uses them: push data, a model and the run-cache from one clone; a fresh
clone (no dvc.lock, as `main` has none) restores the stage from the run-cache instead of running it.

Two remotes: a local directory, and a real SSH server (asyncssh's SFTP server, started by the
test on localhost with generated keys; dvc-ssh is the client). The SSH part is skipped, with the
reason, where the server cannot start or the plugin is missing.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchlib import child_env

ENV = child_env()

STAGE = ("import sys, hashlib; data = open('data/images.bin', 'rb').read(); "
         "open('model.bin', 'wb').write(hashlib.sha256(data).digest() * 1000); "
         "open('runs.log', 'a').write('ran\\n')")


def sh(*cmd: str, cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, text=True, capture_output=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def project(root: Path) -> Path:
    """A git + DVC repository with a data file tracked by DVC and one stage (a "training")."""
    root.mkdir(parents=True)
    sh("git", "init", "-q", cwd=root)
    sh("git", "config", "user.email", "t@squeeze.invalid", cwd=root)
    sh("git", "config", "user.name", "t", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    (root / "data").mkdir()
    (root / "data" / "images.bin").write_bytes(os.urandom(200_000))
    sh("dvc", "add", "-q", "data/images.bin", cwd=root)
    (root / "train.py").write_text(STAGE + "\n")
    sh("dvc", "stage", "add", "-q", "-n", "train", "-d", "train.py", "-d", "data/images.bin",
       "-o", "model.bin", f"{sys.executable} train.py", cwd=root)
    (root / ".gitignore").write_text("runs.log\n")
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "project", cwd=root)
    return root


def round_trip(tmp_path: Path, url: str, configure=()) -> dict:
    """Push from one clone, then restore in a fresh one; seconds of each step."""
    origin = project(tmp_path / "origin")
    seconds = {}

    def remote(repo: Path) -> None:
        sh("dvc", "remote", "add", "--local", "-d", "team", url, cwd=repo)
        for key, value in configure:
            sh("dvc", "remote", "modify", "--local", "team", key, value, cwd=repo)

    remote(origin)
    sh("dvc", "repro", "-q", cwd=origin)
    assert (origin / "runs.log").read_text() == "ran\n"
    t = time.perf_counter()
    sh("dvc", "push", "--run-cache", cwd=origin)
    seconds["push"] = time.perf_counter() - t

    fresh = tmp_path / "fresh"
    sh("git", "clone", "-q", str(origin), str(fresh), cwd=tmp_path)
    remote(fresh)
    t = time.perf_counter()
    sh("dvc", "pull", "data/images.bin.dvc", cwd=fresh)  # data, as dvc add tracked it
    seconds["pull"] = time.perf_counter() - t
    assert (fresh / "data" / "images.bin").read_bytes() == (origin / "data" / "images.bin").read_bytes()
    t = time.perf_counter()
    out = sh("dvc", "repro", "--pull", cwd=fresh)  # no dvc.lock: the run-cache has the model
    seconds["repro_from_run_cache"] = time.perf_counter() - t
    assert "Stage 'train' is cached - skipping run" in out, out
    assert not (fresh / "runs.log").exists()  # the stage's command never ran here
    assert (fresh / "model.bin").read_bytes() == (origin / "model.bin").read_bytes()
    return seconds


def test_local_directory_remote_carries_data_models_and_the_run_cache(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    round_trip(tmp_path, str(store))
    assert (store / "runs").is_dir()  # the run-cache entries themselves


SSH_SERVER = r'''
import asyncio, sys
import asyncssh

async def main(root, host_key, client_pub):
    server = await asyncssh.create_server(
        asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[host_key],
        authorized_client_keys=client_pub,
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root), allow_scp=False)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:4]))
'''


@pytest.fixture
def ssh_server(tmp_path):
    pytest.importorskip("dvc_ssh", reason="dvc-ssh (the SSH remote plugin) is not installed")
    asyncssh = pytest.importorskip("asyncssh", reason="asyncssh is not installed")
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("host", "client"):
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(keys / name))
        key.write_public_key(str(keys / f"{name}.pub"))
    root = tmp_path / "sftp-root"
    (root / "store").mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", SSH_SERVER, str(root), str(keys / "host"),
                             str(keys / "client.pub")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        pytest.skip(f"the SSH server did not start: {proc.stderr.read()[-500:]}")
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
        pass
    yield int(port), keys / "client", root / "store"
    proc.kill()
    proc.wait()


def test_ssh_remote_carries_data_models_and_the_run_cache(tmp_path, ssh_server):
    port, keyfile, store = ssh_server
    url = f"ssh://squeeze@127.0.0.1:{port}/store"
    seconds = round_trip(tmp_path / "work", url, configure=[("keyfile", str(keyfile))])
    assert (store / "runs").is_dir() and any((store / "files").rglob("*"))
    print("ssh round trip seconds:", {k: round(v, 2) for k, v in seconds.items()})
    assert all(s < 60 for s in seconds.values()), seconds
