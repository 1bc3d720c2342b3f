"""Shared access signatures: only a live, untampered SAS of this resource under its current
grant, with the needed permission, passes; and azure-storage-blob keeps every part of it."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from azure.storage.blob import BlobClient

from snapferry.control.access import SasRefused, Signer, sas_path

NOW = 1_800_000_000.0


def query(text: str) -> dict[str, str]:
    return dict(parse_qsl(text))


@pytest.fixture
def signer() -> Signer:
    return Signer(b"k" * 32)


def test_a_fresh_sas_passes(signer: Signer) -> None:
    sas = query(signer.sign("uid-1", "rw", NOW + 60, "g1"))
    signer.check("uid-1", sas, "r", "g1", now=NOW)
    signer.check("uid-1", sas, "w", "g1", now=NOW)


@pytest.mark.parametrize(
    ("change", "needed", "grant", "now", "words"),
    [
        ({}, "r", "g1", NOW + 61, "expired"),
        ({}, "r", "g2", NOW, "revoked"),
        ({}, "r", None, NOW, "revoked"),
        ({"sp": "rw"}, "r", "g1", NOW, "does not match"),
        ({"se": "2099-01-01T00:00:00Z"}, "r", "g1", NOW, "does not match"),
        ({"si": "g2"}, "r", "g2", NOW, "does not match"),
        ({"sig": "AAAA"}, "r", "g1", NOW, "does not match"),
        ({"sig": "é∂ƒ"}, "r", "g1", NOW, "does not match"),
        ({"sig": None}, "r", "g1", NOW, "no valid"),
        ({"si": None}, "r", "g1", NOW, "no valid"),
        ({"se": "tomorrow"}, "r", "g1", NOW, "no valid"),
        ({}, "w", "g1", NOW, "does not grant 'w'"),
    ],
)
def test_anything_else_is_refused(
    signer: Signer,
    change: dict[str, str | None],
    needed: str,
    grant: str | None,
    now: float,
    words: str,
) -> None:
    sas = query(signer.sign("uid-1", "r", NOW + 60, "g1"))
    for key, value in change.items():
        if value is None:
            sas.pop(key)
        else:
            sas[key] = value
    with pytest.raises(SasRefused, match=words):
        signer.check("uid-1", sas, needed, grant, now=now)


def test_another_resource_or_key_refuses(signer: Signer) -> None:
    sas = query(signer.sign("uid-1", "r", NOW + 60, "g1"))
    with pytest.raises(SasRefused):
        signer.check("uid-2", sas, "r", "g1", now=NOW)  # same name made again: a new uniqueId
    with pytest.raises(SasRefused):
        Signer(b"x" * 32).check("uid-1", sas, "r", "g1", now=NOW)
    assert "kkkk" not in repr(signer)


def test_the_blob_sdk_keeps_the_whole_sas(signer: Signer) -> None:
    sas = signer.sign("uid-1", "r", NOW + 60, "g1")
    url = f"http://127.0.0.1:7781{sas_path('eastus', 'e' * 32)}?{sas}"
    client = BlobClient.from_blob_url(url)
    assert (client.account_name, client.container_name, client.blob_name) == (
        "eastus",
        "e" * 32,
        "abcd",
    )
    kept = query(client.url.split("?", 1)[1])
    assert kept == query(sas)
    signer.check("uid-1", kept, "r", "g1", now=NOW)
