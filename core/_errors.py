"""The errors sansbeat raises.

Strategy: one base class, `SansbeatError`, and one subclass per culprit, so a caller
can tell its own bug from a misbehaving peer without parsing messages:

- `UsageError`: the caller broke a rule (bad configuration, a clock that went
  backwards, a sequence number that was never issued). Nothing was changed.
- `ProtocolError`: the peer sent something the protocol does not allow (used by the
  wire codec). Nothing was changed.

Network failures are not exceptions in the core: they are inputs
(`HeartbeatMachine.handle_failure`).
"""

from __future__ import annotations

__all__ = ["ProtocolError", "SansbeatError", "UsageError"]


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


class ProtocolError(SansbeatError):
    """The peer sent input the protocol does not allow.

    Attributes:
        reason: a short machine-readable label for what was wrong.
        detail: a human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")
