"""The injected clocks: real time, manual time for exact tests, virtual time for fast replays."""

from __future__ import annotations

import asyncio
import time

import pytest

from cts_desktop.exchanges.clock import Clock, ManualClock, SystemClock, VirtualClock, wait_until_idle


def test_every_clock_satisfies_the_protocol() -> None:
    for clock in (SystemClock(), ManualClock(), VirtualClock()):
        assert isinstance(clock, Clock)


@pytest.mark.asyncio
async def test_system_clock_reads_wall_time_and_sleeps() -> None:
    clock = SystemClock()
    assert abs(clock.now_ms() - time.time() * 1000) < 1000
    start = clock.now_ms()
    await clock.sleep_until_ms(start + 30)
    assert clock.now_ms() >= start + 30
    await clock.sleep_until_ms(start - 10_000)  # in the past: returns at once
    await clock.sleep(0.01)
    await clock.sleep(-1)


@pytest.mark.asyncio
async def test_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(1_000)
    woke: list[int] = []

    async def sleeper() -> None:
        await clock.sleep_until_ms(5_000)
        woke.append(clock.now_ms())

    task = asyncio.create_task(sleeper())
    await wait_until_idle()
    assert clock.pending == 1 and clock.next_deadline_ms == 5_000
    await clock.advance(3_999)
    assert not task.done() and clock.now_ms() == 4_999
    await clock.advance(1)
    await task
    assert woke == [5_000]
    assert clock.pending == 0 and clock.next_deadline_ms is None


@pytest.mark.asyncio
async def test_manual_clock_wakes_each_deadline_in_order_so_loops_see_every_step() -> None:
    clock = ManualClock(0)
    seen: list[tuple[str, int]] = []

    async def every(name: str, seconds: float, count: int) -> None:
        for _ in range(count):
            await clock.sleep(seconds)
            seen.append((name, clock.now_ms()))

    tasks = [asyncio.create_task(every("a", 1.0, 5)), asyncio.create_task(every("b", 2.0, 2))]
    await clock.advance(5_000)  # one call crosses seven wake-ups
    await asyncio.gather(*tasks)
    # equal deadlines wake in the order the sleeps began (b slept for 2000 before a did)
    assert seen == [("a", 1000), ("b", 2000), ("a", 2000), ("a", 3000), ("b", 4000), ("a", 4000), ("a", 5000)]
    assert clock.now_ms() == 5_000


@pytest.mark.asyncio
async def test_manual_clock_refuses_to_go_backwards_and_survives_cancelled_sleepers() -> None:
    clock = ManualClock(10_000)
    with pytest.raises(ValueError, match="backwards"):
        await clock.advance_to(9_999)
    task = asyncio.create_task(clock.sleep_until_ms(20_000))
    await wait_until_idle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0
    await clock.advance(20_000)  # nothing to wake, no error
    assert clock.now_ms() == 30_000


@pytest.mark.asyncio
async def test_manual_clock_release_all_wakes_sleepers_without_moving_time() -> None:
    clock = ManualClock(0)
    task = asyncio.create_task(clock.sleep(60))
    await wait_until_idle()
    clock.release_all()
    await task
    assert clock.now_ms() == 0


@pytest.mark.asyncio
async def test_virtual_clock_jumps_to_the_next_wake_up_at_cpu_speed() -> None:
    clock = VirtualClock(0)
    started = time.perf_counter()
    await clock.sleep(3600)  # one virtual hour
    for _ in range(1000):
        await clock.sleep(1)
    assert clock.now_ms() == 3_600_000 + 1_000_000
    assert time.perf_counter() - started < 2.0


@pytest.mark.asyncio
async def test_virtual_clock_interleaves_sleepers_deterministically() -> None:
    async def run() -> list[tuple[str, int]]:
        clock = VirtualClock(0)
        seen: list[tuple[str, int]] = []

        async def every(name: str, ms: int, count: int) -> None:
            for _ in range(count):
                await clock.sleep_until_ms(clock.now_ms() + ms)
                seen.append((name, clock.now_ms()))

        await asyncio.gather(every("fast", 300, 10), every("slow", 1000, 3))
        return seen

    first = await run()
    assert first == await run()
    times = [t for _, t in first]
    assert times == sorted(times)
    assert ("slow", 3000) in first and ("fast", 3000) in first


@pytest.mark.asyncio
async def test_virtual_clock_does_not_jump_while_another_task_still_works() -> None:
    clock = VirtualClock(0)
    observed: list[int] = []

    async def busy() -> None:
        for _ in range(50):  # many loop turns of work at time 0
            observed.append(clock.now_ms())
            await asyncio.sleep(0)

    sleeper = asyncio.create_task(clock.sleep_until_ms(10_000))
    await busy()
    await sleeper
    assert observed == [0] * 50
    assert clock.now_ms() == 10_000


@pytest.mark.asyncio
async def test_sleeping_zero_or_into_the_past_only_yields() -> None:
    clock = ManualClock(500)
    await clock.sleep(0)
    await clock.sleep_until_ms(100)
    assert clock.now_ms() == 500
