"""Real services for the tests, started and stopped by them: a throwaway PostgreSQL (Debian's server
binaries) and an ``mlflow server`` on 127.0.0.1.

Where a service's programs are missing the test is skipped, unless ``HARNESS_REQUIRE_SERVICES=1``
(CI sets it: there a missing service fails the run instead of passing it by skipping).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing(what: str) -> None:
    if os.environ.get("HARNESS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (HARNESS_REQUIRE_SERVICES=1: CI must provide it; see .ci/run)")
    pytest.skip(what)


def postgres_bin() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    return Path(found).resolve().parent if found else None  # createdb and pg_ctl sit beside it


@contextmanager
def postgres_database(name: str = "mlflow"):
    """A PostgreSQL server of its own on 127.0.0.1 with an empty database ``name``; yields its
    SQLAlchemy URI. PostgreSQL refuses to run as root: as root it runs as ``nobody``."""
    bindir = postgres_bin()
    if bindir is None:
        missing("PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql")
    as_user: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(workdir, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    data = workdir / "data"
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "harness", "--auth=trust", "-E", "UTF8")
        for _attempt in range(3):  # a port free when chosen can be taken before the server binds it
            port = free_port()
            started = subprocess.run(
                [
                    *as_user,
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(workdir / "log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {port} -h 127.0.0.1 -k {workdir}",
                    "start",
                ],
                capture_output=True,
                text=True,
            )
            if started.returncode == 0:
                break
        else:
            pytest.fail(f"PostgreSQL did not start:\n{(workdir / 'log').read_text()[-3000:]}")
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "harness", name)
        yield f"postgresql+psycopg2://harness@127.0.0.1:{port}/{name}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
            )
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def mlflow_server(backend_uri: str, workdir: Path, extra: list[str] = (), env: dict | None = None):
    """A real ``mlflow server`` on 127.0.0.1 serving its artifacts from ``workdir``; yields its URL."""
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    for _attempt in range(3):
        port = free_port()
        log_path = workdir / f"server-{port}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [
                    mlflow,
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    backend_uri,
                    "--artifacts-destination",
                    str(workdir / "server_artifacts"),
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, **(env or {})},
            )
        url = f"http://127.0.0.1:{port}"
        try:
            if wait_until_healthy(proc, url):
                yield url
                return
            text = log_path.read_text()
            if "in use" not in text.lower():
                pytest.fail(f"mlflow server did not start:\n{text[-3000:]}")
        finally:
            stop(proc)
    pytest.fail("mlflow server: three ports in a row were taken before it could bind them")


class RestartableServer:
    """An ``mlflow server`` that a test stops and starts again on the same port (an outage)."""

    def __init__(self, backend_uri: str, workdir: Path, extra: list[str] = (), env: dict | None = None):
        self.backend_uri, self.workdir, self.extra, self.env = backend_uri, workdir, list(extra), env or {}
        self.port, self.proc = free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> RestartableServer:
        mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        log_path = self.workdir / f"server-{self.port}.log"
        with open(log_path, "a") as log:
            self.proc = subprocess.Popen(
                [
                    mlflow,
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    self.backend_uri,
                    "--artifacts-destination",
                    str(self.workdir / "server_artifacts"),
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **self.env},
                start_new_session=True,
            )  # its own process group: stop() ends the server's workers too
        if not wait_until_healthy(self.proc, self.url):
            stop(self.proc)
            pytest.fail(f"mlflow server did not start on port {self.port}:\n{log_path.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        """Down for real: every process of the server ended, its port refusing connections."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 20
        while _answers(self.port):
            assert time.monotonic() < deadline, "the stopped server still answers"
            time.sleep(0.2)


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until_healthy(proc, url: str, timeout_s: float = 120) -> bool:
    """True once the server answers its health check; False if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK":
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
