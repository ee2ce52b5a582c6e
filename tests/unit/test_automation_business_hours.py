"""An automation rule's business hours are wall-clock times in its `timeZone`: a time with an offset of its own is
refused as input (422), never compared with a naive one (a 500 the fuzzer found)."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from support.models.automations import BusinessHours


@pytest.mark.parametrize(
    "window", [{"end": "00:00:00Z"}, {"start": "08:00+02:00"}, {"start": "08:00Z", "end": "09:00Z"}]
)
def test_a_time_with_an_offset_is_invalid_input(window: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as refused:
        BusinessHours.model_validate(window)
    assert {error["loc"][0] for error in refused.value.errors()} == set(window)


def test_wall_clock_times_are_taken() -> None:
    hours = BusinessHours.model_validate({"timeZone": "Europe/Berlin", "start": "08:00", "end": "16:30"})
    assert (hours.start, hours.end) == (time(8, 0), time(16, 30))
