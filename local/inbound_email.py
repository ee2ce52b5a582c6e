"""`make inbound-email FILE=<.eml> TO=<address>`: a MIME file delivered to the desk as SES delivers it, against a
running `make run`: the raw message put into make run's S3 (moto) under `inbound/<SES message id>`, then
EmailInboundFunction invoked in-process with the SES receipt event for it (envelope recipient TO), on make run's
database (local.invoke). Prints one line saying what happened (the ticket created or threaded onto, ignored,
rejected) and the function's result as JSON on stderr.

Exit status: 0 when the function accepted the message (a ticket made or threaded, or the message recorded as ignored
or rejected), 1 when it refused it (no desk receives at TO) or failed, 2 when make run is not running or the file
cannot be read. The demo desks receive at support@acme.example and support@globex.example.
"""

from __future__ import annotations

import argparse
import json
import secrets
import string
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from local.invoke import data_dir_argument, invoke_on_database, prepare, result_on_stdout

FUNCTION = "EmailInboundFunction"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"


def ses_message_id() -> str:
    """An id of SES's shape (the S3 object's name): lower-case letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


def describe(result: dict[str, Any], sender: str) -> str:
    """One line for a person."""
    outcome = result.get("outcome")
    again = " (delivered before: stored once, nothing changed)" if result.get("duplicate") else ""
    reference = result.get("reference") or result.get("ticketId")
    if outcome == "created":
        return f"created ticket {reference} from {sender}{again}"
    if outcome == "threaded":
        return f"threaded onto ticket {reference} as {sender}'s message{again}"
    if outcome == "ignored_automatic":
        return f"ignored: automatic mail ({result.get('reason')}), no ticket and no answer{again}"
    if outcome == "rejected":
        return f"rejected: {result.get('reason')} (kept in S3){again}"
    return f"refused: {result.get('reason')}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.inbound_email", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a MIME message (.eml), e.g. events/email/plain_text_mutt.eml")
    parser.add_argument("--to", required=True, help="the receiving address, e.g. support@acme.example")
    data_dir_argument(parser)
    return result_on_stdout(_run, parser.parse_args(argv))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        print(f"make inbound-email: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    from local import s3

    data_dir = args.data_dir.expanduser().resolve()
    endpoint = s3.running_endpoint(data_dir)
    if endpoint is None:
        print(
            f"make inbound-email: no make run is serving {data_dir} (its S3 is where the mail goes): start `make run`",
            file=sys.stderr,
        )
        return 2
    function = prepare(FUNCTION)
    s3.configure_environment(endpoint)
    ses_id = ses_message_id()
    s3.client(endpoint).put_object(Bucket=s3.BUCKET, Key=f"inbound/{ses_id}", Body=raw)

    from local.sample_events import ses_receipt_event
    from support.mail.inbound import parse

    event = ses_receipt_event(
        raw, message_id=ses_id, recipients=[args.to.lower()], received_at=datetime.now(UTC), function_arn=FUNCTION_ARN
    )
    invoked, answer = invoke_on_database(function, event, data_dir, out, command="inbound-email")
    if not invoked:
        return 1
    print(json.dumps(answer, indent=2), file=sys.stderr)
    if not isinstance(answer, dict) or not answer.get("ok"):
        print(f"make inbound-email: the function refused the event: {answer}", file=out)
        return 1
    parsed = parse(raw, max_bytes=len(raw))
    sender = getattr(getattr(parsed, "sender", None), "email", None) or "an unknown sender"
    accepted = True
    for result in answer["results"]:
        print(describe(result, sender), file=out)
        accepted = accepted and result.get("outcome") != "unknown_recipient"
    return 0 if accepted else 1


if __name__ == "__main__":
    sys.exit(main())
