"""Benchmarks with their data generators. See bench/README.md; figures in bench/RESULTS.md."""

import os

# The benches time the handlers, not the fair limits: every tenant's API budget (support.services.rate_limits) is
# one no bench reaches, unless the shell sets one; bench.fair_limits gives its tenants budgets of their own.
os.environ.setdefault("TENANT_API_BURST", "1000000")
os.environ.setdefault("TENANT_API_PER_SECOND", "100000")

# The visitor token key the benches that serve the widget's visitors sign with (no secret: the benches' own).
VISITOR_TOKEN_SECRET = "bench-visitor-key-" + "x" * 32


def handler_environment(**defaults: str) -> None:
    """The settings the handlers read, as a bench runs them in process, each unless the shell set it: Powertools'
    service and metrics namespace, metrics off (their EMF lines would cut the tables), then the bench's own
    `defaults` (POWERTOOLS_LOG_LEVEL="WARNING", VISITOR_TOKEN_SECRET=VISITOR_TOKEN_SECRET, ...)."""
    base = {
        "POWERTOOLS_SERVICE_NAME": "support",
        "POWERTOOLS_METRICS_NAMESPACE": "SupportDesk",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    for name, value in (base | defaults).items():
        os.environ.setdefault(name, value)
