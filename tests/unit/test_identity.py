"""Principals, roles and bearer tokens: what a caller's token proves, and when it stops proving it."""

from __future__ import annotations

import base64
import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, func, select

from snapferry.errors import Conflict, InvalidInput, NotFound
from snapferry.identity import (
    AUDIENCE,
    AuthenticationFailed,
    AuthorizationFailed,
    Principal,
    Registry,
)
from snapferry.meta.db import open_database, sqlite_url
from snapferry.meta.schema import principals, role_assignments

ISSUER = "https://localhost:8443/"
SUB = "00000000-0000-0000-0000-00000000000a"
OTHER_SUB = "00000000-0000-0000-0000-00000000000b"
HOUR = 3600


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(sqlite_url(tmp_path / "meta.db"))
    yield engine
    engine.dispose()


@pytest.fixture
def registry(db: Engine, tmp_path: Path, clock: Clock) -> Registry:
    return Registry(db, tmp_path / "keys", issuer=ISSUER, clock=clock)


def refused(registry: Registry, token: str) -> AuthenticationFailed:
    """Authenticate token, expecting refusal; check the error gives nothing of the token away."""
    with pytest.raises(AuthenticationFailed) as caught:
        registry.authenticate(token)
    error = caught.value
    shown = f"{error} {error.to_dict()} {error!r}"
    for part in [token, *token.split(".")]:
        assert len(part) < 8 or part not in shown
    assert error.code == "InvalidAuthenticationToken"
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None
    return error


