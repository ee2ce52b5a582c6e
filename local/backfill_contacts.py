"""`make backfill-contacts [TENANT=<uuid>] [BATCH=500]`: the ContactsBackfillFunction run in-process against the
database `make run` uses, linking the tickets and chat sessions that have no contact yet, with a progress bar of
the rows linked (tqdm, on stderr). Everything else is `make invoke`'s (local.invoke): the template environment,
the runtime role, the in-process execution environment. Prints the function's result; exits 1 when a tenant failed
(the others are linked) or the event was refused. Safe to run again at any time: it continues where a run ended.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from uuid import UUID

from tqdm import tqdm

from local.invoke import data_dir_argument, invoke_on_database, prepare, result_on_stdout

FUNCTION = "ContactsBackfillFunction"


def backfill_event(tenant: UUID | None, batch_size: int | None) -> dict[str, Any]:
    event: dict[str, Any] = {}
    if tenant is not None:
        event["tenantId"] = str(tenant)
    if batch_size is not None:
        event["batchSize"] = batch_size
    return event


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.backfill_contacts", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", type=UUID, help="one tenant (default: every tenant)")
    parser.add_argument("--batch-size", type=int, help="rows per transaction (default 500, at most 5,000)")
    data_dir_argument(parser)
    return result_on_stdout(_run, parser.parse_args(argv))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    function = prepare(FUNCTION)
    from support.services import contacts

    with tqdm(unit="row", desc="backfill-contacts", file=sys.stderr, dynamic_ncols=True) as bar:

        def linked(tenant: UUID, what: str, rows: int) -> None:
            bar.update(rows)
            bar.set_postfix_str(f"{tenant} {what}", refresh=False)

        invoked, result = invoke_on_database(
            function,
            backfill_event(args.tenant, args.batch_size),
            args.data_dir.expanduser().resolve(),
            out,
            command="backfill-contacts",
            around=contacts.reporting_progress(linked),
            before_error=bar.close,
        )
        if not invoked:
            return 1
    print(json.dumps(result, indent=2), file=out)
    return 0 if isinstance(result, dict) and result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
