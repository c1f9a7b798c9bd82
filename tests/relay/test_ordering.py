"""InOrder: committed events released once each, in seq order, whatever order they come in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collab_lsp.relay.ordering import InOrder
from collab_lsp.relay.store.base import CommittedEvent


def event(seq: int) -> CommittedEvent:
    return CommittedEvent("s", f"e{seq}", seq, "chat_message", {}, f"wire {seq}")


def seqs(events: list[CommittedEvent]) -> list[int]:
    return [e.seq for e in events]


def test_the_next_seq_goes_straight_through() -> None:
    order = InOrder(last_seq=4)
    assert seqs(order.offer(event(5))) == [5]
    assert order.last_seq == 5 and not order.waiting


def test_an_early_event_waits_for_the_gap_and_leaves_with_it() -> None:
    order = InOrder(last_seq=4)
    assert order.offer(event(7)) == []
    assert order.offer(event(6)) == []
    assert order.waiting
    assert seqs(order.offer(event(5))) == [5, 6, 7]
    assert not order.waiting


def test_duplicates_and_old_events_are_dropped() -> None:
    order = InOrder(last_seq=4)
    assert order.offer(event(3)) == []
    assert order.offer(event(4)) == []
    assert order.offer(event(6)) == []
    assert order.offer(event(6)) == []
    assert seqs(order.offer(event(5))) == [5, 6]


def test_skip_to_closes_a_hole_the_store_confirms() -> None:
    order = InOrder(last_seq=1)
    order.offer(event(5))
    order.offer(event(6))
    assert seqs(order.skip_to(4)) == [5, 6]
    assert order.last_seq == 6
    assert order.skip_to(2) == []


@given(st.permutations(list(range(1, 30))), st.lists(st.integers(1, 29), max_size=10))
def test_any_arrival_order_with_repeats_is_released_in_order_once(
    arrival: list[int], repeats: list[int]
) -> None:
    order = InOrder()
    released: list[int] = []
    for seq in [*arrival[:15], *repeats, *arrival[15:]]:
        released += seqs(order.offer(event(seq)))
    assert released == list(range(1, 30))
    assert not order.waiting
