"""An asyncio event loop on virtual time, for tests: asyncio's MockClock.

Strategy: the loop's `time()` reads a virtual clock, and its selector, asked to
block for `timeout` seconds with nothing ready, advances the virtual clock by
`timeout` and returns at once instead of waiting. So timers fire in order and
instantly, like trio's `MockClock(autojump_threshold=0)`.

Rules: only for code whose I/O is in memory. Real sockets still work (a ready
socket is reported), but time jumps past any wait for them.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import Any


class _JumpingSelector(selectors.BaseSelector):
    """A selector that turns a blocking wait into a jump of the virtual clock."""

    def __init__(self, loop_time: list[float]) -> None:
        self._inner = selectors.DefaultSelector()
        self._time = loop_time

    def register(
        self, fileobj: Any, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(
        self, fileobj: Any, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(
        self, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: wait for a real event
            return self._inner.select(None)
        self._time[0] += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock starts at 0.0 and jumps when idle."""

    def __init__(self) -> None:
        self._virtual_time = [0.0]
        super().__init__(_JumpingSelector(self._virtual_time))

    def time(self) -> float:
        """Virtual seconds since the loop was made."""
        return self._virtual_time[0]
