"""Line anchors follow their text through range edits, full replacements and re-opens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab_lsp.sidecar.anchors import (
    LineEdit,
    SnippetIndex,
    find_snippet,
    map_lines,
    reanchor,
    shift_line,
    shift_lines,
)

DOC = [
    "def f():",  # 0
    "    a = 1",  # 1
    "    b = 2",  # 2
    "    return a + b",  # 3
    "",  # 4
    "print(f())",  # 5
]
TEXT = "\n".join(DOC)


def offset(text: str, line: int, character: int) -> int:
    """Offset of an LSP position in a ``\\n``-only text."""
    return sum(len(part) + 1 for part in text.split("\n")[:line]) + character


def apply(text: str, edit: LineEdit) -> str:
    start = offset(text, edit.start_line, edit.start_character)
    end = offset(text, edit.end_line, edit.end_character)
    return text[:start] + edit.new_text + text[end:]


def edit(start: tuple[int, int], end: tuple[int, int], new_text: str = "") -> LineEdit:
    return LineEdit(start[0], start[1], end[0], end[1], new_text)


def insert(line: int, character: int, new_text: str) -> LineEdit:
    return edit((line, character), (line, character), new_text)


def text_after(anchor: int, change: LineEdit, text: str = TEXT) -> str:
    """The line an anchor lands on after ``change``, read from the edited text."""
    return apply(text, change).split("\n")[shift_line(anchor, change)]


# --- shift_line: edits above and below -----------------------------------------------------------


def test_lines_inserted_above_push_the_anchor_down() -> None:
    change = insert(0, 0, "import os\nimport sys\n\n")
    assert shift_line(2, change) == 5
    assert text_after(2, change) == "    b = 2"


def test_lines_deleted_above_pull_the_anchor_up() -> None:
    change = edit((1, 0), (3, 0))  # "a = 1" and "b = 2"
    assert shift_line(3, change) == 1
    assert text_after(3, change) == "    return a + b"


def test_a_multi_line_edit_ending_above_shifts_by_the_net_line_breaks() -> None:
    change = edit((0, 4), (2, 5), "g():\n    c")  # removes 2 breaks, inserts 1
    assert shift_line(3, change) == 2
    assert text_after(3, change) == "    return a + b"


def test_a_newline_typed_at_the_end_of_the_line_above_pushes_the_anchor_down() -> None:
    change = insert(1, len(DOC[1]), "\n    ")
    assert shift_line(2, change) == 3
    assert text_after(2, change) == "    b = 2"


@pytest.mark.parametrize(
    "change",
    [
        insert(3, 0, "x\ny\n"),
        edit((3, 0), (5, 0)),
        edit((2, 9), (3, 4), "\n\n\n"),  # starts at the very end of the anchor's line
        insert(5, 3, "\n"),
    ],
)
def test_edits_below_leave_the_anchor_alone(change: LineEdit) -> None:
    assert shift_line(2, change) == 2
    assert text_after(2, change) == "    b = 2"


# --- shift_line: edits touching the anchor's line ------------------------------------------------


def test_deleting_the_anchors_line_moves_it_to_the_nearest_survivor() -> None:
    change = edit((2, 0), (3, 0))
    assert shift_line(2, change) == 2
    assert text_after(2, change) == "    return a + b"


@pytest.mark.parametrize("anchor", [1, 2, 3])
def test_deleting_a_block_of_whole_lines_moves_its_anchors_to_where_it_started(
    anchor: int,
) -> None:
    change = edit((1, 0), (4, 0))
    assert shift_line(anchor, change) == 1
    assert text_after(anchor, change) == ""  # the blank line after the block


def test_deleting_the_last_lines_moves_their_anchors_to_the_new_last_line() -> None:
    change = edit((3, len(DOC[3])), (5, len(DOC[5])))  # no final line break to take
    assert shift_line(4, change) == 3
    assert shift_line(5, change) == 3
    assert apply(TEXT, change).split("\n")[-1] == "    return a + b"


@pytest.mark.parametrize(
    "change",
    [
        edit((1, 8), (1, 9), "42"),  # the value
        edit((1, 4), (1, 5), "alpha"),  # the name
        edit((1, 0), (1, 4), "  "),  # re-indent: no line breaks, starts at character 0
        insert(1, 9, "  # one"),
    ],
)
def test_an_edit_within_the_anchors_line_keeps_it(change: LineEdit) -> None:
    assert shift_line(1, change) == 1


@pytest.mark.parametrize(
    ("character", "expected_text"),
    [
        (5, "    a"),  # typed in the middle: the line's start stays put
        (4, "    "),  # typed just before the code: the indentation stays
        (len(DOC[1]), "    a = 1"),  # typed at the end
    ],
)
def test_a_newline_typed_in_the_anchors_line_after_its_start_keeps_it(
    character: int, expected_text: str
) -> None:
    change = insert(1, character, "\n    ")
    assert shift_line(1, change) == 1
    assert text_after(1, change) == expected_text


@pytest.mark.parametrize(("new_text", "expected"), [("\n", 3), ("# one\n# two\n", 4), ("# ", 2)])
def test_an_insertion_at_character_0_of_the_anchors_line_pushes_it_down(
    new_text: str, expected: int
) -> None:
    change = insert(2, 0, new_text)
    assert shift_line(2, change) == expected
    assert text_after(2, change).endswith("    b = 2")


def test_replacing_the_start_of_the_anchors_line_with_line_breaks_follows_the_rest() -> None:
    change = edit((2, 0), (2, 4), "# note\n")
    assert shift_line(2, change) == 3
    assert text_after(2, change) == "b = 2"


def test_joining_the_anchors_line_onto_the_line_above_moves_it_up() -> None:
    change = edit((1, len(DOC[1])), (2, 4), "; ")
    assert shift_line(2, change) == 1
    assert text_after(2, change) == "    a = 1; b = 2"


@pytest.mark.parametrize(
    ("anchor", "expected", "expected_text"),
    [
        (1, 1, "    c = 3"),  # the line where the range starts
        (2, 1, "    c = 3"),  # removed whole: nearest survivor
        (3, 2, "    d = 4 + b"),  # the rest of the range's last line is here
    ],
)
def test_replacing_a_block_spanning_the_anchor(
    anchor: int, expected: int, expected_text: str
) -> None:
    change = edit((1, 4), (3, 12), "c = 3\n    d = 4")
    assert shift_line(anchor, change) == expected
    assert text_after(anchor, change) == expected_text


@pytest.mark.parametrize(("anchor", "expected"), [(1, 1), (2, 1), (3, 1), (4, 3)])
def test_replacing_whole_lines_spanning_the_anchor(anchor: int, expected: int) -> None:
    change = edit((1, 0), (4, 0), "    x = 1\n    y = 2\n")
    assert shift_line(anchor, change) == expected


def test_line_breaks_are_counted_as_lsp_counts_them() -> None:
    assert shift_line(5, insert(0, 0, "a\r\nb\r\n")) == 7
    assert shift_line(5, insert(0, 0, "a\rb\r")) == 7
    assert shift_line(5, insert(0, 0, "a\r\n\n\rb")) == 8


def test_a_reversed_range_reads_as_start_first() -> None:
    forward = edit((1, 0), (3, 0))
    backward = edit((3, 0), (1, 0))
    assert [shift_line(line, backward) for line in range(6)] == [
        shift_line(line, forward) for line in range(6)
    ]


def test_the_result_is_never_negative() -> None:
    assert shift_line(-3, insert(0, 0, "x")) == 0
    assert shift_line(5, edit((-2, 0), (5, 0))) == 0


# --- shift_lines ---------------------------------------------------------------------------------


def test_the_changes_of_one_did_change_apply_in_order() -> None:
    changes = [
        insert(0, 0, "import os\n\n"),  # 2 lines above everything
        edit((3, 0), (4, 0)),  # then "    a = 1", now on line 3
        insert(3, len("    b = 2"), "\n    c = 3"),  # then a line after "b = 2"
    ]
    anchors = {"def": 0, "a": 1, "b": 2, "return": 3, "print": 5}
    moved = shift_lines(anchors, changes)
    assert moved == {"def": 2, "a": 3, "b": 3, "return": 5, "print": 7}
    text = TEXT
    for change in changes:
        text = apply(text, change)
    lines = text.split("\n")
    assert [lines[moved[key]] for key in ("def", "b", "return", "print")] == [
        "def f():",
        "    b = 2",
        "    return a + b",
        "print(f())",
    ]


def test_the_order_of_changes_matters() -> None:
    first, second = insert(0, 0, "\n"), edit((1, 0), (2, 0))
    assert shift_lines({"x": 1}, [first, second]) == {"x": 1}
    assert shift_lines({"x": 1}, [second, first]) == {"x": 2}


def test_shift_lines_without_edits_copies_and_never_mutates() -> None:
    anchors = {"a": 1, "b": 4}
    assert shift_lines(anchors, []) == anchors
    assert shift_lines(anchors, [insert(0, 0, "\n")]) == {"a": 2, "b": 5}
    assert anchors == {"a": 1, "b": 4}


# --- map_lines -----------------------------------------------------------------------------------


def test_map_lines_with_lines_inserted() -> None:
    mapped = map_lines("a\nb\nc", "a\nx\ny\nb\nc")
    assert [mapped(line) for line in range(3)] == [0, 3, 4]


def test_map_lines_with_lines_deleted() -> None:
    mapped = map_lines("a\nb\nc\nd", "a\nd")
    assert [mapped(line) for line in range(4)] == [0, 1, 1, 1]


def test_map_lines_with_a_block_replaced() -> None:
    mapped = map_lines("a\nb\nc\nd", "a\nX\nY\nZ\nd")
    assert [mapped(line) for line in range(4)] == [0, 1, 1, 4]


def test_map_lines_with_the_end_deleted_clamps_to_the_last_line() -> None:
    mapped = map_lines("a\nb\nc\nd", "a\nb")
    assert [mapped(line) for line in range(4)] == [0, 1, 1, 1]


def test_map_lines_keeps_the_empty_line_after_a_final_line_break() -> None:
    mapped = map_lines("a\nb\nc\n", "a\nb\n")  # lines a, b, c, "" -> a, b, ""
    assert [mapped(line) for line in range(4)] == [0, 1, 2, 2]


@pytest.mark.parametrize("new_text", ["", "\n\n"])
def test_map_lines_to_an_empty_document_maps_everything_to_line_0(new_text: str) -> None:
    mapped = map_lines("a\nb\nc", new_text)
    assert [mapped(line) for line in range(3)] == [0, 0, 0]


def test_map_lines_from_an_empty_document() -> None:
    assert map_lines("", "a\nb")(0) == 0


def test_map_lines_ignores_indentation_and_line_endings() -> None:
    old = "if x:\n    f()\n    g()\n"
    new = "if y:\r\n    if x:\r\n        f()\r\n        g()\r\n"
    mapped = map_lines(old, new)
    assert [mapped(line) for line in range(4)] == [1, 2, 3, 4]


def test_map_lines_clamps_lines_outside_the_old_document() -> None:
    mapped = map_lines("a\nb", "x\na\nb")
    assert mapped(-4) == 1
    assert mapped(99) == 2


def test_map_lines_does_not_junk_frequent_lines() -> None:
    # 300 lines, every other one "}", every code line changed: difflib's autojunk would stop
    # "}" from matching at all, and every line would fall back to line 0.
    old = "\n".join(f"old{i}()" if i % 2 == 0 else "}" for i in range(300))
    new = "\n".join(f"new{i}()" if i % 2 == 0 else "}" for i in range(300))
    mapped = map_lines(old, new)
    assert [mapped(line) for line in range(1, 300, 2)] == list(range(1, 300, 2))
    assert [mapped(line) for line in range(0, 300, 2)] == list(range(0, 300, 2))


# --- find_snippet --------------------------------------------------------------------------------

CODE = [
    "def total(xs):",  # 0
    "    s = 0",  # 1
    "    for x in xs:",  # 2
    "        s += x",  # 3
    "    return s",  # 4
    "",  # 5
    "def count(xs):",  # 6
    "    s = 0",  # 7
    "    for x in xs:",  # 8
    "        s += 1",  # 9
    "    return s",  # 10
]


def test_find_snippet_where_it_was() -> None:
    assert find_snippet(CODE, "        s += x", 3) == 3


def test_find_snippet_after_it_moved() -> None:
    assert find_snippet(CODE, "        s += 1", 2) == 9


def test_find_snippet_ignores_changed_indentation() -> None:
    assert find_snippet(CODE, "s += x", 0) == 3
    assert find_snippet(["\tif y:", "\t\ts += x   "], "        s += x", 0) == 1


def test_find_snippet_with_several_lines_must_match_consecutive_lines() -> None:
    assert find_snippet(CODE, "for x in xs:\n    s += 1\n", 0) == 8
    assert find_snippet(CODE, "s = 0\n    s += x", 1) is None  # both exist, not together


def test_find_snippet_ignores_blank_lines_at_the_snippets_ends_only() -> None:
    assert find_snippet(CODE, "\n  \n    return s\r\n\r\n", 5) == 4
    assert find_snippet(CODE, "    return s\n\ndef count(xs):", 0) == 4
    assert find_snippet(CODE, "    return s\ndef count(xs):", 0) is None


@pytest.mark.parametrize(("hint", "expected"), [(0, 1), (3, 1), (5, 7), (6, 7), (40, 7)])
def test_find_snippet_nearest_match_wins(hint: int, expected: int) -> None:
    assert find_snippet(CODE, "s = 0", hint) == expected


def test_find_snippet_breaks_a_tie_towards_the_earlier_line() -> None:
    assert find_snippet(CODE, "s = 0", 4) == 1  # lines 1 and 7 are both 3 away


def test_find_snippet_when_the_code_is_gone() -> None:
    assert find_snippet(CODE, "return total", 4) is None
    assert find_snippet([], "return s", 0) is None


@pytest.mark.parametrize("snippet", ["", "  ", "\n\t\n"])
def test_find_snippet_with_nothing_to_check_keeps_the_hint(snippet: str) -> None:
    assert find_snippet(CODE, snippet, 42) == 42


def test_find_snippet_accepts_lines_that_keep_their_line_breaks() -> None:
    lines = "a = 1\nb = 2\r\n".splitlines(keepends=True)
    assert find_snippet(lines, "b = 2", 0) == 1


# --- reanchor ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [(3, 3), (-1, 0), (99, 10)])
@pytest.mark.parametrize("snippet", [None, "", " \n "])
def test_reanchor_without_a_snippet_clamps(line: int, expected: int, snippet: str | None) -> None:
    assert reanchor(CODE, snippet, line) == (expected, False)


def test_reanchor_keeps_a_thread_whose_snippet_is_still_there() -> None:
    assert reanchor(CODE, "    s = 0", 7) == (7, False)  # even though line 1 matches too


def test_reanchor_follows_a_snippet_that_moved() -> None:
    assert reanchor(CODE, "s += 1", 3) == (9, False)


@pytest.mark.parametrize(("line", "expected"), [(3, 3), (99, 10), (-2, 0)])
def test_reanchor_marks_a_thread_whose_snippet_is_gone_as_outdated(
    line: int, expected: int
) -> None:
    assert reanchor(CODE, "s -= x", line) == (expected, True)


def test_reanchor_in_an_empty_document() -> None:
    assert reanchor([], "s += x", 5) == (0, True)
    assert reanchor([], None, 5) == (0, False)


# --- properties ----------------------------------------------------------------------------------


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A ``\\n``-only document of distinct lines, so a diff can only align it one way."""
    count = draw(st.integers(0, 12))
    ends_with_break = draw(st.booleans())
    return "\n".join(f"line {i}" for i in range(count)) + (
        "\n" if ends_with_break and count else ""
    )