def signing_key(tmp_path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(
        (tmp_path / "keys" / "token-signing-key.pem").read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_a_minted_token_authenticates_as_its_principal(registry: Registry, clock: Clock) -> None:
    alice = registry.create_principal("alice", {SUB: "contributor"})
    token, expires_at = registry.mint(alice.id, HOUR)

    assert expires_at == clock.now + HOUR
    assert registry.authenticate(token) == alice
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "tid": registry.tenant,
        "oid": alice.id,
        "sub": alice.id,
        "iat": int(clock.now),
        "nbf": int(clock.now),
        "exp": int(clock.now) + HOUR,
        "name": "alice",
    }


def test_an_expired_token_is_refused(registry: Registry, clock: Clock) -> None:
    alice = registry.create_principal("alice", {SUB: "Reader"})
    token, expires_at = registry.mint(alice.id, HOUR)
    clock.now = expires_at - 1
    assert registry.authenticate(token).id == alice.id
    clock.now = expires_at + 3600
    assert "expired" in refused(registry, token).message


def test_a_token_from_the_future_is_refused(registry: Registry, clock: Clock) -> None:
    alice = registry.create_principal("alice", {SUB: "Reader"})
    token, _ = registry.mint(alice.id, HOUR)
    clock.now -= 600
    assert "not yet valid" in refused(registry, token).message


def test_a_token_signed_by_another_key_is_refused(
    db: Engine, tmp_path: Path, registry: Registry, clock: Clock
) -> None:
    impostor = Registry(
        db, tmp_path / "other-keys", issuer=ISSUER, tenant=registry.tenant, clock=clock
    )
    alice = registry.create_principal("alice", {SUB: "Owner"})
    token, _ = impostor.mint(alice.id, HOUR)
    assert impostor.authenticate(token) == alice
    assert "signature" in refused(registry, token).message


def test_a_token_for_another_audience_issuer_or_tenant_is_refused(
    registry: Registry, tmp_path: Path, clock: Clock
) -> None:
    alice = registry.create_principal("alice", {SUB: "Owner"})
    good, _ = registry.mint(alice.id, HOUR)
    claims = jwt.decode(good, options={"verify_signature": False})
    key = signing_key(tmp_path)
    kid = jwt.get_unverified_header(good)["kid"]
    changes: list[dict[str, object]] = [
        {"aud": "https://storage.azure.com/"},
        {"aud": [AUDIENCE, "https://storage.azure.com/"]},
        {"iss": "https://elsewhere/"},
        {"tid": "11111111-1111-1111-1111-111111111111"},
        {"sub": "someone-else"},
        {"exp": "tomorrow"},
        {"exp": 10**400},  # validly signed, yet no time: refused, never a 500
        {"nbf": -(10**400)},
        {"exp": float("inf")},
    ]
    for change in changes:
        forged = jwt.encode({**claims, **change}, key, algorithm="RS256", headers={"kid": kid})
        refused(registry, forged)
    for missing in ["exp", "nbf", "aud", "oid", "tid"]:
        partial = {k: v for k, v in claims.items() if k != missing}
        refused(registry, jwt.encode(partial, key, algorithm="RS256"))


def test_a_tampered_or_unsigned_token_is_refused(registry: Registry) -> None:
    alice = registry.create_principal("alice", {SUB: "Reader"})
    mallory = registry.create_principal("mallory", {})
    token, _ = registry.mint(mallory.id, HOUR)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["oid"] = claims["sub"] = alice.id
    swapped = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    assert "signature" in refused(registry, f"{header}.{swapped}.{signature}").message
    unsigned = jwt.encode(claims, key="", algorithm="none")
    refused(registry, unsigned)
    hmac = jwt.encode(claims, "a shared secret of thirty-two bytes!", algorithm="HS256")
    refused(registry, hmac)
    for garbage in ["", "not a token", "a.b.c", token[:-4], token + "x" * 20_000]:
        refused(registry, garbage)


def test_a_disabled_principal_is_refused_at_once_and_accepted_again_when_enabled(
    registry: Registry,
) -> None:
    alice = registry.create_principal("alice", {SUB: "Owner"})
    token, _ = registry.mint(alice.id, HOUR)

    assert not registry.disable(alice.id).enabled
    assert "disabled" in refused(registry, token).message
    with pytest.raises(Conflict):
        registry.mint(alice.id, HOUR)

    assert registry.enable(alice.id).enabled
    assert registry.authenticate(token).enabled


def test_a_role_change_applies_to_tokens_already_issued(registry: Registry) -> None:
    alice = registry.create_principal("alice", {SUB: "Reader"})
    token, _ = registry.mint(alice.id, HOUR)
    assert not registry.authenticate(token).can_write(SUB)

    registry.set_role(alice.id, SUB.upper(), "OWNER")
    registry.set_role(alice.id, OTHER_SUB, "reader")
    now = registry.authenticate(token)
    assert now.can_write(SUB)
    assert now.roles == {SUB: "Owner", OTHER_SUB: "Reader"}

    registry.set_role(alice.id, SUB, None)
    registry.set_role(alice.id, SUB, None)
    assert not registry.authenticate(token).can_read(SUB)


def test_a_token_survives_a_restart(db: Engine, tmp_path: Path, clock: Clock) -> None:
    first = Registry(db, tmp_path / "keys", issuer=ISSUER, clock=clock)
    alice = first.create_principal("alice", {SUB: "Contributor"})
    token, _ = first.mint(alice.id, HOUR)
    key_file = tmp_path / "keys" / "token-signing-key.pem"
    key_pem = key_file.read_bytes()

    again = Registry(db, tmp_path / "keys", issuer=ISSUER, clock=clock)
    assert again.tenant == first.tenant
    assert again.authenticate(token) == alice
    assert key_file.read_bytes() == key_pem
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_token_of_a_principal_unknown_to_this_database_is_refused(
    tmp_path: Path, registry: Registry, clock: Clock
) -> None:
    other_db = open_database(sqlite_url(tmp_path / "other.db"))
    try:
        other = Registry(other_db, tmp_path / "keys", issuer=ISSUER, clock=clock)
        ghost = other.create_principal("ghost", {SUB: "Owner"})
        token, _ = other.mint(ghost.id, HOUR)
    finally:
        other_db.dispose()
    assert "does not exist" in refused(registry, token).message


def count_rows(db: Engine) -> tuple[int, int]:
    with db.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(principals)).scalar_one(),
            conn.execute(select(func.count()).select_from(role_assignments)).scalar_one(),
        )


