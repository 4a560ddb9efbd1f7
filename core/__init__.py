"""sansbeat: heartbeat (lease-renewal) protocol logic as a pure, sans-IO state machine.

This module only re-exports the public names; see `HeartbeatMachine` to start.
"""

from ._actions import Action as Action
from ._actions import LeaseLapsed as LeaseLapsed
from ._actions import LeaseRestored as LeaseRestored
from ._actions import SendHeartbeat as SendHeartbeat
from ._actions import StatusChanged as StatusChanged
from ._errors import SansbeatError as SansbeatError
from ._errors import UsageError as UsageError
from ._http import DEFAULT_MAX_BODY_BYTES as DEFAULT_MAX_BODY_BYTES
from ._http import USER_AGENT as USER_AGENT
from ._http import Answered as Answered
from ._http import Failed as Failed
from ._http import FailureReason as FailureReason
from ._http import HeartbeatConnection as HeartbeatConnection
from ._http import HeartbeatEndpoint as HeartbeatEndpoint
from ._http import Outcome as Outcome
from ._http import parse_base_url as parse_base_url
from ._machine import MAX_TIME as MAX_TIME
from ._machine import MIN_DURATION as MIN_DURATION
from ._machine import HeartbeatMachine as HeartbeatMachine
from ._machine import HeartbeatStats as HeartbeatStats

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
