"""Shared access signatures: only a live, untampered SAS of this resource and generation with
the needed permission passes."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from snapferry.control.access import SasRefused, Signer

NOW = 1_800_000_000.0


def query(text: str) -> dict[str, str]:
    return dict(parse_qsl(text))


@pytest.fixture
def signer() -> Signer:
    return Signer(b"k" * 32)


def test_a_fresh_sas_passes(signer: Signer) -> None:
    sas = query(signer.sign("uid-1", "rw", NOW + 60, 3))
    signer.check("uid-1", sas, "r", 3, now=NOW)
    signer.check("uid-1", sas, "w", 3, now=NOW)


@pytest.mark.parametrize(
    ("change", "needed", "generation", "now", "words"),
    [
        ({}, "r", 3, NOW + 61, "expired"),
        ({}, "r", 4, NOW, "revoked"),
        ({"sp": "rw"}, "r", 3, NOW, "does not match"),
        ({"se": "2099-01-01T00:00:00Z"}, "r", 3, NOW, "does not match"),
        ({"sg": "4"}, "r", 4, NOW, "does not match"),
        ({"sig": "AAAA"}, "r", 3, NOW, "does not match"),
        ({"sig": "é∂ƒ"}, "r", 3, NOW, "does not match"),
        ({"sig": None}, "r", 3, NOW, "no valid"),
        ({"se": "tomorrow"}, "r", 3, NOW, "no valid"),
        ({}, "w", 3, NOW, "does not grant 'w'"),
    ],
)
def test_anything_else_is_refused(
    signer: Signer,
    change: dict[str, str | None],
    needed: str,
    generation: int,
    now: float,
    words: str,
) -> None:
    sas = query(signer.sign("uid-1", "r", NOW + 60, 3))
    for key, value in change.items():
        if value is None:
            sas.pop(key)
        else:
            sas[key] = value
    with pytest.raises(SasRefused, match=words):
        signer.check("uid-1", sas, needed, generation, now=now)


def test_another_resource_or_key_refuses(signer: Signer) -> None:
    sas = query(signer.sign("uid-1", "r", NOW + 60, 1))
    with pytest.raises(SasRefused):
        signer.check("uid-2", sas, "r", 1, now=NOW)  # same name made again: a new uniqueId
    with pytest.raises(SasRefused):
        Signer(b"x" * 32).check("uid-1", sas, "r", 1, now=NOW)
    assert "kkkk" not in repr(signer)