@pytest.mark.parametrize(
    ("name", "roles"),
    [
        ("alice", {SUB: "Admin"}),
        ("alice", {SUB: ""}),
        ("alice", {"": "Owner"}),
        ("alice", {"x" * 65: "Owner"}),
        ("alice", {"sub/../other": "Owner"}),
        ("alice", {"sub one": "Owner"}),
        ("alice", {SUB: "Owner", SUB.upper(): "Reader"}),
        ("alice", {SUB: "Owner", OTHER_SUB: "Root"}),
        ("", {SUB: "Owner"}),
        (" alice", {SUB: "Owner"}),
        ("a\nb", {SUB: "Owner"}),
        ("a" * 201, {SUB: "Owner"}),
    ],
)
def test_bad_input_raises_and_writes_nothing(
    registry: Registry, db: Engine, name: str, roles: dict[str, str]
) -> None:
    with pytest.raises(InvalidInput):
        registry.create_principal(name, roles)
    assert count_rows(db) == (0, 0)


def test_bad_role_changes_and_lifetimes_raise_and_write_nothing(
    registry: Registry, db: Engine
) -> None:
    alice = registry.create_principal("alice", {SUB: "Reader"})
    for subscription, role in [(SUB, "God"), ("bad sub", "Reader"), ("", None)]:
        with pytest.raises(InvalidInput):
            registry.set_role(alice.id, subscription, role)
    for lifetime in [0, -1, 10**9, True]:
        with pytest.raises(InvalidInput):
            registry.mint(alice.id, lifetime)
    with pytest.raises(NotFound):
        registry.set_role("no-such-principal", SUB, "Reader")
    for change in (registry.get, registry.disable, registry.enable):
        with pytest.raises(NotFound):
            change("no-such-principal")
    assert registry.get(alice.id) == alice
    assert count_rows(db) == (1, 1)


def test_roles_grant_reading_and_writing_per_subscription(registry: Registry, clock: Clock) -> None:
    owner = registry.create_principal("o", {SUB: "owner", OTHER_SUB: "READER"})
    clock.now += 1
    contributor = registry.create_principal("c", {SUB.upper(): "Contributor"})
    clock.now += 1
    admin = registry.create_principal("root", {}, admin=True)

    assert owner.role_for(SUB.upper()) == "Owner"
    assert owner.can_write(SUB)
    assert owner.can_read(OTHER_SUB)
    assert not owner.can_write(OTHER_SUB)
    assert contributor.roles == {SUB: "Contributor"}
    assert contributor.can_write(SUB)
    assert admin.admin
    assert not admin.can_read(SUB)
    assert admin.role_for(SUB) is None
    assert [p.name for p in registry.list()] == ["o", "c", "root"]
    with pytest.raises(TypeError):
        owner.roles[SUB] = "Reader"  # type: ignore[index]


def test_ensure_admin_creates_one_admin_once(registry: Registry) -> None:
    registry.create_principal("bob", {SUB: "Owner"})
    admin = registry.ensure_admin(subscription=SUB)
    assert admin.admin
    assert admin.name == "admin"
    assert admin.role_for(SUB) == "Owner"
    assert registry.ensure_admin(subscription=OTHER_SUB) == admin
    assert [p.id for p in registry.list() if p.admin] == [admin.id]


def test_the_tenant_is_stable_or_given(db: Engine, tmp_path: Path) -> None:
    first = Registry(db, tmp_path / "keys", issuer=ISSUER)
    assert Registry(db, tmp_path / "keys", issuer=ISSUER).tenant == first.tenant
    given = "ABCDEF00-0000-0000-0000-000000000001"
    assert Registry(db, tmp_path / "keys", issuer=ISSUER, tenant=given).tenant == given.lower()
    assert (tmp_path / "keys" / "tenant").read_text().strip() == first.tenant
    with pytest.raises(InvalidInput):
        Registry(db, tmp_path / "keys", issuer=ISSUER, tenant="not-a-uuid")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "token-signing-key.pem").write_text("garbage")
    with pytest.raises(InvalidInput):
        Registry(db, tmp_path / "broken", issuer=ISSUER)


def test_tokens_are_never_logged(
    registry: Registry, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = registry.create_principal("alice", {SUB: "Owner"})
    token, _ = registry.mint(alice.id, HOUR)
    registry.authenticate(token)
    clock.now += 2 * HOUR
    refused(registry, token)
    assert token not in caplog.text
    assert token not in repr(registry)


def test_authorization_failed_has_its_wire_code() -> None:
    error = AuthorizationFailed("no role on the subscription", subscription=SUB)
    assert error.to_dict()["code"] == "AuthorizationFailed"
    assert Principal("i", "t", "n", True, False, {}).roles == {}
