"""Benchmarks with their data generators. See bench/README.md; figures in bench/RESULTS.md."""

import os

# The benches time the handlers, not the fair limits: every tenant's API budget (support.services.rate_limits) is
# one no bench reaches, unless the shell sets one; bench.fair_limits gives its tenants budgets of their own.
os.environ.setdefault("TENANT_API_BURST", "1000000")
os.environ.setdefault("TENANT_API_PER_SECOND", "100000")
