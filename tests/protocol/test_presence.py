"""PresenceBook: coalesced cursor broadcasts, rate-limited status, sweep to idle and away."""

from __future__ import annotations

import pytest

from collab_lsp.protocol.models import Cursor, PresenceStatus, Viewport
from collab_lsp.protocol.presence import PresenceBook

ACTIVE, IDLE, AWAY = PresenceStatus.ACTIVE, PresenceStatus.IDLE, PresenceStatus.AWAY


def at(line: int) -> Cursor:
    return Cursor(file="src/app.py", line=line, column=1)


@pytest.fixture
def book() -> PresenceBook:
    book = PresenceBook(cursor_interval=0.05, status_interval=1.0, idle_after=60, away_after=300)
    book.arrive("bob", 0.0)
    return book


def test_first_cursor_goes_out_at_once(book: PresenceBook) -> None:
    assert book.move_cursor("bob", at(1), 0.0) == 0.0
    state = book.take_due("bob", 0.0)
    assert state is not None and state.cursor == at(1)
    assert book.take_due("bob", 0.0) is None  # nothing new since


def test_cursor_moves_within_the_interval_coalesce_latest_wins(book: PresenceBook) -> None:
    book.move_cursor("bob", at(1), 0.0)
    book.take_due("bob", 0.0)
    assert book.move_cursor("bob", at(2), 0.01) == pytest.approx(0.05)
    assert book.move_cursor("bob", at(3), 0.02) == pytest.approx(0.05)
    state = book.take_due("bob", 0.05)
    assert state is not None and state.cursor == at(3)
    assert book.take_due("bob", 0.06) is None


def test_a_cursor_after_a_quiet_spell_is_due_when_it_happens(book: PresenceBook) -> None:
    book.move_cursor("bob", at(1), 0.0)
    book.take_due("bob", 0.0)
    assert book.move_cursor("bob", at(2), 5.0) == 5.0


def test_viewport_is_kept_beside_the_cursor(book: PresenceBook) -> None:
    viewport = Viewport(file="src/app.py", start_line=30, end_line=60)
    book.move_cursor("bob", at(42), 0.0)
    book.update("bob", 0.01, viewport=viewport)
    state = book.take_due("bob", 0.1)
    assert state is not None
    assert (state.cursor, state.viewport) == (at(42), viewport)


def test_status_changes_are_rate_limited(book: PresenceBook) -> None:
    assert book.update("bob", 0.0, status=IDLE) == 0.0
    first = book.take_due("bob", 0.0)
    assert first is not None and first.status is IDLE
    assert book.update("bob", 0.1, status=AWAY) == pytest.approx(1.0)
    assert book.pending_at("bob") == pytest.approx(1.0)
    early = book.take_due("bob", 0.5)
    assert early is None or early.status is IDLE  # the new status waits for its turn
    late = book.take_due("bob", 1.0)
    assert late is not None and late.status is AWAY
    assert book.pending_at("bob") is None


def test_repeating_the_same_status_does_not_restart_the_limit(book: PresenceBook) -> None:
    book.update("bob", 0.0, status=IDLE)
    book.take_due("bob", 0.0)
    book.update("bob", 2.0, status=IDLE)
    book.take_due("bob", 2.0)
    assert book.update("bob", 2.1, status=AWAY) == pytest.approx(2.1)
    state = book.take_due("bob", 2.1)
    assert state is not None and state.status is AWAY


def test_sweep_turns_silent_users_idle_then_away(book: PresenceBook) -> None:
    book.arrive("carol", 30.0)
    assert book.sweep(59.0) == []
    assert book.sweep(60.0) == ["bob"]
    assert book.users["bob"].status is IDLE
    assert book.sweep(61.0) == []  # already idle: no repeat
    assert book.sweep(90.0) == ["carol"]
    assert book.sweep(300.0) == ["bob"]
    assert book.users["bob"].status is AWAY
    state = book.take_due("bob", 300.0)
    assert state is not None and state.status is AWAY


def test_activity_wakes_a_swept_user(book: PresenceBook) -> None:
    book.sweep(60.0)
    book.take_due("bob", 60.0)
    due = book.move_cursor("bob", at(5), 61.0)
    state = book.take_due("bob", max(due, book.pending_at("bob") or 0.0))
    assert state is not None
    assert state.status is ACTIVE and state.cursor == at(5)


def test_sweep_leaves_an_explicit_status_alone(book: PresenceBook) -> None:
    book.update("bob", 0.0, status=IDLE)
    book.take_due("bob", 0.0)
    assert book.sweep(1000.0) == []
    assert book.users["bob"].status is IDLE


def test_snapshot_and_depart(book: PresenceBook) -> None:
    book.arrive("carol", 1.0)
    book.move_cursor("carol", at(7), 1.5)
    snapshot = book.snapshot()
    assert set(snapshot) == {"bob", "carol"}
    assert snapshot["carol"].cursor == at(7)
    assert snapshot["carol"].last_activity == "1970-01-01T00:00:01.500Z"
    book.depart("carol")
    assert set(book.snapshot()) == {"bob"}
    assert book.take_due("carol", 2.0) is None
