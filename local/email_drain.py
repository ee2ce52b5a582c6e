"""`make run`'s email outbox schedule: EmailOutboxFunction's handler, invoked with the schedule's event every few
seconds (every minute in AWS), in a process of its own (its own database connection, as a Lambda execution
environment has), until make run stops it. SES is make run's local one (moto, AWS_ENDPOINT_URL_SES)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

DEFAULT_EVERY_SECONDS = 3.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.email_drain")
    parser.add_argument("--every", type=float, default=DEFAULT_EVERY_SECONDS, help="seconds between drains")
    args = parser.parse_args(argv)
    from local.gateway import LambdaContext
    from local.gateway.execution_environments import _forget_unpublished_metrics, _readable_powertools_logs
    from local.template import load_module

    module = load_module("functions/email_outbox/", "app.lambda_handler")
    _readable_powertools_logs("EmailOutboxFunction")  # one line for people, as the gateway's functions log
    try:
        while True:
            event = {"scheduledTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            context = LambdaContext(function_name="EmailOutboxFunction", memory_limit_in_mb=512, timeout_seconds=60)
            _forget_unpublished_metrics()
            try:
                module.lambda_handler(event, context)  # logs what it sent, retried and failed
            except Exception as exc:  # the next tick tries again, as the next scheduled run would
                print(f"email outbox: the drain failed: {exc}", file=sys.stderr, flush=True)
            time.sleep(args.every)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
