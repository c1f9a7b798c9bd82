"""Line anchors (comment threads, remote cursors) that stay on their text as a document changes.

Pure functions: no I/O, no LSP library, so the rules can be tested on plain strings.

Lines are 0-based and counted as LSP counts them: a document has (line breaks + 1) lines, so a
final line break opens an empty last line, and ``\\n``, ``\\r\\n`` and ``\\r`` are each one line
break. Using the same count for range edits and for full-text replacements means both paths move
an anchor to the same line.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["LineEdit", "find_snippet", "map_lines", "reanchor", "shift_line", "shift_lines"]

K = TypeVar("K", bound=Hashable)

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class LineEdit:
    """One LSP range edit, reduced to what line anchors need (0-based lines)."""

    start_line: int
    start_character: int
    end_line: int
    end_character: int
    new_text: str


def shift_line(line: int, edit: LineEdit) -> int:
    """Where a 0-based anchor line goes after ``edit``, so the anchor stays on its text.

    - Edit entirely below the line: unchanged.
    - Edit entirely above: shifted by (inserted line breaks - removed line breaks).
    - Anchor on the edit's last line, when the edit starts on an earlier line or at character 0:
      the rest of that line (after ``end_character``) is the anchor's surviving text, and it now
      sits after the new text, on ``start_line + breaks``. This covers an insertion at
      character 0 of the anchor's line (pushed down by the inserted breaks) and joined lines.
    - Any other anchor in the range: its line starts before the edit (an edit within the line
      after its first character, or a newline typed in it) or was removed whole; either way
      ``start_line`` is where its text, or the nearest surviving line, now is.

    Never negative; a reversed range is read as if it were given start first.
    """
    (start, start_character), (end, _) = sorted(
        [(edit.start_line, edit.start_character), (edit.end_line, edit.end_character)]
    )
    breaks = _count_breaks(edit.new_text)
    if line < start:
        moved = line
    elif line > end:
        moved = line + breaks - (end - start)
    elif line == end and (start < end or start_character == 0):
        moved = start + breaks
    else:
        moved = start
    return max(moved, 0)


def shift_lines(lines: Mapping[K, int], edits: Sequence[LineEdit]) -> dict[K, int]:
    """Apply edits in order to many anchors: in one LSP ``didChange`` each change's range refers
    to the document as the previous changes left it, so order matters."""
    moved = dict(lines)
    for edit in edits:
        moved = {key: shift_line(line, edit) for key, line in moved.items()}
    return moved


def map_lines(old_text: str, new_text: str) -> Callable[[int], int]:
    """For a full replacement (full-sync ``didChange``, or a reload after ``git pull``): a function
    from each old 0-based line to its new line.

    Lines are diffed with ``difflib.SequenceMatcher`` (``autojunk=False``, so frequent lines such
    as ``}`` still anchor), ignoring whitespace at either end of a line: a re-indented or
    re-line-ended line is the same line, as it is for :func:`find_snippet`. A line in an equal
    block maps exactly; a line in a replaced or deleted block maps to the nearest surviving line,
    the start of the block's replacement (clamped to the last new line). Lines outside the old
    document are treated as its first or last line.
    """
    table = _line_table(_split_lines(old_text), _split_lines(new_text))

    def mapped(line: int) -> int:
        return table[min(max(line, 0), len(table) - 1)]

    return mapped


def find_snippet(lines: Sequence[str], snippet: str, hint_line: int) -> int | None:
    """Where ``snippet`` (one or several lines of code, stored with a comment) now starts, nearest
    to ``hint_line``; ``None`` when it is gone.

    Matching ignores whitespace at either end of each line (re-indentation does not orphan a
    comment) and blank lines at the snippet's ends; a multi-line snippet must match consecutive
    lines. A blank snippet returns ``hint_line`` unchanged: there is nothing to check. Ties go to
    the smallest distance, then the earlier line.
    """
    wanted = _snippet_lines(snippet)
    if not wanted:
        return hint_line
    starts = _match_starts([line.strip() for line in lines], wanted)
    return min(starts, key=lambda start: (abs(start - hint_line), start), default=None)


class SnippetIndex:
    """A document's stripped lines and where each one occurs, built once per document so that
    re-anchoring many threads costs one pass over the document, not one per thread.

    Built on the first :meth:`find`: a document can keep one index for as long as its text
    does not change, and one whose snippets are all still in place never builds it."""

    def __init__(self, lines: Sequence[str]) -> None:
        self._lines = lines
        self._stripped: list[str] | None = None
        self._where: dict[str, list[int]] = {}

    @property
    def stripped(self) -> list[str]:
        if self._stripped is None:
            self._stripped = [line.strip() for line in self._lines]
            for index, text in enumerate(self._stripped):
                self._where.setdefault(text, []).append(index)
        return self._stripped

    @property
    def where(self) -> dict[str, list[int]]:
        _ = self.stripped
        return self._where

    def find(self, snippet: str, hint_line: int) -> int | None:
        """As :func:`find_snippet`: candidates are tried nearest first (ties: earlier line),
        so a line repeated all over the file (``return result``) costs a bisect, not a scan."""
        wanted = _snippet_lines(snippet)
        if not wanted:
            return hint_line
        positions = self.where.get(wanted[0], [])
        size = len(wanted)
        below = bisect.bisect_left(positions, hint_line) - 1
        above = below + 1
        while below >= 0 or above < len(positions):
            if above >= len(positions) or (
                below >= 0 and hint_line - positions[below] <= positions[above] - hint_line
            ):
                start, below = positions[below], below - 1
            else:
                start, above = positions[above], above + 1
            if size == 1 or self.stripped[start : start + size] == wanted:
                return start
        return None


def reanchor(
    lines: Sequence[str], snippet: str | None, line: int, index: SnippetIndex | None = None
) -> tuple[int, bool]:
    """``(line, outdated)`` for a thread stored at 0-based ``line`` with ``snippet``, when its
    document is opened, so a thread is never silently left on the wrong line.

    No (or a blank) snippet: the line clamped into the document, not outdated. Snippet still at
    ``line``: unchanged. Snippet moved: the nearest match. Snippet gone: the clamped line, marked
    outdated.
    """
    clamped = min(max(line, 0), max(len(lines) - 1, 0))
    if snippet is None or not snippet.strip():
        return clamped, False
    if _starts_at(lines, _snippet_lines(snippet), line):
        return line, False  # still where it was: what a search would find first, without one
    found = index.find(snippet, line) if index is not None else find_snippet(lines, snippet, line)
    if found is None:
        return clamped, True
    return found, False


def _split_lines(text: str) -> list[str]:
    """Lines as LSP numbers them (a final line break opens an empty last line)."""
    return _LINE_BREAK.split(text)


def _count_breaks(text: str) -> int:
    """Line breaks as LSP counts them: ``\\r\\n`` is one, a lone ``\\r`` is one."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _line_table(old: list[str], new: list[str]) -> list[int]:
    """New line for every old line (see :func:`map_lines`)."""
    last = max(len(new) - 1, 0)
    matcher = difflib.SequenceMatcher(
        None, [line.strip() for line in old], [line.strip() for line in new], autojunk=False
    )
    table: list[int] = []
    for tag, old_start, old_end, new_start, _ in matcher.get_opcodes():
        if tag == "equal":
            table.extend(range(new_start, new_start + old_end - old_start))
        else:
            table.extend([min(new_start, last)] * (old_end - old_start))
    return table


def _snippet_lines(snippet: str) -> list[str]:
    """The snippet's lines, stripped, without blank lines at either end."""
    stripped = [line.strip() for line in _split_lines(snippet)]
    first = next((i for i, line in enumerate(stripped) if line), len(stripped))
    last = max((i for i, line in enumerate(stripped) if line), default=first - 1)
    return stripped[first : last + 1]


def _starts_at(lines: Sequence[str], wanted: list[str], start: int) -> bool:
    """Whether ``wanted`` (stripped lines) is at ``start`` of ``lines``."""
    if not wanted or start < 0 or start + len(wanted) > len(lines):
        return False
    return all(lines[start + i].strip() == text for i, text in enumerate(wanted))


def _match_starts(haystack: list[str], wanted: list[str]) -> list[int]:
    """Every index where ``wanted`` occurs as consecutive lines of ``haystack``."""
    size = len(wanted)
    return [
        start
        for start in range(len(haystack) - size + 1)
        if haystack[start] == wanted[0] and haystack[start : start + size] == wanted
    ]
