"""The group driver on asyncio and trio, in virtual time, with in-memory gateways.

Every test runs on both frameworks (see conftest). The group's promise: each lease
beats at its machine's times, requests are concurrent across leases but at most
`max_concurrent_requests` at once and one per lease, and leases come and go safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest

from sansbeat import Action, LeaseLapsed, LeaseRestored, StatusChanged
from sansbeat.adapters import HeartbeatAnswer, HeartbeatGroup, HeartbeatRequestFailed
from sansbeat.adapters.group import LeaseHandle
from tests.gateways import Answer, AsyncScriptedGateway, Fail, Hang, Script, echo

pytestmark = pytest.mark.anyio


@dataclass
class CountingGateway:
    """Answers after `delay` seconds, counting requests in flight (all leases)."""

    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    calls: list[tuple[float, str]] = field(default_factory=list)
    cancelled: int = 0

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        self.calls.append((anyio.current_time(), status))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        return HeartbeatAnswer(status)


@dataclass
class PerLeaseGateway:
    """One lease's view of a shared CountingGateway, checking single flight."""

    shared: CountingGateway
    in_flight: int = 0
    max_in_flight: int = 0

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.shared.log_heartbeat(status, next_report_increment)
        finally:
            self.in_flight -= 1


def _gateway(script: Script = echo) -> AsyncScriptedGateway:
    return AsyncScriptedGateway(script, start=anyio.current_time())


