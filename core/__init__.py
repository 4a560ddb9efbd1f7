"""sansbeat: heartbeat (lease-renewal) protocol logic as a pure, sans-IO state machine.

This module only re-exports the public names; see `HeartbeatMachine` to start.
"""

from ._actions import Action as Action
from ._actions import LeaseLapsed as LeaseLapsed
from ._actions import LeaseRestored as LeaseRestored
from ._actions import SendHeartbeat as SendHeartbeat
from ._actions import StatusChanged as StatusChanged
from ._errors import ProtocolError as ProtocolError
from ._errors import SansbeatError as SansbeatError
from ._errors import UsageError as UsageError
from ._machine import MAX_TIME as MAX_TIME
from ._machine import MIN_DURATION as MIN_DURATION
from ._machine import HeartbeatMachine as HeartbeatMachine
from ._machine import HeartbeatStats as HeartbeatStats

__all__ = [
    "MAX_TIME",
    "MIN_DURATION",
    "Action",
    "HeartbeatMachine",
    "HeartbeatStats",
    "LeaseLapsed",
    "LeaseRestored",
    "ProtocolError",
    "SansbeatError",
    "SendHeartbeat",
    "StatusChanged",
    "UsageError",
]