@st.composite
def whole_line_edits(draw: st.DrawFn, text: str) -> LineEdit:
    """Insert or delete whole lines, with a single range, as an editor would send it."""
    lines = text.split("\n")
    last = len(lines) - 1
    kinds = ["insert"] + (["delete"] if last >= 1 else []) + (["delete_end"] if last >= 1 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "insert":
        added = draw(st.integers(1, 4))
        line = draw(st.integers(0, last))
        return insert(line, 0, "".join(f"new {i}\n" for i in range(added)))
    if kind == "delete":
        start = draw(st.integers(0, last - 1))
        return edit((start, 0), (draw(st.integers(start + 1, last)), 0))
    # The last lines, taking the line break before them: there may be none after.
    start = draw(st.integers(1, last))
    return edit((start - 1, len(lines[start - 1])), (last, len(lines[last])))


@settings(max_examples=300)
@given(st.data())
def test_shift_line_agrees_with_map_lines_for_whole_line_edits(data: st.DataObject) -> None:
    old = data.draw(documents())
    change = data.draw(whole_line_edits(old))
    new = apply(old, change)
    old_lines, new_lines = old.split("\n"), new.split("\n")
    mapped = map_lines(old, new)
    for line, text in enumerate(old_lines):
        shifted = shift_line(line, change)
        assert 0 <= shifted <= len(new_lines) - 1
        if text in new_lines:  # it survived
            assert shifted == mapped(line)
            assert new_lines[shifted] == text


@st.composite
def any_edits(draw: st.DrawFn, text: str) -> LineEdit:
    """Any valid range in ``text``, replaced by any text (possibly with line breaks)."""
    size = len(text)
    start, end = sorted([draw(st.integers(0, size)), draw(st.integers(0, size))])
    new_text = draw(st.text(alphabet="ab \n", max_size=8))
    return edit(position(text, start), position(text, end), new_text)


def position(text: str, at: int) -> tuple[int, int]:
    before = text[:at]
    return before.count("\n"), at - (before.rfind("\n") + 1)


@settings(max_examples=500)
@given(st.data())
def test_shift_line_stays_in_the_document_and_on_its_text(data: st.DataObject) -> None:
    old = data.draw(st.text(alphabet="xy \n", max_size=30))
    change = data.draw(any_edits(old))
    old_lines, new_lines = old.split("\n"), apply(old, change).split("\n")
    for line, text in enumerate(old_lines):
        shifted = shift_line(line, change)
        assert 0 <= shifted <= len(new_lines) - 1
        landed = new_lines[shifted]
        if line < change.start_line or line > change.end_line:
            assert landed == text
        elif line == change.start_line and change.start_character > 0:
            assert landed.startswith(text[: change.start_character])
        elif line == change.end_line:
            assert landed.endswith(text[change.end_character :])


@settings(max_examples=300)
@given(st.text(alphabet="ab \n", max_size=30), st.text(alphabet="ab \n", max_size=30))
def test_map_lines_is_in_range_and_keeps_the_order_of_lines(old: str, new: str) -> None:
    mapped = map_lines(old, new)
    result = [mapped(line) for line in range(old.count("\n") + 1)]
    assert all(0 <= line <= new.count("\n") for line in result)
    assert result == sorted(result)


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from(["a", " a", "b", "", "c  "]), max_size=15),
    st.integers(0, 14),
    st.integers(1, 3),
    st.integers(-3, 20),
)
def test_find_snippet_finds_code_at_least_as_near_as_where_it_is(
    lines: list[str], at: int, size: int, hint: int
) -> None:
    snippet = "\n".join(lines[at : at + size])
    found = find_snippet(lines, snippet, hint)
    if not snippet.strip():
        assert found == hint
        return
    start = next(i for i in range(at, at + size) if lines[i].strip())  # blank ends don't count
    assert found is not None
    assert abs(found - hint) <= abs(start - hint)
    assert reanchor(lines, snippet, hint)[1] is False


