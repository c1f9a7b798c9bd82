"""Constrained field types shared by every frame model."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from collab_lsp.protocol import limits
from collab_lsp.protocol.coordinates import normalize_relative_path

__all__ = [
    "ClientId",
    "Column",
    "Emoji",
    "FilePath",
    "Line",
    "Name",
    "ObjectId",
    "Seq",
    "Snippet",
    "Text",
    "Title",
]

# C0 and C1 controls, DEL, and the bidi overrides used in "trojan source" tricks.
_SINGLE_LINE_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Multi-line text may keep tabs and line breaks.
_MULTI_LINE_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


def _single_line(value: str) -> str:
    if _SINGLE_LINE_FORBIDDEN.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _multi_line(value: str) -> str:
    if _MULTI_LINE_FORBIDDEN.search(value):
        raise ValueError("must not contain control characters other than tab and line breaks")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_CONTENT_CHARS),
    AfterValidator(_multi_line),
    AfterValidator(_not_blank),
]
Snippet = Annotated[
    str, StringConstraints(max_length=limits.MAX_SNIPPET_CHARS), AfterValidator(_multi_line)
]
Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_TITLE_CHARS),
    AfterValidator(_single_line),
    AfterValidator(_not_blank),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_NAME_CHARS),
    AfterValidator(_single_line),
    AfterValidator(_not_blank),
]
ObjectId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_NAME_CHARS),
    AfterValidator(_single_line),
]
ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_CLIENT_ID_CHARS),
    AfterValidator(_single_line),
]
Emoji = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_EMOJI_CHARS),
    AfterValidator(_single_line),
    AfterValidator(_not_blank),
]
FilePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_PATH_CHARS),
    AfterValidator(_single_line),
    AfterValidator(normalize_relative_path),
]
Line = Annotated[int, Field(ge=1, le=limits.MAX_LINE)]
Column = Annotated[int, Field(ge=1, le=limits.MAX_LINE)]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]
