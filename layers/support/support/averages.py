"""One rounding rule for every average the API reports: half away from zero, as PostgreSQL's round() on numeric
does (the database keeps the agents' averages that way). Durations are whole seconds; scores have two
decimals. So 3.125 is 3.13 wherever it appears, and 2.5 seconds is 3 (Python's round() would say 3.12 and 2)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_WHOLE = Decimal(1)
_HUNDREDTHS = Decimal("0.01")


def _mean(total: int, count: int, places: Decimal) -> Decimal | None:
    if not count:
        return None
    return (Decimal(total) / Decimal(count)).quantize(places, rounding=ROUND_HALF_UP)


def mean_seconds(total: int, count: int) -> int | None:
    """The mean of `count` durations summing to `total` seconds, in whole seconds; None for no durations."""
    mean = _mean(total, count, _WHOLE)
    return None if mean is None else int(mean)


def mean_score(total: int, count: int) -> float | None:
    """The mean of `count` ratings summing to `total`, to two decimals; None for no ratings."""
    mean = _mean(total, count, _HUNDREDTHS)
    return None if mean is None else float(mean)
