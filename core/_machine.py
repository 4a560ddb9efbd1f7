"""The heartbeat state machine: every timing rule of sansbeat lives here.

Strategy (sans-IO, after h11 and aioquic):

- Time is an input. Every call that can act takes `now`, seconds on one monotonic
  clock chosen by the driver; the machine owns no clock, socket, thread or loop.
- Each input returns the actions it caused, in order, as a tuple. Nothing is kept
  for a later call to collect.
- `next_deadline` is a pure query. `tick(now)` before it changes nothing; at or after
  it, `tick` acts and leaves `next_deadline` later than `now` (or None after stop).
- Every input first runs what the passage of time caused (a request that ran past
  its deadline, a lease that ran out), then applies itself, then sends a beat if one
  is due. So expiries and lapses never depend on whether the driver ticked in
  between.
- Validate before mutating: an input that raises has changed nothing.

The state, in words: a lease renewed at `last_heartbeat_time` and live until
`lease_deadline`; at most one request in flight; the time the next beat is due; the
count of consecutive failed attempts (for the backoff); lapsed or not; stopped or not.
The rules themselves are stated, with formulas, in docs/timing-rules.md.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ._actions import (
    Action,
    LeaseLapsed,
    LeaseRestored,
    StatusChanged,
    new_send_heartbeat,
)
from ._errors import UsageError

__all__ = ["MAX_TIME", "MIN_DURATION", "HeartbeatMachine", "HeartbeatStats"]

#: Smallest accepted duration (seconds). Deadlines are `now + duration` in floating
#: point; a floor far above the clock's resolution keeps them strictly after `now`.
MIN_DURATION = 0.001
#: Largest accepted magnitude of a clock reading (seconds, about 35,000 years), and
#: of a duration: at this size a float still resolves well under MIN_DURATION / 2.
MAX_TIME = float(2**40)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatStats:
    """A snapshot of the machine's counters.

    Attributes:
        beats_sent: heartbeats the machine asked to send.
        renewals: answers that renewed the lease (status equal to the one sent).
        signals: answers whose status differed from the one sent (not renewals).
        failures: attempts reported failed through `handle_failure`.
        timeouts: attempts given up at their deadline with no answer.
        stale_responses: answers and failures for requests no longer in flight.
        lapses: times the lease ran out (each reported once by `LeaseLapsed`).
        max_renewal_gap: largest time (seconds) between the send times of two
            consecutive renewals (construction and `reset_timer` count as renewals).
        max_tick_lateness: largest time (seconds) by which a `tick` that acted came
            after `next_deadline`.
    """

    beats_sent: int
    renewals: int
    signals: int
    failures: int
    timeouts: int
    stale_responses: int
    lapses: int
    max_renewal_gap: float
    max_tick_lateness: float


def _require_number(field: str, value: object) -> float:
    # bool is an int subclass, but `interval=True` is a bug, not one second.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(field, value, "must be a number of seconds")
    if not math.isfinite(value):
        raise UsageError(field, value, "must be finite")
    return float(value)


def _require_duration(field: str, value: object) -> float:
    seconds = _require_number(field, value)
    if not MIN_DURATION <= seconds <= MAX_TIME:
        raise UsageError(
            field, value, f"must be between {MIN_DURATION} and {MAX_TIME:.0f} seconds"
        )
    return seconds


def _require_time(field: str, value: object) -> float:
    seconds = _require_number(field, value)
    if abs(seconds) > MAX_TIME:
        raise UsageError(field, value, f"must be within ±{MAX_TIME:.0f} seconds")
    return seconds


def _require_status(field: str, value: object) -> str:
    if type(value) is not str or not value:
        raise UsageError(field, value, "must be a non-empty string")
    return value


class HeartbeatMachine:
    """The pure heartbeat protocol: give it times and outcomes, get back actions.

    Args:
        interval: seconds between heartbeats (the cadence), measured send to send.
        report_by_buffer: multiplier (>= 1) giving the lease the server is asked
            for: `next_report_increment = interval * report_by_buffer` seconds.
        initial_status: the status reported until `set_status` or a server signal.
        now: the current time (seconds) on the driver's monotonic clock. The lease
            counts as renewed at this moment, as in Jobmon's HeartbeatService.
        request_timeout: the most seconds one request may take. Each request's
            deadline is also capped by the interval and, while the lease is live,
            by half of what remains of it (so a retry still fits).
        backoff_initial: seconds before the first retry after a failure; each
            further consecutive failure doubles it, up to the interval. Every delay
            is jittered to between half and all of its value.
        beat_at_start: if true the first beat is due at `now`, otherwise one
            interval later.
        lease_margin: seconds by which the local lease ends before
            `send time + next_report_increment`, for servers whose deadline can
            be earlier than that (Jobmon stores it in whole seconds, so up to
            1 s earlier; `HeartbeatService` passes 1.0). The lease left,
            `next_report_increment - lease_margin`, must cover an interval.
        rng: the source of jitter. The default is unseeded, so a fleet spreads out;
            pass `random.Random(seed)` for a reproducible run.

    Raises:
        UsageError: a setting breaks its rule; the message names it.
    """

    __slots__ = (
        "_interval",
        "_buffer",
        "_increment",
        "_lease_length",
        "_request_budget",
        "_backoff_initial",
        "_min_retry_delay",
        "_rng",
        "_now",
        "_status",
        "_renewed_at",
        "_lease_deadline",
        "_lapsed",
        "_lapsed_at",
        "_cadence_from",
        "_next_beat_at",
        "_failed_attempts",
        "_next_seq",
        "_flight_seq",
        "_flight_status",
        "_flight_sent_at",
        "_flight_deadline",
        "_stopped",
        "_wake_at",
        "_beats_sent",
        "_renewals",
        "_signals",
        "_failures",
        "_timeouts",
        "_stale_responses",
        "_lapses",
        "_max_renewal_gap",
        "_max_tick_lateness",
    )

    def __init__(
        self,
        *,
        interval: float,
        report_by_buffer: float,
        initial_status: str,
        now: float,
        request_timeout: float = 10.0,
        backoff_initial: float = 1.0,
        beat_at_start: bool = False,
        lease_margin: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        interval = _require_duration("interval", interval)
        buffer = _require_number("report_by_buffer", report_by_buffer)
        if buffer < 1:
            raise UsageError(
                "report_by_buffer",
                report_by_buffer,
                "must be >= 1 (the lease must cover at least one interval)",
            )
        increment = _require_duration("interval * report_by_buffer", interval * buffer)
        status = _require_status("initial_status", initial_status)
        now = _require_time("now", now)
        request_timeout = _require_duration("request_timeout", request_timeout)
        backoff_initial = _require_duration("backoff_initial", backoff_initial)
        margin = _require_number("lease_margin", lease_margin)
        if margin < 0:
            raise UsageError("lease_margin", lease_margin, "must be >= 0")
        if increment - margin < interval:
            raise UsageError(
                "lease_margin",
                lease_margin,
                "must leave a lease of at least one interval "
                f"(interval * report_by_buffer - lease_margin >= {interval})",
            )
        if not isinstance(beat_at_start, bool):
            raise UsageError("beat_at_start", beat_at_start, "must be True or False")
        if rng is not None and not isinstance(rng, random.Random):
            raise UsageError("rng", rng, "must be a random.Random or None")

        self._interval = interval
        self._buffer = buffer
        self._increment = increment
        # The local lease: conservative, measured from a send, short by the margin.
        self._lease_length = increment - margin
        # A request never outlives the next scheduled beat.
        self._request_budget = min(request_timeout, interval)
        self._backoff_initial = backoff_initial
        # The shortest retry delay the jitter can produce; below it the lease
        # window is too short to share out between a request and its retry.
        self._min_retry_delay = backoff_initial / 2
        self._rng = random.Random() if rng is None else rng
        self._now = now
        self._status = status
        self._renewed_at = now
        self._lease_deadline = now + self._lease_length
        self._lapsed = False
        self._lapsed_at = 0.0
        self._cadence_from = now
        self._next_beat_at = now if beat_at_start else now + interval
        self._failed_attempts = 0
        self._next_seq = 1
        self._flight_seq: int | None = None
        self._flight_status = status
        self._flight_sent_at = now
        self._flight_deadline = now
        self._stopped = False
        self._beats_sent = 0
        self._renewals = 0
        self._signals = 0
        self._failures = 0
        self._timeouts = 0
        self._stale_responses = 0
        self._lapses = 0
        self._max_renewal_gap = 0.0
        self._max_tick_lateness = 0.0
        self._wake_at = min(self._next_beat_at, self._lease_deadline)

    # ------------------------------------------------------------------ inputs

    def tick(self, now: float) -> tuple[Action, ...]:
        """The clock reached `now` (seconds). Returns what that caused.

        Before `next_deadline` this does nothing (cheaply); at or after it, it
        expires an overdue request, reports a lapse, and sends a due beat.
        """
        # Fast path for the idle tick; a NaN or a backwards `now` fails the
        # comparison and takes the checked path below.
        if type(now) is float and self._now <= now < self._wake_at <= MAX_TIME:
            self._now = now
            return ()
        if type(now) is not float or not self._now <= now <= MAX_TIME:
            now = self._check_now(now)
        self._now = now
        if self._stopped:
            return ()
        lateness = now - self._wake_at
        if lateness > self._max_tick_lateness:
            self._max_tick_lateness = lateness
        actions: list[Action] = []
        self._advance(now, actions)
        return self._finish(now, actions)

    def handle_response(self, seq: int, status: str, now: float) -> tuple[Action, ...]:
        """The server answered request `seq` with `status` at time `now` (seconds).

        An answer with the status that was sent renews the lease from that
        request's send time. An answer with another status is a server signal: it
        is adopted (reported once as `StatusChanged`) unless the local status
        changed meanwhile, and it is not a renewal. An answer to a request no
        longer in flight (timed out, already answered) is counted as stale and
        changes nothing else.

        Raises:
            UsageError: `now` went backwards or is not finite, `seq` was never
                issued, or `status` is not a non-empty string.
        """
        # One cheap test for the common valid call; the checkers name what is wrong.
        if not (
            type(now) is float
            and self._now <= now <= MAX_TIME
            and type(seq) is int
            and 0 < seq < self._next_seq
            and type(status) is str
            and status
        ):
            now = self._check_now(now)
            self._check_seq(seq)
            _require_status("status", status)
        actions = self._begin(now)
        if actions is None:
            return ()
        if seq != self._flight_seq:
            self._stale_responses += 1
        else:
            sent_status = self._flight_status
            self._flight_seq = None
            self._failed_attempts = 0
            if status == sent_status:
                self._renewals += 1
                self._renew(self._flight_sent_at, now, actions)
                self._next_beat_at = self._cadence_from + self._interval
            else:
                self._signals += 1
                if self._status == sent_status:
                    actions.append(StatusChanged(old=self._status, new=status))
                    self._status = status
            if self._status != sent_status:
                # A new status, local or signalled, goes out at once.
                self._next_beat_at = now
        return self._finish(now, actions)

    def handle_failure(
        self, seq: int, now: float, retry_after: float | None = None
    ) -> tuple[Action, ...]:
        """Request `seq` failed at time `now` (seconds) without a usable answer.

        Schedules a retry with jittered exponential backoff; `retry_after`
        (seconds, from the server's Retry-After) raises the delay, up to the
        interval. A failure of a request no longer in flight is counted as stale.

        Raises:
            UsageError: `now` went backwards or is not finite, `seq` was never
                issued, or `retry_after` is not None or a finite number >= 0.
        """
        now = self._check_now(now)
        self._check_seq(seq)
        if retry_after is not None:
            retry_after = _require_number("retry_after", retry_after)
            if retry_after < 0:
                raise UsageError("retry_after", retry_after, "must be >= 0")
        actions = self._begin(now)
        if actions is None:
            return ()
        if seq != self._flight_seq:
            self._stale_responses += 1
        else:
            self._failures += 1
            self._end_failed_attempt(now, retry_after)
        return self._finish(now, actions)

    def set_status(self, status: str, now: float) -> tuple[Action, ...]:
        """The application's status is now `status` (at time `now`, seconds).

        A different status goes out at once, or as soon as the request in flight
        ends; that request's answer never overwrites it.

        Raises:
            UsageError: `now` went backwards or is not finite, or `status` is not
                a non-empty string.
        """
        now = self._check_now(now)
        status = _require_status("status", status)
        actions = self._begin(now)
        if actions is None:
            return ()
        if status != self._status:
            self._status = status
            if self._flight_seq is None:
                self._next_beat_at = now
        return self._finish(now, actions)

    def beat_now(self, now: float) -> tuple[Action, ...]:
        """Send a beat at time `now` (seconds) instead of when it is due.

        For a caller that logs heartbeats by hand (the seed's `tick()`). If a beat
        is in flight, that beat is the one: nothing more is sent. The cadence then
        runs from this beat.

        Raises:
            UsageError: `now` went backwards or is not finite.
        """
        now = self._check_now(now)
        actions = self._begin(now)
        if actions is None:
            return ()
        if self._flight_seq is None:
            self._next_beat_at = now
        return self._finish(now, actions)

    def reset_timer(self, now: float) -> tuple[Action, ...]:
        """A heartbeat was logged by other means at time `now` (seconds).

        Counts as a renewal sent at `now`: the lease runs from it, the next beat
        is due one interval later, and a lapsed lease is restored.

        Raises:
            UsageError: `now` went backwards or is not finite.
        """
        now = self._check_now(now)
        actions = self._begin(now)
        if actions is None:
            return ()
        self._renew(now, now, actions)
        self._cadence_from = now
        self._failed_attempts = 0
        # The cadence restarts from the external beat, unless a newer local
        # status still has to go out: that stays due at once (rule 9).
        if self._flight_seq is None and self._status == self._flight_status:
            self._next_beat_at = now + self._interval
        return self._finish(now, actions)

    def abandon(self, seq: int, now: float) -> tuple[Action, ...]:
        """The driver gave up request `seq` at time `now` (seconds) for reasons of
        its own (it is stopping, or was cancelled), not the server's.

        The request no longer counts as in flight, nothing is counted as failed,
        and the next beat is due at once; it is sent by the next input that may
        send (`tick`, usually), never by this one. Abandoning a request that is
        no longer in flight changes nothing.

        Raises:
            UsageError: `now` went backwards or is not finite, or `seq` was never
                issued.
        """
        now = self._check_now(now)
        self._check_seq(seq)
        actions = self._begin(now)
        if actions is None:
            return ()
        if seq == self._flight_seq:
            self._flight_seq = None
            self._next_beat_at = now
        self._reschedule()
        return tuple(actions)

    def stop(self, now: float) -> tuple[Action, ...]:
        """Stop for good at time `now` (seconds): nothing is sent any more.

        A request in flight is abandoned; later answers and failures, and every
        other input, are checked for validity and then ignored.

        Raises:
            UsageError: `now` went backwards or is not finite.
        """
        self._now = self._check_now(now)
        self._stopped = True
        self._flight_seq = None
        # -inf sends every later input through the checked path.
        self._wake_at = -math.inf
        return ()

    # ----------------------------------------------------------------- queries

    @property
    def next_deadline(self) -> float | None:
        """Time (seconds) of the next thing `tick` would do; None once stopped."""
        return None if self._stopped else self._wake_at

    @property
    def interval(self) -> float:
        """Seconds between heartbeats, measured send to send."""
        return self._interval

    @property
    def report_by_buffer(self) -> float:
        """Multiplier of the interval that gives the lease asked of the server."""
        return self._buffer

    @property
    def next_report_increment(self) -> float:
        """Seconds the server is asked to wait for the next beat (interval * buffer)."""
        return self._increment

    @property
    def lease_margin(self) -> float:
        """Seconds the local lease ends before send time + next_report_increment."""
        return self._increment - self._lease_length

    @property
    def current_status(self) -> str:
        """The status the next beat will report."""
        return self._status

    @property
    def last_heartbeat_time(self) -> float:
        """Send time (seconds) of the last renewal (or reset_timer, or construction)."""
        return self._renewed_at

    @property
    def lease_deadline(self) -> float:
        """When the lease runs out (seconds): last_heartbeat_time +
        next_report_increment - lease_margin."""
        return self._lease_deadline

    @property
    def lapsed(self) -> bool:
        """True from `LeaseLapsed` until `LeaseRestored`."""
        return self._lapsed

    @property
    def stopped(self) -> bool:
        """True once `stop` was called."""
        return self._stopped

    @property
    def in_flight(self) -> int | None:
        """Sequence number of the request awaiting an outcome, or None."""
        return self._flight_seq

    @property
    def stats(self) -> HeartbeatStats:
        """A snapshot of the counters."""
        return HeartbeatStats(
            beats_sent=self._beats_sent,
            renewals=self._renewals,
            signals=self._signals,
            failures=self._failures,
            timeouts=self._timeouts,
            stale_responses=self._stale_responses,
            lapses=self._lapses,
            max_renewal_gap=self._max_renewal_gap,
            max_tick_lateness=self._max_tick_lateness,
        )

    def time_since_last_heartbeat(self, now: float) -> float:
        """Seconds from `last_heartbeat_time` to `now` (seconds)."""
        return _require_time("now", now) - self._renewed_at

    def is_heartbeat_due(self, now: float) -> bool:
        """Whether a beat is due at `now` (seconds), as of the last input.

        True when no request is in flight and the next beat's time has come. A
        request past its deadline still counts as in flight until an input at or
        after that deadline ends it (and schedules its retry).
        """
        now = _require_time("now", now)
        return (
            not self._stopped and self._flight_seq is None and now >= self._next_beat_at
        )

    # ---------------------------------------------------------------- internals

    def _check_now(self, now: object) -> float:
        """`now` as a float, if it is a valid next time; the caller stores it."""
        checked = _require_time("now", now)
        if checked < self._now:
            raise UsageError(
                "now",
                now,
                f"must not be earlier than the last time given ({self._now!r})",
            )
        return checked

    def _check_seq(self, seq: object) -> None:
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise UsageError("seq", seq, "must be an int")
        if not 1 <= seq < self._next_seq:
            raise UsageError("seq", seq, "was never issued by this machine")

    def _begin(self, now: float) -> list[Action] | None:
        """Store `now` (valid) and apply what time caused; None once stopped."""
        self._now = now
        if self._stopped:
            return None
        actions: list[Action] = []
        if now >= self._wake_at:
            self._advance(now, actions)
        return actions

    def _advance(self, now: float, actions: list[Action]) -> None:
        """Apply what time caused up to `now`: an expired request, then a lapse."""
        if self._flight_seq is not None and now >= self._flight_deadline:
            self._timeouts += 1
            self._end_failed_attempt(self._flight_deadline, None)
        if not self._lapsed and now >= self._lease_deadline:
            self._lapsed = True
            self._lapsed_at = self._lease_deadline
            self._lapses += 1
            actions.append(LeaseLapsed(deadline=self._lease_deadline))

    def _end_failed_attempt(self, at: float, retry_after: float | None) -> None:
        """The request in flight failed at time `at`: schedule the retry."""
        sent_status = self._flight_status
        self._flight_seq = None
        self._failed_attempts += 1
        if self._status != sent_status:
            self._next_beat_at = at
            return
        exponent = min(self._failed_attempts - 1, 64)  # 2**64 s is past any cap
        delay = min(self._backoff_initial * 2.0**exponent, self._interval)
        delay *= 0.5 + 0.5 * self._rng.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._interval))
        # While the lease is live the retry takes at most half of what remains,
        # so it (and a retry after it) can still renew in time.
        half_remaining = (self._lease_deadline - at) / 2
        if half_remaining >= self._min_retry_delay:
            delay = min(delay, half_remaining)
        # Never fewer than one attempt per interval, whatever the backoff.
        self._next_beat_at = min(at + delay, self._cadence_from + self._interval)

    def _finish(self, now: float, actions: list[Action]) -> tuple[Action, ...]:
        """End every input: send the beat if one is due, then recompute wake time."""
        if self._flight_seq is None and now >= self._next_beat_at:
            self._send(now, actions)
        self._reschedule()
        return tuple(actions)

    def _reschedule(self) -> None:
        """Recompute the wake time (next_deadline) from the state."""
        in_flight = self._flight_seq is not None
        wake = self._flight_deadline if in_flight else self._next_beat_at
        if not self._lapsed and self._lease_deadline < wake:
            wake = self._lease_deadline
        self._wake_at = wake

    def _send(self, now: float, actions: list[Action]) -> None:
        budget = self._request_budget
        # While the lease is live a request takes at most half of what remains,
        # so that a retry after its timeout can still renew in time.
        half_remaining = (self._lease_deadline - now) / 2
        if self._min_retry_delay <= half_remaining < budget:
            budget = half_remaining
        seq = self._next_seq
        self._next_seq = seq + 1
        self._flight_seq = seq
        self._flight_status = self._status
        self._flight_sent_at = now
        self._flight_deadline = deadline = now + budget
        self._cadence_from = now
        self._beats_sent += 1
        actions.append(new_send_heartbeat(seq, self._status, self._increment, deadline))

    def _renew(self, sent_at: float, now: float, actions: list[Action]) -> None:
        """A renewal of a beat sent at `sent_at` was learnt at `now`."""
        if sent_at > self._renewed_at:
            gap = sent_at - self._renewed_at
            if gap > self._max_renewal_gap:
                self._max_renewal_gap = gap
            self._renewed_at = sent_at
            self._lease_deadline = sent_at + self._lease_length
        if self._lapsed and self._lease_deadline > now:
            self._lapsed = False
            actions.append(
                LeaseRestored(lapsed_at=self._lapsed_at, deadline=self._lease_deadline)
            )
