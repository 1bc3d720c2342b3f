"""Identifiers: random resource ids and the rules store keys follow."""

from __future__ import annotations

import re
import uuid

from snapferry.errors import InvalidInput

_KEY = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")
MAX_KEY_LENGTH = 512


def new_id() -> str:
    """A fresh random id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def validate_key(key: str) -> str:
    """Return key if it is a valid store key, else raise InvalidInput.

    Keys are relative, lowercase, '/'-separated; each part starts with a letter or digit and holds
    only ``a-z 0-9 . _ -``, so no key can be absolute, contain ``..`` or escape a store's root.
    """
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise InvalidInput(
            f"invalid store key {key!r}: keys are relative, lowercase, '/'-separated"
        )
    return key
