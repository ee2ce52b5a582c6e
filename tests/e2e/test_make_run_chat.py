"""The live chat `make run` invites a newcomer to try: the two printed commands, a visitor of the demo shop and
the demo desk's agent, in two terminals, talk through the WebSocket API of a real `python -m local.run`."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.local_run import REPO, LocalRun, scratch_data_dir

pytestmark = pytest.mark.e2e


class Terminal:
    """One of the printed commands, run as a person would, typing into it."""

    def __init__(self, command: str) -> None:
        args = shlex.split(command)
        assert args[0] == ".venv/bin/python"
        self.proc = subprocess.Popen(
            [sys.executable, *args[1:]],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared:\n{''.join(self.lines)}")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def quit(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # Ctrl-D
        return self.proc.wait(timeout=30)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    yield from scratch_data_dir("chat")


def printed_commands(run: LocalRun) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("Demo widget key:" in line for line in run.lines):
        time.sleep(0.1)
    printed = {
        role: [line.strip() for line in run.lines if f"-m local.chat {role}" in line] for role in ("visitor", "agent")
    }
    assert all(printed.values()), "no terminal chat commands:\n" + run.output
    return {role: lines[0] for role, lines in printed.items()}


def test_the_two_printed_commands_chat_in_real_time(data_dir: Path) -> None:
    run = LocalRun(data_dir).wait_ready()
    try:
        commands = printed_commands(run)

        agent = Terminal(commands["agent"])
        agent.wait_for('"type": "agent.status"')
        agent.wait_for('"type": "chat.assigned"')  # the demo visitor who was waiting in the queue
        visitor = Terminal(commands["visitor"])
        visitor.wait_for('"type": "chat.started"')
        agent.wait_for("Terminal visitor")  # the visitor's chat, assigned to him at once

        visitor.type("Hello from the terminal")
        agent.wait_for("Hello from the terminal")
        agent.type("Hi! How can I help?")
        visitor.wait_for("Hi! How can I help?")
        visitor.type("/end")
        agent.wait_for('"type": "chat.ended"')

        assert (visitor.quit(), agent.quit()) == (0, 0)
    finally:
        assert run.stop() == 0, run.output


def test_every_run_prints_the_commands_and_the_demo_key_follows_the_shop_port(data_dir: Path) -> None:
    """The second run on a desk whose Alan the first run's agent client made available still prints both
    commands; and the demo shop on any MERCHANT_PORT is a page the demo key allows (it allowed only 8080)."""
    first = LocalRun(data_dir).wait_ready()
    try:
        agent = Terminal(printed_commands(first)["agent"])
        agent.wait_for('"status": "available"')
        assert agent.quit() == 0
    finally:
        assert first.stop() == 0, first.output

    second = LocalRun(data_dir).wait_ready()  # on other ports, a MERCHANT_PORT of its own among them
    try:
        commands = printed_commands(second)
        shops = [f"http://localhost:{run.env['MERCHANT_PORT']}" for run in (first, second)]
        assert f"--origin {shops[1]} " in commands["visitor"]
        key = re.search(r"--widget-key (\S+)", commands["visitor"])
        assert key, commands["visitor"]
        assert re.search(rf"^ *curl .*-X PATCH .*/api/support/widgets/{key[1]}$", second.output, re.M)
        for shop in shops:  # this run's shop, and the first's (a make run beside it keeps its own)
            reply = httpx.post(
                f"{second.base}/api/support/widget/session",
                json={"widgetKey": key[1]},
                headers={"Origin": shop},
                timeout=10,
            )
            assert reply.status_code == 201, (shop, reply.text)
        page = httpx.get(f"{shops[1]}/", timeout=10)
        assert page.status_code == 200 and key[1] in page.text

        visitor = Terminal(commands["visitor"])
        visitor.wait_for('"type": "chat.started"')
        assert visitor.quit() == 0
    finally:
        assert second.stop() == 0, second.output
