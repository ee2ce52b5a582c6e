"""A sweep step's work over many tenants within its share of the sweep's minute (the `uploads` and `webhook_log`
steps): the tenants in a new order each run (a backlog does not always come first), at most `max_tenants` of them
and none started after `max_seconds`, the next minute going on; a tenant that fails is logged, the others still run,
and the step then fails (the next minute tries again)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from uuid import UUID

from support.observability import logger


def each_tenant(
    tenants: list[UUID], work: Callable[[UUID], int], *, what: str, max_tenants: int, max_seconds: float
) -> int:
    """`work(tenant)` for the tenants within the budget, in a random order; answers the sum of what it answered."""
    deadline = time.monotonic() + max_seconds
    tenants = random.sample(tenants, len(tenants))
    done_total, failed = 0, 0
    for done, tenant_id in enumerate(tenants):
        if done >= max_tenants or time.monotonic() >= deadline:
            logger.info(f"{what} stopped at its budget", extra={"tenants_left": len(tenants) - done})
            break
        try:
            done_total += work(tenant_id)
        except Exception:
            logger.exception(f"{what} failed for a tenant", extra={"tenant_id": str(tenant_id)})
            failed += 1
    if failed:
        raise RuntimeError(f"{what} failed for {failed} tenant(s)")
    return done_total
