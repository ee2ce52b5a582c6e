"""`make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [TENANT=<uuid>]`: the AnalyticsFunction run in-process with a
backfill event ({"from", "to", "tenantId"?}, at most 366 days) against the database `make run` uses, with a
progress bar of the tenant-days rolled up (tqdm, on stderr). Everything else is `make invoke`'s (local.invoke):
the template environment, the job's role, the in-process execution environment. Prints the function's result;
exits 1 when a tenant failed (the others are rolled up) or the event was refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, TextIO
from uuid import UUID

from tqdm import tqdm

from local.invoke import data_dir_argument, invoke_on_database, prepare, result_on_stdout

FUNCTION = "AnalyticsFunction"


def backfill_event(start: date, end: date, tenant: UUID | None) -> dict[str, Any]:
    event: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat()}
    if tenant is not None:
        event["tenantId"] = str(tenant)
    return event


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="end", type=date.fromisoformat, required=True, help="last day, YYYY-MM-DD")
    parser.add_argument("--tenant", type=UUID, help="one tenant (default: every tenant with activity in the days)")
    data_dir_argument(parser)
    return result_on_stdout(_run, parser.parse_args(argv))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    function = prepare(FUNCTION)
    from support.services import analytics

    days = (args.end - args.start).days + 1
    with tqdm(total=0, unit="day", desc="backfill", file=sys.stderr, dynamic_ncols=True) as bar:

        def found(tenants: list[UUID]) -> None:
            bar.total = len(tenants) * days
            bar.set_postfix_str(f"{len(tenants)} tenants")
            bar.refresh()

        def done(tenant: UUID, day: date) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{tenant} {day.isoformat()}", refresh=False)

        invoked, result = invoke_on_database(
            function,
            backfill_event(args.start, args.end, args.tenant),
            args.data_dir.expanduser().resolve(),
            out,
            command="backfill",
            around=analytics.reporting_progress(found, done),
            before_error=bar.close,
        )
        if not invoked:
            return 1
    print(json.dumps(result, indent=2), file=out)
    return 0 if isinstance(result, dict) and result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
