"""sansbeat.adapters: the drivers that carry out the machine's actions with real I/O.

The only part of sansbeat that reads a clock or touches a socket:
`sansbeat.adapters.sync` (a thread), `sansbeat.adapters.asyncio` and
`sansbeat.adapters.trio` (one anyio driver on each framework's clock), and
`HeartbeatService`, Jobmon's API on top of them.
"""

import logging

from ._gateway import HeartbeatAnswer as HeartbeatAnswer
from ._gateway import HeartbeatRequestFailed as HeartbeatRequestFailed
from .group import HeartbeatGroup as HeartbeatGroup
from .service import HeartbeatService as HeartbeatService
from .service import StateUpdate as StateUpdate

# Failures are logged as warnings on "sansbeat"; the application decides whether
# and where they appear (no output unless it configures logging).
logging.getLogger("sansbeat").addHandler(logging.NullHandler())

__all__ = [
    "HeartbeatAnswer",
    "HeartbeatGroup",
    "HeartbeatRequestFailed",
    "HeartbeatService",
    "StateUpdate",
]
