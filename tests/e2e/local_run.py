"""`python -m local.run` as a real subprocess, as a developer's shell starts it, on a data folder of the
test's own (never `.local/pg-run`, which is what the developer's `make run` serves)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

if TYPE_CHECKING:
    from local.database import DatabaseUrls

REPO = Path(__file__).resolve().parents[2]
SCRATCH = REPO / ".local" / "scratch"


def scratch_data_dir(name: str) -> Iterator[Path]:
    """A data folder of one test's own, under this checkout's `.local/scratch/` (not under the system's
    temporary folder: every pytest session that starts resets `/tmp/pytest-of-<user>` to mode 0700, which
    would lock PostgreSQL, running as its own user, out of a folder there), removed afterwards."""
    folder = SCRATCH / f"{name}-{uuid.uuid4().hex[:8]}"
    try:
        yield folder / "pg"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def stack_environment(http_port: int, ws_port: int) -> Iterator[None]:
    """What `make run` sets in the environment before any handler starts (the worker processes of both APIs
    inherit it), for a local stack on these ports: the management endpoint the fan-out posts to (and Lambda's
    Invoke API the staff broadcast is started through, beside it), the JWKS the
    WebSocket authorizer verifies staff tokens with, and AWS credentials to sign with. Put back afterwards."""
    from local.jwt_keys import AUDIENCE, ISSUER

    settings = {
        "WEBSOCKET_MANAGEMENT_ENDPOINT": f"http://127.0.0.1:{ws_port}",
        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{ws_port}",
        "BROADCAST_FUNCTION_NAME": "BroadcastFunction",
        "AUTOMATIONS_FUNCTION_NAME": "AutomationsFunction",
        "JWT_JWKS_URL": f"http://127.0.0.1:{http_port}/.well-known/jwks.json",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def developer_env(data_dir: Path, port: int) -> dict[str, str]:
    """As from a developer's shell: none of the Lambda settings the test process gave itself, and the
    embedded PostgreSQL, as on a fresh laptop, in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_") and k != "DATABASE_URL"}
    env["PORT"] = str(port)
    env["WS_PORT"] = str(free_port())  # never the 3001 of a developer's make run
    env["MERCHANT_PORT"] = str(free_port())  # nor its 3002
    env["SUPPORT_DATA_DIR"] = str(data_dir)
    return env


def make(data_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`make <args>` as from a developer's shell (developer_env) on `data_dir`: its output captured, never checked."""
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        env=developer_env(data_dir, free_port()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def held_run_database(name: str) -> Iterator[tuple[Path, DatabaseUrls]]:
    """make run's database in a scratch folder of `name` (never `.local/pg-run`), its server held open meanwhile so
    that a make target joins it, as it joins a running `make run`: the folder and the URLs."""
    from local.database import database

    for folder in scratch_data_dir(name):
        with database("support", purpose="run", data_dir=folder, quiet=True, server_url="") as urls:
            yield folder, urls


def json_documents(output: str) -> list[Any]:
    """Every JSON object printed, whether or not a newline follows it."""
    decoder, found, at = json.JSONDecoder(), [], output.find("{")
    while at != -1:
        document, end = decoder.raw_decode(output, at)
        found.append(document)
        at = output.find("{", end)
    return found


def readme_bash_step(heading: str) -> str:
    """The README's `bash` block of the step headed `heading` as one bash script, as a reader runs it after step 1's
    `sh` block: strict mode, step 1's BASE, TOKEN and H lines, then the block."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
    tour = next(block for block in blocks if "BASE=" in block)  # step 1's
    setup = [line for line in tour.splitlines() if re.match(r"^(BASE|TOKEN|H)=", line)]
    assert len(setup) == 3, setup
    step = text.index(heading)
    block = re.search(r"^```bash\n(.*?)^```", text[step:], flags=re.S | re.M)
    assert block is not None, f"the README's step {heading!r} has no bash block"
    return "set -euo pipefail\n" + "\n".join(setup) + "\n" + block.group(1)


def run_bash(script: str, data_dir: Path, run: LocalRun) -> subprocess.CompletedProcess[str]:
    """`script` in one bash against `run`, as from a developer's shell (developer_env, BASE the run's): its output
    captured, never checked."""
    return subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        env=developer_env(data_dir, run.port) | {"BASE": run.base},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


class LocalRun:
    """One `python -m local.run`; `base` and `token` come from the curl it prints when it is ready."""

    def __init__(self, data_dir: Path, port: int | None = None, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.env = developer_env(data_dir, self.port) | (env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.run", *args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.strip().startswith("curl "):
                self._ready.set()
        self._ready.set()  # ended: wait_ready() reports what it printed

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 120) -> LocalRun:
        self._ready.wait(timeout)
        curls = [line.strip() for line in self.lines if line.strip().startswith("curl ")]
        assert curls, "local.run printed no curl:\n" + self.output
        args = shlex.split(curls[0])
        self.auth = dict([args[args.index("-H") + 1].split(": ", 1)])
        self.url = args[-1]
        self.base = self.url.removesuffix("/api/support/tickets")
        return self

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}/api/support{path}", headers=self.auth, timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


def postgres_serving(data_dir: Path) -> list[psutil.Process]:
    """The PostgreSQL processes whose working directory is `data_dir`."""
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "postgres" and Path(process.cwd()) == data_dir.resolve():
                found.append(process)
        except psutil.Error:
            continue
    return found


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def wait_until_gone(data_dir: Path, timeout: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := postgres_serving(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