def _reanchor_by_search(lines: list[str], snippet: str | None, line: int) -> tuple[int, bool]:
    """reanchor as specified, always by searching the whole document."""
    clamped = min(max(line, 0), max(len(lines) - 1, 0))
    if snippet is None or not snippet.strip():
        return clamped, False
    found = find_snippet(lines, snippet, line)
    return (clamped, True) if found is None else (found, False)


@settings(max_examples=400)
@given(
    st.lists(st.sampled_from(["a", " a", "b", "", "c  ", "\t b"]), max_size=12),
    st.one_of(st.none(), st.text(alphabet="abc \n", max_size=12)),
    st.integers(-3, 15),
)
def test_reanchor_with_or_without_an_index_is_the_search(
    lines: list[str], snippet: str | None, line: int
) -> None:
    expected = _reanchor_by_search(lines, snippet, line)
    assert reanchor(lines, snippet, line) == expected
    assert reanchor(lines, snippet, line, SnippetIndex(lines)) == expected


def test_the_index_is_built_only_when_a_snippet_moved() -> None:
    index = SnippetIndex(CODE)
    assert reanchor(CODE, "    s = 0", 7, index) == (7, False)
    assert index._stripped is None  # still in place: nothing searched
    assert reanchor(CODE, "s += 1", 3, index) == (9, False)
    assert index._stripped is not None
