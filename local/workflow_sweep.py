"""`make run`'s workflow sweep schedule: WorkflowSweepFunction's handler, invoked with the schedule's event
(`{"scheduledTime": ...}`, as EventBridge Scheduler sends it) once a minute, in a process of its own (its own
database connection, as a Lambda execution environment has), until make run stops it. Each tick prints one line
of what the steps did (the SLA warnings and breaches recorded, the automation events fired and run, the waiting
chats made into tickets); a failing tick is printed and the next one runs, as the next scheduled run would.

`python -m local.workflow_sweep [--every SECONDS] [--times N]`: `--times` stops after N ticks (the tests)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

DEFAULT_EVERY_SECONDS = 60.0
FUNCTION = "WorkflowSweepFunction"


def tick(handler: Callable[[dict[str, Any], Any], dict[str, Any]], now: datetime | None = None) -> str:
    """One scheduled invocation: the line that says what it did."""
    from local.gateway import LambdaContext
    from local.gateway.execution_environments import _forget_unpublished_metrics

    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    context = LambdaContext(function_name=FUNCTION, memory_limit_in_mb=512, timeout_seconds=120)
    _forget_unpublished_metrics()
    try:
        result = handler({"scheduledTime": at}, context)
    except Exception as exc:  # a failed step fails the invocation (its alarm in AWS); the next tick runs again
        return f"workflow sweep at {at}: failed: {exc}"
    done = ", ".join(f"{name} {count}" for name, count in result["steps"].items())
    return f"workflow sweep at {at}: {done}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.workflow_sweep")
    parser.add_argument("--every", type=float, default=DEFAULT_EVERY_SECONDS, help="seconds between sweeps")
    parser.add_argument("--times", type=int, default=None, help="stop after this many sweeps (default: never)")
    args = parser.parse_args(argv)
    from local.gateway.execution_environments import _readable_powertools_logs
    from local.template import load_module

    module = load_module("functions/workflow_sweep/", "app.lambda_handler")
    _readable_powertools_logs(FUNCTION)  # one line for people, as the gateway's functions log
    ticks = 0
    try:
        while args.times is None or ticks < args.times:
            print(tick(module.lambda_handler), flush=True)
            ticks += 1
            if args.times is None or ticks < args.times:
                time.sleep(args.every)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
