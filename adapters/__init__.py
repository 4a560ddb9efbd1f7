"""sansbeat.adapters: the drivers that carry out the machine's actions with real I/O.

The only part of sansbeat that reads a clock or touches a socket:
`sansbeat.adapters.sync` (a thread), `sansbeat.adapters.asyncio` and
`sansbeat.adapters.trio` (one anyio driver on each framework's clock), and
`HeartbeatService`, Jobmon's API on top of them.

The names below are imported on first use (PEP 562), so importing one driver
(`sansbeat.adapters.asyncio`) loads neither the group nor the service.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "HeartbeatAnswer": "._gateway",
    "HeartbeatRequestFailed": "._gateway",
    "HeartbeatGroup": ".group",
    "HeartbeatService": ".service",
    "StateUpdate": ".service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
