"""Shared fixtures: async tests run on asyncio and on trio, in virtual time.

`anyio_backend` makes every `@pytest.mark.anyio` test run twice: on asyncio with
`VirtualTimeLoop` and on trio with `MockClock(autojump_threshold=0)`, so a test
of many virtual minutes takes milliseconds. Tests that talk to real servers use
`real_time_backend` instead.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

from tests.virtual_asyncio import VirtualTimeLoop


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """The backend, with a fresh virtual clock, for an `anyio`-marked test."""
    if request.param == "asyncio":
        return ("asyncio", {"loop_factory": VirtualTimeLoop})
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
