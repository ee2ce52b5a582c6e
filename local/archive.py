"""`make archive`: the workflow sweep's retention step now, against a running `make run` (its database and its S3),
instead of waiting for the next minute's sweep; then the archive's objects of make run's S3.

    python -m local.archive            # run the step (every tenant with something due), print what it did
    python -m local.archive --list     # list the archive objects only (tenant, day, part)
    python -m local.archive --show KEY # print one object's JSON lines

The step archives and deletes only what a tenant's retention policy (`PUT /api/support/settings/retention`) makes
due; the demo desks keep everything until a policy says otherwise. Exit status: 0, or 2 when make run is not running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from local.invoke import data_dir_argument, function_database, prepare, result_on_stdout

FUNCTION = "WorkflowSweepFunction"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.archive", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the archive objects, run nothing")
    parser.add_argument("--show", metavar="KEY", help="print one archive object's JSON lines, run nothing")
    data_dir_argument(parser)
    return result_on_stdout(_run, parser.parse_args(argv))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from local import s3

    data_dir = args.data_dir.expanduser().resolve()
    endpoint = s3.running_endpoint(data_dir)
    if endpoint is None:
        print(
            f"make archive: no make run is serving {data_dir} (its S3 holds the archive): start `make run`",
            file=sys.stderr,
        )
        return 2
    prepare(FUNCTION)
    s3.configure_environment(endpoint)
    client = s3.client(endpoint)
    if args.show:
        body = client.get_object(Bucket=s3.ARCHIVE_BUCKET, Key=args.show)["Body"].read().decode()
        print(body, end="", file=out)
        return 0
    if not args.list:
        from support.services import retention

        with function_database(FUNCTION, data_dir):
            report = retention.run(datetime.now(UTC))
        print(
            f"retention: {report.tenants} tenant(s) with something due; archived {report.archived['tickets']} "
            f"ticket(s) and {report.archived['chats']} chat(s), deleted {report.deleted['tickets']} ticket(s) and "
            f"{report.deleted['chats']} chat(s)" + (" (more left for the next run)" if report.more else ""),
            file=out,
        )
        for key in report.objects:
            print(f"  wrote s3://{s3.ARCHIVE_BUCKET}/{key}", file=out)
        if report.failed:
            print(f"  failed: {report.failed}", file=out)
            return 1
        return 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.ARCHIVE_BUCKET, Prefix="archive/"):
        for item in page.get("Contents", []):
            print(f"{item['Key']}  {item['Size']} bytes", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