async def test_many_leases_beat_at_their_cadence() -> None:
    start = anyio.current_time()
    gateways = [_gateway() for _ in range(50)]
    async with HeartbeatGroup() as group:
        handles = []
        for index, gateway in enumerate(gateways):
            handles.append(
                group.add(
                    gateway, interval=10.0, report_by_buffer=1.5, initial_status="R"
                )
            )
            if index % 10 == 9:
                await anyio.sleep(1.0)  # five phases, one second apart
        await anyio.sleep_until(start + 55.0)
        for index, (gateway, handle) in enumerate(zip(gateways, handles, strict=True)):
            phase = float(index // 10)
            times = [call.at for call in gateway.calls]
            expected = [phase + 10.0 * k for k in range(1, 6) if phase + 10.0 * k < 55]
            assert times == pytest.approx(expected)
            assert handle.machine.stats.renewals == len(expected)
            assert handle.machine.stats.max_tick_lateness == 0.0
        assert group.leases == 50


async def test_concurrency_limit_is_respected() -> None:
    shared = CountingGateway(delay=2.0)
    async with HeartbeatGroup(max_concurrent_requests=5) as group:
        handles = [
            group.add(shared, interval=10.0, report_by_buffer=3.0, initial_status="R")
            for _ in range(20)
        ]
        await anyio.sleep(39.0)
        assert shared.max_in_flight == 5
        assert group.requests_in_flight <= 5
    # 20 beats every 10 s, 5 at a time for 2 s each: each round ends in 8 s.
    assert [h.machine.stats.renewals for h in handles] == [3] * 20
    assert shared.in_flight == 0


async def test_requests_are_single_flight_per_lease_and_concurrent_across() -> None:
    shared = CountingGateway(delay=4.0)
    gateways = [PerLeaseGateway(shared) for _ in range(10)]
    async with HeartbeatGroup(max_concurrent_requests=100) as group:
        handles = [
            group.add(gw, interval=5.0, report_by_buffer=3.0, initial_status="R")
            for gw in gateways
        ]
        for _ in range(6):
            await anyio.sleep(3.0)
            for handle in handles:
                handle.set_status("R2" if handle.machine.current_status == "R" else "R")
    assert all(gw.max_in_flight == 1 for gw in gateways)
    assert shared.max_in_flight == 10


async def test_add_and_remove_while_running() -> None:
    gateways = [_gateway() for _ in range(6)]
    async with HeartbeatGroup() as group:
        first = [
            group.add(gw, interval=2.0, report_by_buffer=1.5, initial_status="R")
            for gw in gateways[:3]
        ]
        await anyio.sleep(5.0)  # two beats each
        group.remove(first[0])
        group.remove(first[0])  # idempotent
        later = [
            group.add(gw, interval=2.0, report_by_buffer=1.5, initial_status="R")
            for gw in gateways[3:]
        ]
        await anyio.sleep(5.5)
        assert group.leases == 5
        assert not first[0].active
        with pytest.raises(RuntimeError):
            first[0].set_status("X")
    assert len(gateways[0].calls) == 2
    assert [len(gw.calls) for gw in gateways[1:3]] == [5, 5]
    assert [len(gw.calls) for gw in gateways[3:]] == [2, 2, 2]
    assert all(not handle.active for handle in first + later)


async def test_remove_cancels_and_abandons_the_request_in_flight() -> None:
    gateway = _gateway(lambda at, status: Hang())
    async with HeartbeatGroup() as group:
        handle = group.add(
            gateway, interval=5.0, report_by_buffer=3, initial_status="R"
        )
        await anyio.sleep(6.0)
        assert handle.machine.in_flight is not None
        group.remove(handle)
        await anyio.sleep(0.1)
        assert handle.machine.in_flight is None
        assert gateway.calls[0].finished
        assert gateway.calls[0].cancelled
        await anyio.sleep(20.0)
    assert len(gateway.calls) == 1
    assert not handle.machine.stopped


async def test_a_failing_lease_does_not_disturb_the_others() -> None:
    error = HeartbeatRequestFailed("http_status", "503", http_status=503)
    bad = _gateway(lambda at, status: Fail(error))
    hanging = _gateway(lambda at, status: Hang())
    good = [_gateway() for _ in range(3)]
    events: list[tuple[LeaseHandle, Action]] = []
    async with HeartbeatGroup(
        max_concurrent_requests=2, on_event=lambda h, e: events.append((h, e))
    ) as group:
        bad_handle = group.add(
            bad, interval=5.0, report_by_buffer=2, initial_status="R"
        )
        group.add(hanging, interval=5.0, report_by_buffer=2, initial_status="R")
        good_handles = [
            group.add(gw, interval=5.0, report_by_buffer=2, initial_status="R")
            for gw in good
        ]
        await anyio.sleep(31.0)
    assert bad_handle.machine.stats.failures > 5
    assert bad_handle.machine.lapsed
    assert all(handle.machine.stats.renewals == 6 for handle in good_handles)
    assert all(not handle.machine.lapsed for handle in good_handles)
    assert all(h is bad_handle or h.gateway is hanging for h, _ in events)


async def test_events_reach_on_event_and_the_handle() -> None:
    def script(at: float, status: str) -> Answer | Fail:
        if 15.0 < at < 40.0:
            return Fail(OSError("down"))
        return Answer("D" if at > 55.0 else None)

    seen: list[tuple[LeaseHandle, Action]] = []

    def on_event(handle: LeaseHandle, event: Action) -> None:
        seen.append((handle, event))
        raise RuntimeError("a broken callback changes nothing")

    gateway = _gateway(script)
    async with HeartbeatGroup(on_event=on_event) as group:
        handle = group.add(
            gateway, interval=10.0, report_by_buffer=2, initial_status="R"
        )
        quiet = group.add(
            _gateway(), interval=10.0, report_by_buffer=2, initial_status="R"
        )
        await anyio.sleep(65.0)
    kinds = [type(event) for event in handle.events]
    assert kinds == [LeaseLapsed, LeaseRestored, StatusChanged]
    assert [event for h, event in seen] == list(handle.events)
    assert all(h is handle for h, _ in seen)
    assert handle.events[-1] == StatusChanged(old="R", new="D")
    assert quiet.events == ()


async def test_stop_of_one_handle() -> None:
    gateways = [_gateway(), _gateway()]
    async with HeartbeatGroup() as group:
        one, two = (
            group.add(gw, interval=3.0, report_by_buffer=2, initial_status="R")
            for gw in gateways
        )
        await anyio.sleep(4.0)
        one.stop()
        one.stop()
        assert one.machine.stopped
        assert not one.active
        await anyio.sleep(9.0)
        assert group.leases == 1
    assert len(gateways[0].calls) == 1
    assert len(gateways[1].calls) == 4
    assert not two.machine.stopped


async def test_set_status_and_reset_timer_move_the_schedule() -> None:
    gateway = _gateway()
    async with HeartbeatGroup() as group:
        handle = group.add(
            gateway, interval=10.0, report_by_buffer=2, initial_status="R"
        )
        await anyio.sleep(3.0)
        handle.set_status("D")  # goes out at once, earlier than the heap's top
        await anyio.sleep(4.0)
        handle.reset_timer()  # next beat 10 s from now (t=17)
        await anyio.sleep(11.0)
        handle.beat_now()
        await anyio.sleep(0.5)
    assert [round(call.at, 6) for call in gateway.calls] == [3.0, 17.0, 18.0]
    assert [call.status for call in gateway.calls] == ["D", "D", "D"]


async def test_exit_cancels_in_flight_requests_and_abandons_them() -> None:
    gateways = [_gateway(lambda at, status: Hang()) for _ in range(4)]
    async with HeartbeatGroup(max_concurrent_requests=2) as group:
        handles = [
            group.add(gw, interval=5.0, report_by_buffer=3, initial_status="R")
            for gw in gateways
        ]
        await anyio.sleep(6.0)
        assert sum(h.machine.in_flight is not None for h in handles) == 4
    assert all(h.machine.in_flight is None for h in handles)
    assert all(not h.active for h in handles)
    assert sum(len(gw.calls) for gw in gateways) == 2  # two waited for a slot
    assert all(call.finished and call.cancelled for gw in gateways for call in gw.calls)
    with pytest.raises(RuntimeError):
        group.add(_gateway(), interval=5.0, report_by_buffer=3, initial_status="R")


async def test_a_beat_that_waited_for_a_slot_past_its_deadline_is_not_sent() -> None:
    slow = _gateway(lambda at, status: Answer(delay=4.0))
    waiting = _gateway()
    async with HeartbeatGroup(max_concurrent_requests=1) as group:
        group.add(slow, interval=10.0, report_by_buffer=3, initial_status="R")
        late = group.add(
            waiting, interval=10.0, report_by_buffer=1.5, initial_status="R"
        )
        # Both due at t=10; the slow beat holds the only slot until t=14, and
        # `late`'s request deadline is t=12.5 (half the lease left), so neither
        # it nor its retry (due by t=13.5, deadline by t=14.25) may go out
        # before t=14.
        await anyio.sleep(13.9)
        assert waiting.calls == []
        assert late.machine.stats.timeouts >= 1
        await anyio.sleep(16.0)
    assert waiting.calls
    assert all(call.at >= 14.0 for call in waiting.calls)
    assert late.machine.stats.renewals >= 1
    assert not late.machine.lapsed


async def test_a_beat_that_waited_briefly_is_sent_when_a_slot_frees() -> None:
    slow = _gateway(lambda at, status: Answer(delay=1.0))
    other = _gateway()
    async with HeartbeatGroup(max_concurrent_requests=1) as group:
        group.add(slow, interval=10.0, report_by_buffer=1.5, initial_status="R")
        handle = group.add(
            other, interval=10.0, report_by_buffer=1.5, initial_status="R"
        )
        await anyio.sleep(12.0)
    assert [round(call.at, 6) for call in other.calls] == [11.0]
    assert handle.machine.stats.renewals == 1


async def test_an_injected_clock_at_the_framework_rate() -> None:
    offset = 1000.0
    gateway = _gateway()
    async with HeartbeatGroup(clock=lambda: anyio.current_time() + offset) as group:
        handle = group.add(
            gateway, interval=2.0, report_by_buffer=2, initial_status="R"
        )
        await anyio.sleep(7.0)
    assert [round(call.at, 6) for call in gateway.calls] == [2.0, 4.0, 6.0]
    assert handle.machine.last_heartbeat_time == pytest.approx(
        gateway.start_offset() + offset + 6.0
    )


async def test_an_idle_group_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        HeartbeatGroup(max_concurrent_requests=0)
    group = HeartbeatGroup()
    with pytest.raises(RuntimeError):
        group.add(_gateway(), interval=5.0, report_by_buffer=3, initial_status="R")
    async with group:
        await anyio.sleep(100.0)  # an empty heap: sleeps, wakes for nothing
    assert group.leases == 0


async def test_a_slow_gateway_does_not_hold_up_instant_ones() -> None:
    # The timer sends a beat inline; when a gateway suspends, the timer passes to
    # another task, so the instant lease still beats exactly on time.
    slow = CountingGateway(delay=1.0)
    instant_calls: list[float] = []

    class Instant:
        async def log_heartbeat(self, status: str, increment: float) -> object:
            instant_calls.append(anyio.current_time())
            return HeartbeatAnswer(status)

    start = anyio.current_time()
    async with HeartbeatGroup() as group:
        slow_handle = group.add(
            slow, interval=2.0, report_by_buffer=8.0, initial_status="R"
        )
        group.add(Instant(), interval=2.0, report_by_buffer=1.5, initial_status="R")
        await anyio.sleep(13.5)
        assert group.requests_in_flight <= 1
    assert [t - start for t in instant_calls] == pytest.approx(
        [2.0 * k for k in range(1, 7)]
    )
    assert slow_handle.machine.stats.renewals == len(slow.calls) == 6
    assert slow.max_in_flight == 1


@dataclass
class SlowToUnwindGateway:
    """The first call hangs and, once cancelled, takes `unwind` seconds to end (a
    connection still closing); later calls answer at once. Records every call's
    (start, end) and the most calls seen running at once."""

    unwind: float
    spans: list[tuple[float, float]] = field(default_factory=list)
    running: int = 0
    most_running: int = 0

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        start = anyio.current_time()
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if not self.spans:
                try:
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True):
                        await anyio.sleep(self.unwind)
            return HeartbeatAnswer(status)
        finally:
            self.running -= 1
            self.spans.append((start, anyio.current_time()))


