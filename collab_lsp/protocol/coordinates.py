"""Coordinate and path rules shared by the relay and the sidecar.

On the wire, lines are 1-based (as people say "line 42") and columns are 1-based
Unicode code points. LSP positions are 0-based, with a ``character`` counted in
the encoding the editor negotiated (utf-8 bytes, utf-16 code units or utf-32 code
points). Files are named by their path relative to the workspace root with ``/``
separators, so two checkouts in different folders agree on them.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "PositionEncoding",
    "column_to_lsp_character",
    "lsp_character_to_column",
    "normalize_relative_path",
]


class PositionEncoding(StrEnum):
    UTF8 = "utf-8"
    UTF16 = "utf-16"
    UTF32 = "utf-32"


def _units(char: str, encoding: PositionEncoding) -> int:
    if encoding is PositionEncoding.UTF32:
        return 1
    code_point = ord(char)
    if encoding is PositionEncoding.UTF16:
        return 2 if code_point > 0xFFFF else 1
    if code_point < 0x80:
        return 1
    if code_point < 0x800:
        return 2
    return 3 if code_point < 0x10000 else 4


def column_to_lsp_character(line_text: str, column: int, encoding: PositionEncoding) -> int:
    """Convert a 1-based code-point column to an LSP character offset.

    A column past the end of the line clamps to the line's end, because the
    remote line may be longer than ours while the documents are out of sync.
    """
    code_points = min(max(column - 1, 0), len(line_text))
    if encoding is PositionEncoding.UTF32 or line_text.isascii():
        return code_points  # one unit per character (isascii() is O(1) in CPython)
    # The codecs count in C; "surrogatepass" counts a lone surrogate as _units does.
    prefix = line_text[:code_points]
    if encoding is PositionEncoding.UTF16:
        return len(prefix.encode("utf-16-le", "surrogatepass")) // 2
    return len(prefix.encode("utf-8", "surrogatepass"))


def lsp_character_to_column(line_text: str, character: int, encoding: PositionEncoding) -> int:
    """Convert an LSP character offset to a 1-based code-point column.

    An offset inside a multi-unit character rounds down to that character, as the
    LSP specification asks of positions that split a character.
    """
    if encoding is PositionEncoding.UTF32 or line_text.isascii():
        return min(max(character, 0), len(line_text)) + 1
    consumed = 0
    for index, char in enumerate(line_text):
        width = _units(char, encoding)
        if consumed + width > character:
            return index + 1
        consumed += width
    return len(line_text) + 1


def normalize_relative_path(path: str) -> str:
    """Return the canonical workspace-relative form of ``path`` or raise ValueError.

    Backslashes become ``/``; ``.`` segments and doubled separators are dropped.
    Absolute paths, drive letters and paths that climb out of the root with
    ``..`` are refused: such a file is outside the workspace and is never shared.
    """
    if not path or not path.strip():
        raise ValueError("must be a non-empty workspace-relative path")
    candidate = path.replace("\\", "/")
    if candidate.startswith("/") or (len(candidate) > 1 and candidate[1] == ":"):
        raise ValueError("must be relative to the workspace root, not absolute")
    parts = [part for part in candidate.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ValueError("must not leave the workspace root with '..'")
    if not parts:
        raise ValueError("must name a file inside the workspace")
    return "/".join(parts)
