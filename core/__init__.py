"""sansbeat: heartbeat (lease-renewal) protocol logic as a pure, sans-IO state machine.

This module only re-exports the public names; see `HeartbeatMachine` to start.
The wire codec's names (`HeartbeatConnection` and its kin) are imported on first
use (PEP 562): the codec pulls in h11, which a driver over another gateway never
needs, and it is most of the package's import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._actions import Action as Action
from ._actions import LeaseLapsed as LeaseLapsed
from ._actions import LeaseRestored as LeaseRestored
from ._actions import SendHeartbeat as SendHeartbeat
from ._actions import StatusChanged as StatusChanged
from ._errors import SansbeatError as SansbeatError
from ._errors import UsageError as UsageError
from ._machine import MAX_TIME as MAX_TIME
from ._machine import MIN_DURATION as MIN_DURATION
from ._machine import HeartbeatMachine as HeartbeatMachine
from ._machine import HeartbeatStats as HeartbeatStats

if TYPE_CHECKING:
    from ._http import DEFAULT_MAX_BODY_BYTES as DEFAULT_MAX_BODY_BYTES
    from ._http import USER_AGENT as USER_AGENT
    from ._http import Answered as Answered
    from ._http import Failed as Failed
    from ._http import FailureReason as FailureReason
    from ._http import HeartbeatConnection as HeartbeatConnection
    from ._http import HeartbeatEndpoint as HeartbeatEndpoint
    from ._http import Outcome as Outcome
    from ._http import parse_base_url as parse_base_url

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_TIME",
    "MIN_DURATION",
    "USER_AGENT",
    "Action",
    "Answered",
    "Failed",
    "FailureReason",
    "HeartbeatConnection",
    "HeartbeatEndpoint",
    "HeartbeatMachine",
    "HeartbeatStats",
    "LeaseLapsed",
    "LeaseRestored",
    "Outcome",
    "SansbeatError",
    "SendHeartbeat",
    "StatusChanged",
    "UsageError",
    "parse_base_url",
]

_LAZY = frozenset(
    {
        "DEFAULT_MAX_BODY_BYTES",
        "USER_AGENT",
        "Answered",
        "Failed",
        "FailureReason",
        "HeartbeatConnection",
        "HeartbeatEndpoint",
        "Outcome",
        "parse_base_url",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("._http", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