async def test_a_retry_waits_for_the_cancelled_call_to_unwind() -> None:
    # The beat at 10 s times out at 11 s and unwinds until 13 s. The first retry
    # (due by 11.1 s, deadline by 12.1 s) waits and is given up; the second (due
    # by 12.3 s, deadline after 13.15 s) waits and goes out when the call ends.
    gateway = SlowToUnwindGateway(unwind=2.0)
    async with HeartbeatGroup() as group:
        start = anyio.current_time()
        handle = group.add(
            gateway,
            interval=10.0,
            report_by_buffer=1.5,
            initial_status="R",
            request_timeout=1.0,
            backoff_initial=0.1,
        )
        await anyio.sleep(14.0)
        assert gateway.most_running == 1
        (first, second) = [(a - start, b - start) for a, b in gateway.spans]
        assert first == pytest.approx((10.0, 13.0))
        assert second[0] == pytest.approx(13.0)
        stats = handle.machine.stats
        # Three beats, two timed out (one never reached the gateway), one renewed.
        assert (stats.beats_sent, stats.timeouts, stats.renewals) == (3, 2, 1)


async def test_exit_after_a_blocked_loop_reports_the_lapse_abandoning_finds() -> None:
    # The loop is blocked (the clock jumps 100 s) while a beat is in flight, and
    # the group exits before the scheduler ticks again: abandoning that request
    # is the input that learns the lapse, and it reports it.
    blocked = [0.0]
    events: list[Action] = []
    gateway = _gateway(lambda at, status: Hang())
    async with HeartbeatGroup(
        clock=lambda: anyio.current_time() + blocked[0],
        on_event=lambda handle, event: events.append(event),
    ) as group:
        handle = group.add(
            gateway, interval=10.0, report_by_buffer=1.5, initial_status="R"
        )
        await anyio.sleep(10.5)
        assert handle.machine.in_flight is not None
        assert events == []
        blocked[0] = 100.0
    assert handle.machine.in_flight is None
    assert [type(event) for event in events] == [LeaseLapsed]
    assert list(handle.events) == events
    assert handle.machine.stats.lapses == 1
