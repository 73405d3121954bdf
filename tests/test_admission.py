"""Fair admission in-process: round robin between clients, per-client shares and run-time budgets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from runner.admission import Admission, Share
from runner.errors import Refused

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def admitted(admission: Admission, client: str) -> asyncio.Task[None]:
    task = asyncio.create_task(admission.acquire(client))
    await asyncio.sleep(0)  # let it reach its slot or its place in the queue
    return task


async def test_a_client_with_many_queued_runs_does_not_hold_back_another_clients_first_run() -> None:
    admission = Admission(slots=2, max_queue=16, share=Share(per_client=1, client_queue=5, run_seconds_per_minute=0))
    hog = [await admitted(admission, "hog") for _ in range(4)]
    assert hog[0].done() and not any(t.done() for t in hog[1:])  # one at a time for the hog
    other = await admitted(admission, "reader")
    assert other.done(), "the reader's first run waited behind the hog's queue although a slot was free"
    admission.release("hog", 1.0)
    await asyncio.sleep(0)
    assert hog[1].done() and not hog[2].done()
    for task in hog[2:]:
        task.cancel()
    await asyncio.gather(*hog[2:], return_exceptions=True)
    assert admission.waiting == 0


async def test_clients_are_served_in_turn_when_slots_are_scarce() -> None:
    admission = Admission(slots=1, max_queue=16, share=Share(per_client=1, client_queue=5, run_seconds_per_minute=0))
    first = await admitted(admission, "a")
    queued = [await admitted(admission, name) for name in ("a", "a", "b", "c")]
    order: list[str] = []
    holder = "a"
    for _ in range(4):
        done_before = {i for i, t in enumerate(queued) if t.done()}
        admission.release(holder, 0.1)
        await asyncio.sleep(0)
        newly = [i for i, t in enumerate(queued) if t.done() and i not in done_before]
        assert len(newly) == 1
        holder = ["a", "a", "b", "c"][newly[0]]
        order.append(holder)
    assert first.done()
    assert order == ["b", "c", "a", "a"]  # the clients not yet served go before the one that just ran


async def test_a_full_client_queue_is_refused_with_its_reason() -> None:
    refusals: list[str] = []
    admission = Admission(
        slots=1, max_queue=16, share=Share(1, client_queue=1, run_seconds_per_minute=0), on_refusal=refusals.append
    )
    running = await admitted(admission, "a")
    waiting = await admitted(admission, "a")
    with pytest.raises(Refused) as refused:
        await admission.acquire("a")
    assert refused.value.code == "client_queue_full" and refused.value.retry_after >= 1
    assert refusals == ["client_queue_full"]
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert running.done()


async def test_the_global_queue_is_bounded() -> None:
    admission = Admission(slots=1, max_queue=2, share=Share(1, client_queue=5, run_seconds_per_minute=0))
    tasks = [await admitted(admission, name) for name in ("a", "b", "c")]
    with pytest.raises(Refused) as refused:
        await admission.acquire("d")
    assert refused.value.code == "busy"
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_run_time_is_charged_and_the_budget_refills() -> None:
    clock = Clock()
    admission = Admission(slots=4, max_queue=16, share=Share(2, 3, run_seconds_per_minute=60), clock=clock)
    await admission.acquire("a")
    admission.release("a", 61.0)  # one long run used a minute's worth and a second more
    with pytest.raises(Refused) as refused:
        await admission.acquire("a")
    assert refused.value.code == "run_time_budget"
    assert 1 <= refused.value.retry_after <= 3
    await admission.acquire("b")  # another client is not affected
    clock.now += 3
    await admission.acquire("a")


async def test_a_granted_slot_abandoned_before_use_is_given_on() -> None:
    admission = Admission(slots=1, max_queue=16, share=Share(1, 3, 0))
    await admission.acquire("a")
    waiter = await admitted(admission, "b")
    admission.release("a", 0.1)  # grants b's waiter...
    waiter.cancel()  # ...whose request went away before it resumed
    await asyncio.gather(waiter, return_exceptions=True)
    assert admission.running == 0
    await asyncio.wait_for(admission.acquire("c"), 1)


async def test_a_burst_waits_in_line_while_the_wait_is_short_and_is_refused_when_it_is_long() -> None:
    admission = Admission(slots=2, max_queue=100, share=Share(1 << 20, 1 << 20, 0), max_wait=2.9)
    for name in ("a", "b"):
        await admission.acquire(name)
        admission.release(name, 0.5, held_seconds=1.0)  # a slot is held about a second
        await admission.acquire(name)
    # two slots, a second each: the n-th in line waits about n / 2 s, so five fit under 2.9 s
    line = [admission.enqueue(f"reader-{i}") for i in range(5)]
    assert [admission.place(ticket) for ticket in line] == [1, 2, 3, 4, 5]
    with pytest.raises(Refused) as refused:
        admission.enqueue("one-too-many")
    assert refused.value.code == "busy" and refused.value.retry_after >= 2.9
    for ticket in line:
        admission.abandon(ticket)
    assert admission.waiting == 0


async def test_a_waiting_run_is_told_its_place_as_the_line_moves() -> None:
    admission = Admission(slots=1, max_queue=100, share=Share(1 << 20, 1 << 20, 0))
    await admission.acquire("holder")
    first, second = admission.enqueue("first"), admission.enqueue("second")
    places: list[int] = []

    async def follow() -> None:
        async for place in admission.wait(second):
            places.append(place)

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(_until(lambda: places == [2]), 1)
    admission.release("holder", 0.1)  # `first` is granted: `second` moves up
    await asyncio.wait_for(_until(lambda: places == [2, 1]), 1)
    assert first.granted and not second.granted
    admission.release("first", 0.1)
    await asyncio.wait_for(follower, 1)
    assert second.granted and places == [2, 1] and admission.waiting == 0


async def test_a_run_that_leaves_the_line_gives_its_place_up() -> None:
    admission = Admission(slots=1, max_queue=100, share=Share(1 << 20, 1 << 20, 0))
    await admission.acquire("holder")
    leaving, staying = admission.enqueue("leaving"), admission.enqueue("staying")
    places = admission.wait(staying)
    assert await anext(places) == 2
    admission.abandon(leaving)
    assert await asyncio.wait_for(anext(places), 1) == 1
    await places.aclose()  # the reader went away too
    assert admission.waiting == 0 and admission.running == 1


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0)
