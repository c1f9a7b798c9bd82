"""Code-point columns on the wire <-> LSP characters in each negotiated encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab_lsp.protocol.coordinates import (
    PositionEncoding,
    column_to_lsp_character,
    lsp_character_to_column,
)

UTF8, UTF16, UTF32 = PositionEncoding.UTF8, PositionEncoding.UTF16, PositionEncoding.UTF32
LINE = "héllo😀 x"  # é: 2 UTF-8 bytes, 1 UTF-16 unit; 😀: 4 bytes, 2 units (a surrogate pair)


@pytest.mark.parametrize(
    ("column", "utf8", "utf16", "utf32"),
    [
        (1, 0, 0, 0),  # before h
        (2, 1, 1, 1),  # before é
        (3, 3, 2, 2),  # after é
        (6, 6, 5, 5),  # before 😀
        (7, 10, 7, 6),  # after 😀
        (8, 11, 8, 7),  # before x
        (9, 12, 9, 8),  # end of line
    ],
)
def test_column_to_character(column: int, utf8: int, utf16: int, utf32: int) -> None:
    assert column_to_lsp_character(LINE, column, UTF8) == utf8
    assert column_to_lsp_character(LINE, column, UTF16) == utf16
    assert column_to_lsp_character(LINE, column, UTF32) == utf32
    # and back again
    assert lsp_character_to_column(LINE, utf8, UTF8) == column
    assert lsp_character_to_column(LINE, utf16, UTF16) == column
    assert lsp_character_to_column(LINE, utf32, UTF32) == column


def test_encoded_lengths_match_python_codecs() -> None:
    end = len(LINE) + 1
    assert column_to_lsp_character(LINE, end, UTF8) == len(LINE.encode("utf-8"))
    assert column_to_lsp_character(LINE, end, UTF16) == len(LINE.encode("utf-16-le")) // 2
    assert column_to_lsp_character(LINE, end, UTF32) == len(LINE)


@pytest.mark.parametrize("encoding", list(PositionEncoding))
@pytest.mark.parametrize("column", [100, 10**7])
def test_column_past_the_end_clamps_to_line_end(encoding: PositionEncoding, column: int) -> None:
    end = column_to_lsp_character(LINE, len(LINE) + 1, encoding)
    assert column_to_lsp_character(LINE, column, encoding) == end


@pytest.mark.parametrize("encoding", list(PositionEncoding))
@pytest.mark.parametrize("column", [0, -5])
def test_column_before_the_start_clamps_to_zero(encoding: PositionEncoding, column: int) -> None:
    assert column_to_lsp_character(LINE, column, encoding) == 0


@pytest.mark.parametrize("encoding", list(PositionEncoding))
def test_character_past_the_end_is_the_end_column(encoding: PositionEncoding) -> None:
    assert lsp_character_to_column(LINE, 500, encoding) == len(LINE) + 1
    assert lsp_character_to_column("", 3, encoding) == 1


@pytest.mark.parametrize(
    ("character", "encoding", "column"),
    [
        (6, UTF16, 6),  # between the two halves of 😀's surrogate pair -> 😀's column
        (7, UTF8, 6),  # inside 😀's four bytes
        (8, UTF8, 6),
        (9, UTF8, 6),
        (2, UTF8, 2),  # inside é's two bytes
    ],
)
def test_character_inside_a_multi_unit_character_rounds_down(
    character: int, encoding: PositionEncoding, column: int
) -> None:
    assert lsp_character_to_column(LINE, character, encoding) == column


def test_negative_utf32_character_clamps_to_column_one() -> None:
    assert lsp_character_to_column(LINE, -3, UTF32) == 1


@given(text=st.text(max_size=40), data=st.data())
def test_round_trip_for_every_column(text: str, data: st.DataObject) -> None:
    column = data.draw(st.integers(min_value=1, max_value=len(text) + 1))
    for encoding in PositionEncoding:
        character = column_to_lsp_character(text, column, encoding)
        assert lsp_character_to_column(text, character, encoding) == column
        prefix = text[: column - 1]
        expected = {
            UTF8: len(prefix.encode("utf-8")),
            UTF16: len(prefix.encode("utf-16-le")) // 2,
            UTF32: len(prefix),
        }[encoding]
        assert character == expected


@given(text=st.text(max_size=40), data=st.data())
def test_lone_surrogates_count_as_the_codecs_count_them(text: str, data: st.DataObject) -> None:
    # A JSON "\\ud800" escape gives a str with a lone surrogate: one UTF-16 unit, three bytes.
    text = text + "\ud800" + text
    column = data.draw(st.integers(min_value=1, max_value=len(text) + 1))
    prefix = text[: column - 1]
    utf8 = column_to_lsp_character(text, column, UTF8)
    assert utf8 == len(prefix.encode("utf-8", "surrogatepass"))
    utf16 = column_to_lsp_character(text, column, UTF16)
    assert utf16 == len(prefix.encode("utf-16-le", "surrogatepass")) // 2
    assert lsp_character_to_column(text, utf8, UTF8) == column
    assert lsp_character_to_column(text, utf16, UTF16) == column


@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=60), data=st.data())
def test_ascii_lines_are_one_unit_per_character(text: str, data: st.DataObject) -> None:
    column = data.draw(st.integers(min_value=-3, max_value=len(text) + 5))
    character = data.draw(st.integers(min_value=-3, max_value=len(text) + 5))
    for encoding in PositionEncoding:
        assert column_to_lsp_character(text, column, encoding) == min(max(column - 1, 0), len(text))
        assert lsp_character_to_column(text, character, encoding) == (
            min(max(character, 0), len(text)) + 1
        )
