"""One rounding rule for every average: half away from zero, like PostgreSQL's round() on numeric."""

from __future__ import annotations

import pytest

from support.averages import mean_score, mean_seconds


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [(25, 8, 3.13), (3125, 1000, 3.13), (25, 7, 3.57), (9, 2, 4.5), (7, 3, 2.33), (2, 2, 1.0), (0, 0, None)],
)
def test_scores_have_two_decimals_and_ties_round_up(total: int, count: int, expected: float | None) -> None:
    assert mean_score(total, count) == expected


@pytest.mark.parametrize(
    ("total", "count", "expected"), [(5, 2, 3), (3, 2, 2), (1, 2, 1), (10, 4, 3), (7, 3, 2), (0, 5, 0), (9, 0, None)]
)
def test_durations_are_whole_seconds_and_ties_round_up(total: int, count: int, expected: int | None) -> None:
    assert mean_seconds(total, count) == expected
