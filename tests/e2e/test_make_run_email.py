"""The README's email round trip (its step 5, a `bash` block after step 1's `sh` one), run as written in one bash
against `python -m local.run` on a data folder of the test's own: a customer's mail becomes a ticket through `make
inbound-email` (moto's S3, the email function), an agent answers with curl, the desk's mails reach the local mail
page with the ticket's reference, and the customer's answer threads back onto the same ticket.

(test_readme_examples.py runs the `sh` blocks; this block is a `bash` one so that it runs here, once, with checks
of its own.)
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.local_run import (
    REPO,
    LocalRun,
    developer_env,
    json_documents,
    make,
    readme_bash_step,
    run_bash,
    scratch_data_dir,
)


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    yield from scratch_data_dir(request.node.name)


def test_the_readme_round_trip_by_email(data_dir: Path) -> None:
    script = readme_bash_step("**5. Write to the desk by email.**")
    assert "make -s inbound-email" in script and "local.mail_reply" in script and "/local/mail" in script
    run = LocalRun(data_dir).wait_ready()
    try:
        result = run_bash(script, data_dir, run)
        # automatic mail is taken (exit 0) and ignored; mail for an address no desk receives at is refused (exit 1)
        bounce = inbound_email(data_dir, run, "events/email/bounce_mailer_daemon.eml", "support@acme.example")
        stranger = inbound_email(data_dir, run, "events/email/gmail_reply.eml", "nobody@inbound.desk.example")
    finally:
        assert run.stop() == 0, run.output
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert (bounce.returncode, bounce.stdout) == (
        0,
        "ignored: automatic mail (auto_submitted), no ticket and no answer\n",
    )
    assert stranger.returncode != 0 and stranger.stdout.startswith("refused: no desk receives"), stranger
    out = result.stdout

    # the customer's mail made a ticket, and their answer threaded onto the same one
    created = re.search(r"^created ticket (#\d+) from lena\.fischer@posteo\.example$", out, re.M)
    threaded = re.search(r"^threaded onto ticket (#\d+) as lena\.fischer@posteo\.example's message$", out, re.M)
    assert created and threaded, out
    reference = created.group(1)
    assert threaded.group(1) == reference
    # the customer's inbox: the agent's reply and the received notice, readable, with the reference in the subject
    listing = next(document for document in json_documents(out) if "mail" in document)
    mails = listing["mail"]
    # (one drain may send both in the same instant: the list's order between them is not the point)
    assert sorted(str(m["autoSubmitted"]) for m in mails) == ["None", "auto-replied"], mails
    assert all(m["subject"].startswith(f"[{reference}] ") and "lena.fischer@posteo.example" in m["to"] for m in mails)
    reply = next(m for m in mails if m["autoSubmitted"] is None)
    assert "A corrected invoice with your VAT number is on its way." in reply["text"]
    # the thread: her first mail, the agent's reply, her answer without the quoted reply
    thread = [d for d in json_documents(out) if isinstance(d.get("data"), list)][-1]["data"]
    assert [(c["senderType"], c["message"]) for c in thread[1:]] == [
        ("agent", "Sorry! A corrected invoice with your VAT number is on its way."),
        ("customer", "Thank you, that was quick!"),
    ]
    assert thread[0]["senderType"] == "customer" and "VAT number is missing" in thread[0]["message"]
    assert thread[0]["attachments"][0]["fileName"].endswith(".pdf")


def inbound_email(data_dir: Path, run: LocalRun, file: str, to: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "inbound-email", f"FILE={file}", f"TO={to}"],
        cwd=REPO,
        env=developer_env(data_dir, run.port),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_inbound_email_without_make_run_says_so(tmp_path: Path) -> None:
    answer = make(
        tmp_path / "pg",
        "-s",
        "inbound-email",
        "FILE=events/email/gmail_reply.eml",
        "TO=support@acme.example",
        timeout=120,
    )
    assert answer.returncode != 0, answer
    assert "no make run is serving" in answer.stderr and "start `make run`" in answer.stderr
