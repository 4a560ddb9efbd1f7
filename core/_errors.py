"""The errors sansbeat raises.

Strategy: one base class, `SansbeatError`, and one subclass per culprit, so a caller
can tell its own bug from a misbehaving peer without parsing messages:

- `UsageError` (here): the caller broke a rule (bad configuration, a clock that
  went backwards, a sequence number that was never issued). Nothing was changed.
- `sansbeat.adapters.HeartbeatRequestFailed`: a gateway's exchange with the server
  failed (network, HTTP status, malformed answer), with the reason and the
  server's Retry-After as fields.

In the core, faults of the peer and the network are never exceptions: the codec
returns them as `Failed` outcomes and the machine takes them as inputs
(`HeartbeatMachine.handle_failure`).
"""

from __future__ import annotations

__all__ = ["SansbeatError", "UsageError"]


class SansbeatError(Exception):
    """Base class of every error sansbeat raises on purpose."""


class UsageError(SansbeatError, ValueError):
    """The caller passed something that breaks a documented rule.

    Attributes:
        field: the name of the argument or setting that was wrong.
        value: the value that was passed.
        rule: the rule it broke, in words.
    """

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(f"{field}={value!r}: {rule}")
