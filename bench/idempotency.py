"""What an Idempotency-Key adds to a create (issue 20): the tickets function's `POST /api/support/tickets`, in
process, with and without the header, measured in one run.

    .venv/bin/python -m bench.idempotency [--iterations 1000] [--warmup 100]

On an embedded PostgreSQL (or DATABASE_URL), as the runtime role under row-level security, one call at a time, the
cases in turn (one call of each per round, so that the load of a shared machine hits them alike):

* `plain`: a create without the header (the route as it always was);
* `keyed`: the same create with a new key each time (the claim, the create, the completion);
* `replay`: a retry of a keyed create already made (the claim finds the stored answer; nothing is created);
* `key alone`: the two statements the key adds, without the create (the claim and the completion, each one round
  trip): what the key costs once the noise of the create's own time is taken out;
* `floor`: one `SELECT 1` through write_one, one round trip: the key alone is two of them and its statements.

The figure is `keyed` minus `plain` at p50 (target: at most 1 ms), and the median of the per-round differences.
Before timing it checks what it times: a retry answers the first body and the tenant still has one ticket.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any
from uuid import uuid4

from bench import handler_environment
from bench.timing import print_ab_table

TARGET_MS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idempotency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    handler_environment()

    from local.database import connected_as, database

    with database("idempotency", purpose="bench", recreate=True, quiet=True) as urls, connected_as(urls.app):
        passed = _run(args.iterations, args.warmup)
    if not passed:
        raise SystemExit("a check failed (FAIL above): the figures are not worth recording")


def _run(iterations: int, warmup: int) -> bool:
    from functions.tickets import app
    from tests.http_events import HandlerClient

    api = HandlerClient(app.lambda_handler, tenant=uuid4())
    path = "/api/support/tickets"

    def body(n: int) -> dict[str, Any]:
        return {"customerName": "Ada", "customerEmail": f"ada{n}@example.com", "subject": f"Order {n} damaged"}

    # Check first: a retry answers the first body and creates nothing.
    check_tenant = HandlerClient(app.lambda_handler, tenant=uuid4())
    key = {"Idempotency-Key": str(uuid4())}
    first = check_tenant.post(path, body(0), headers=key)
    again = check_tenant.post(path, body(0), headers=key)
    listed = check_tenant.get(path).body["data"]
    same = first.status == again.status == 201 and first.body == again.body and len(listed) == 1
    print(f"check: a retry answers the first 201 and body, the tenant has {len(listed)} ticket {_verdict(same)}")

    replay_key = {"Idempotency-Key": str(uuid4())}
    assert api.post(path, body(-1), headers=replay_key).status == 201

    def plain(n: int) -> None:
        assert api.post(path, body(n)).status == 201

    def keyed(n: int) -> None:
        assert api.post(path, body(n), headers={"Idempotency-Key": f"bench-{n}-{uuid4()}"}).status == 201

    def replay(n: int) -> None:
        reply = api.post(path, body(-1), headers=replay_key)
        assert reply.headers.get("Idempotent-Replayed") == "true"

    from support import idempotency
    from support.db import write_one

    def key_alone(n: int) -> None:
        params = {
            "route": "POST /bench",
            "key": f"alone-{n}-{uuid4()}",
            "hash": idempotency.request_hash("POST", "/bench", "", b"{}"),
            "claim": uuid4(),
            "lease": idempotency.LEASE,
            "ttl": idempotency.KEY_TTL,
        }
        claimed = idempotency._call(idempotency._CLAIM, {**params, "tenant": api.tenant})
        assert claimed is not None
        assert claimed["mine"]
        done = {**params, "tenant": api.tenant, "status": 201, "body": '{"success":true,"data":{}}'}
        assert idempotency._call(idempotency._FINISH, done) is not None

    def floor(n: int) -> None:
        write_one(api.tenant, "SELECT 1", ())

    cases = {"plain": plain, "keyed": keyed, "replay": replay, "key alone": key_alone, "floor": floor}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for n in range(warmup + iterations):
        for name, call in cases.items():
            started = time.perf_counter()
            call(n)
            if n >= warmup:
                samples[name].append(time.perf_counter() - started)

    added, paired = print_ab_table(samples, f"{iterations} calls per case", "keyed", "plain")
    within = added <= TARGET_MS
    print(
        f"\nadded by the key at p50: {added:.2f} ms (median of the per-round differences {paired:.2f} ms); "
        f"target <= {TARGET_MS:.0f} ms {_verdict(within)}"
    )
    print(json.dumps({"added_p50_ms": round(added, 3), "paired_median_ms": round(paired, 3)}))
    return same


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


if __name__ == "__main__":
    main()
