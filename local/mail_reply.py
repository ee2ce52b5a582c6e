"""The customer's answer to the desk's newest mail to them, as their mail client writes it: `Re:` and the subject,
In-Reply-To and References naming the desk's Message-ID, their text on top and the desk's mail quoted below. Reads
the mail make run's local SES "sent" (`GET /local/mail`); writes the .eml to stdout, for `make inbound-email`:

    .venv/bin/python -m local.mail_reply --base http://127.0.0.1:3000 --to lena@example.com "Thanks!" > reply.eml

The desk's person-written mail (an agent's reply) is answered before its automatic notices; exit 1 when the desk
has sent nothing to that address.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any


def newest_mail_to(base: str, address: str) -> dict[str, Any] | None:
    with urllib.request.urlopen(f"{base.rstrip('/')}/local/mail?limit=500", timeout=10) as answer:  # noqa: S310
        mails: list[dict[str, Any]] = json.load(answer)["mail"]  # newest first
    theirs = [m for m in mails if address.lower() in str(m["to"]).lower()]
    people = [m for m in theirs if not m.get("autoSubmitted")]
    chosen = people or theirs
    return chosen[0] if chosen else None


def reply_to(mail: dict[str, Any], text: str) -> EmailMessage:
    """From the customer (the desk's mail named them in To, with their name) back to the desk."""
    reply = EmailMessage()
    sender = str(mail["to"])
    reply["From"] = sender
    reply["To"] = mail["from"]
    subject = str(mail["subject"])
    reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or "customer.example")
    reply["In-Reply-To"] = mail["messageId"]
    reply["References"] = " ".join(filter(None, [mail.get("inReplyTo"), mail["messageId"]]))
    quoted = "\n".join(f"> {line}" if line else ">" for line in str(mail["text"]).replace("\r\n", "\n").split("\n"))
    reply.set_content(f"{text}\n\nOn {mail['date']}, {mail['from']} wrote:\n{quoted}\n")
    return reply


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.mail_reply", description=__doc__.splitlines()[0])
    parser.add_argument("text", help="what the customer writes")
    parser.add_argument("--to", required=True, help="the customer's address (the desk's mail went to it)")
    parser.add_argument("--base", default="http://127.0.0.1:3000", help="make run's HTTP address")
    args = parser.parse_args(argv)
    mail = newest_mail_to(args.base, args.to)
    if mail is None:
        print(f"local.mail_reply: the desk has sent nothing to {args.to} (yet?)", file=sys.stderr)
        return 1
    # Message-IDs are single tokens longer than a 78-character line: folded at SMTP's 998 so they stay readable
    sys.stdout.write(reply_to(mail, args.text).as_string(policy=policy.default.clone(max_line_length=998)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
