"""Stable colour slots: one per person, the same in every session and editor."""

from __future__ import annotations

import hashlib

__all__ = ["PALETTE_SIZE", "color_index"]

PALETTE_SIZE = 12


def color_index(user_id: str) -> int:
    """Map a user id onto a palette slot; each editor maps slots onto its own colours."""
    digest = hashlib.sha256(user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % PALETTE_SIZE
