"""Token verification with real pyjwt, real keys and a real local JWKS endpoint."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm
from support.gateway import AUTH, VIEWER, camera_entry, settings_for

from gateway.access.roles import RoleRules
from gateway.access.tokens import Identity, TokenRejected, TokenVerifier, mint
from gateway.app import SETTINGS
from gateway.config import AuthSettings, GovernanceSettings
from gateway.http.errors import bearer_token

SECRET = "correct horse battery staple 0123"  # 33 bytes
ISSUER = "Taipei citydashboard"
UNREACHABLE = "http://127.0.0.1:1/jwks.json"  # nothing listens on port 1


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "iat": now, "exp": now + 600, "account_id": "alice", **extra}


def drop(payload: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in names}


def sign(payload: dict[str, Any], key: Any = SECRET, alg: str = "HS256", **header: Any) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers=header or None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: Any, hmac_key: bytes | None = None) -> str:
    """A JWT built without pyjwt, which refuses to produce the attacks tested here."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    digest = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(digest)}"


def rejected(verifier: TokenVerifier, token: str) -> str:
    """The refusal reason, checking it never leaks the token (or pyjwt's message)."""
    with pytest.raises(TokenRejected) as info:
        verifier.verify(token)
    reason = str(info.value)
    for part in [token, *token.split(".")]:
        assert len(part) < 8 or part not in repr(info.value.args)
    exc = info.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    return reason


def public_pem(private: Any) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key(tmp_path: Path, private: Any) -> str:
    path = tmp_path / "public.pem"
    path.write_bytes(public_pem(private))
    return str(path)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def hs() -> TokenVerifier:
    return TokenVerifier(AuthSettings(secret=SECRET))


@pytest.fixture
def rs(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> TokenVerifier:
    path = write_key(tmp_path, rsa_key)
    return TokenVerifier(AuthSettings(algorithms=("RS256",), public_key_file=path))


# --- a valid token ---------------------------------------------------------------------


def test_valid_hs256_token(hs: TokenVerifier) -> None:
    payload = claims()
    identity = hs.verify(sign(payload))
    assert identity == Identity(
        account="alice",
        is_admin=False,
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )
    assert identity.expires_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("extra", "account"),
    [
        ({"account_id": "alice", "sub": "bob"}, "alice"),
        ({"account_id": None, "sub": "bob"}, "bob"),
        ({"sub": "bob"}, "bob"),
        ({"account_id": 42}, "42"),
        ({"sub": 7}, "7"),
        ({"account_id": "臺北市 林小姐"}, "臺北市 林小姐"),
        ({"account_id": "x" * 256}, "x" * 256),
        ({"account_id": "\uff41lice"}, "alice"),  # full-width: the grant's spelling (NFKC)
    ],
)
def test_account_claim_and_fallback(hs: TokenVerifier, extra: dict, account: str) -> None:
    assert hs.verify(sign({**drop(claims(), "account_id"), **extra})).account == account


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"account_id": ""},
        {"account_id": "   "},
        {"account_id": True},
        {"account_id": ["alice"]},
        {"account_id": {"id": "alice"}},
        {"account_id": 1.5},
        {"account_id": "x" * 257},
        {"account_id": "alice\nadmin logged in"},
        {"account_id": "", "sub": "bob"},  # present but empty: no silent fallback
    ],
)
def test_bad_or_missing_account_is_refused(hs: TokenVerifier, extra: dict) -> None:
    assert rejected(hs, sign({**drop(claims(), "account_id"), **extra})) == "no account claim"


@pytest.mark.parametrize("account", ["ali\u200bce", "ecila\u202e", "\u2067alice"])
def test_an_account_name_with_invisible_characters_is_refused(
    hs: TokenVerifier, account: str
) -> None:
    assert rejected(hs, sign(claims(account_id=account))) == "account name not readable"


def test_fallback_can_be_disabled() -> None:
    verifier = TokenVerifier(AuthSettings(secret=SECRET, fallback_account_claim=""))
    assert rejected(verifier, sign(drop(claims(sub="bob"), "account_id"))) == "no account claim"


def test_custom_claim_names() -> None:
    settings = AuthSettings(secret=SECRET, account_claim="uid", admin_claim="root")
    identity = TokenVerifier(settings).verify(sign(claims(uid="u1", root=True)))
    assert (identity.account, identity.is_admin) == ("u1", True)


@pytest.mark.parametrize(
    ("value", "is_admin"),
    [(True, True), (False, False), ("true", False), (1, False), ("1", False), (None, False)],
)
def test_only_json_true_makes_an_admin(hs: TokenVerifier, value: Any, is_admin: bool) -> None:
    assert hs.verify(sign(claims(is_admin=value))).is_admin is is_admin


def test_admin_claim_absent(hs: TokenVerifier) -> None:
    assert hs.verify(sign(claims())).is_admin is False


# --- the Authorization header ----------------------------------------------------------


def _bearer(header: str | None) -> str:
    headers = {} if header is None else {"Authorization": header}
    return bearer_token(make_mocked_request("GET", "/", headers=headers))


@pytest.mark.parametrize("template", ["Bearer {}", "bearer {}", "BEARER  {} ", " Bearer\t{}"])
def test_bearer_header(hs: TokenVerifier, template: str) -> None:
    assert hs.verify(_bearer(template.format(sign(claims())))).account == "alice"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNzd29yZA==", "Token {}", "{}"]
)
def test_missing_token(hs: TokenVerifier, header: str | None) -> None:
    token = sign(claims())
    with pytest.raises(TokenRejected, match=r"^missing token$"):
        hs.verify(_bearer(header.format(token) if header else header))


async def test_averify(hs: TokenVerifier) -> None:
    assert (await hs.averify(sign(claims()))).account == "alice"
    with pytest.raises(TokenRejected, match=r"^missing token$"):
        await hs.averify("")


# --- broken and forged tokens ----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9.%%%%.xxxx",
        f"{b64(b'not json')}.{b64(b'{}')}.",
        "x" * 10_000,
    ],
)
def test_malformed(hs: TokenVerifier, token: str) -> None:
    assert rejected(hs, token) == "malformed"


def test_payload_must_be_an_object(hs: TokenVerifier) -> None:
    token = hand_made({"alg": "HS256", "typ": "JWT"}, ["alice"], SECRET.encode())
    assert rejected(hs, token) == "malformed"


def test_bad_signature(hs: TokenVerifier) -> None:
    assert rejected(hs, sign(claims(), key="another secret of at least 32 bytes")) == (
        "bad signature"
    )
    # A valid signature on other claims: the admin's payload with alice's signature.
    head, _, sig = sign(claims()).split(".")
    admin_payload = sign(claims(account_id="mallory", is_admin=True)).split(".")[1]
    assert rejected(hs, f"{head}.{admin_payload}.{sig}") == "bad signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_is_refused(hs: TokenVerifier, alg: str) -> None:
    token = hand_made({"alg": alg, "typ": "JWT"}, claims(is_admin=True))
    assert token.endswith(".")
    assert rejected(hs, token) == "algorithm not allowed"


def test_missing_alg_is_refused(hs: TokenVerifier) -> None:
    token = hand_made({"typ": "JWT"}, claims(), SECRET.encode())
    assert rejected(hs, token) == "algorithm not allowed"


def test_other_hmac_algorithm_is_refused(hs: TokenVerifier) -> None:
    assert rejected(hs, sign(claims(), SECRET * 2, "HS512")) == "algorithm not allowed"


# --- HS/RS confusion -------------------------------------------------------------------


def test_rs_verifier_accepts_rs256(rs: TokenVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    assert rs.verify(sign(claims(), rsa_key, "RS256")).account == "alice"


def test_rs_verifier_refuses_hs256_signed_with_the_public_key(
    rs: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic attack: the public key is public, so anyone could sign with it as HMAC.
    token = hand_made({"alg": "HS256", "typ": "JWT"}, claims(is_admin=True), public_pem(rsa_key))
    assert rejected(rs, token) == "algorithm not allowed"


def test_hs_verifier_refuses_rs256(hs: TokenVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    assert rejected(hs, sign(claims(), rsa_key, "RS256")) == "algorithm not allowed"


def test_rs_verifier_refuses_another_key(rs: TokenVerifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert rejected(rs, sign(claims(), other, "RS256")) == "bad signature"


def test_es256_with_a_pem_public_key(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = write_key(tmp_path, ec_key)
    verifier = TokenVerifier(AuthSettings(algorithms=("ES256",), public_key_file=path))
    assert verifier.verify(sign(claims(is_admin=True), ec_key, "ES256")).is_admin is True
    assert rejected(verifier, sign(claims(), rsa_key, "RS256")) == "algorithm not allowed"
    other = ec.generate_private_key(ec.SECP256R1())
    assert rejected(verifier, sign(claims(), other, "ES256")) == "bad signature"


# --- time claims -----------------------------------------------------------------------


def test_expired(hs: TokenVerifier) -> None:
    assert rejected(hs, sign(claims(exp=int(time.time()) - 120))) == "expired"


def test_expired_within_leeway_is_accepted(hs: TokenVerifier) -> None:
    assert hs.verify(sign(claims(exp=int(time.time()) - 10))).account == "alice"
    strict = TokenVerifier(AuthSettings(secret=SECRET, leeway_seconds=0))
    assert rejected(strict, sign(claims(exp=int(time.time()) - 10))) == "expired"


def test_not_yet_valid(hs: TokenVerifier) -> None:
    assert rejected(hs, sign(claims(nbf=int(time.time()) + 120))) == "not yet valid"
    assert rejected(hs, sign(claims(iat=int(time.time()) + 120))) == "not yet valid"
    assert hs.verify(sign(claims(nbf=int(time.time()) + 10))).account == "alice"  # leeway


def test_missing_exp(hs: TokenVerifier) -> None:
    assert rejected(hs, sign(drop(claims(), "exp"))) == "missing exp"
    assert rejected(hs, sign(claims(exp=None))) == "missing exp"


@pytest.mark.parametrize(
    ("exp", "reason"),
    [
        ("9999999999", "malformed"),  # a NumericDate is a number, not a string
        (True, "expired"),  # pyjwt reads it as 1 (1970)
        (10**20, "malformed"),  # beyond datetime
        (float("inf"), "malformed"),
        ([1], "malformed"),
    ],
)
def test_odd_exp(hs: TokenVerifier, exp: Any, reason: str) -> None:
    assert rejected(hs, sign(claims(exp=exp))) == reason


# --- issuer and audience ---------------------------------------------------------------


def test_wrong_or_missing_issuer(hs: TokenVerifier) -> None:
    assert rejected(hs, sign(claims(iss="Somewhere else"))) == "wrong issuer"
    assert rejected(hs, sign(drop(claims(), "iss"))) == "missing iss"


def test_issuer_check_can_be_disabled() -> None:
    verifier = TokenVerifier(AuthSettings(secret=SECRET, issuer=""))
    assert verifier.verify(sign(drop(claims(), "iss"))).account == "alice"
    assert verifier.verify(sign(claims(iss="anyone"))).account == "alice"


def test_audience_checked_when_configured() -> None:
    verifier = TokenVerifier(AuthSettings(secret=SECRET, audience="cctv-gateway"))
    assert verifier.verify(sign(claims(aud="cctv-gateway"))).account == "alice"
    assert verifier.verify(sign(claims(aud=["dashboard", "cctv-gateway"]))).account == "alice"
    assert rejected(verifier, sign(claims(aud="dashboard"))) == "wrong audience"
    assert rejected(verifier, sign(claims())) == "missing aud"


def test_audience_ignored_when_not_configured(hs: TokenVerifier) -> None:
    assert hs.verify(sign(claims(aud="dashboard"))).account == "alice"


# --- configuration mistakes fail at startup --------------------------------------------


def test_missing_key_file(tmp_path: Path) -> None:
    settings = AuthSettings(algorithms=("RS256",), public_key_file=str(tmp_path / "nope.pem"))
    with pytest.raises(ValueError, match=r"auth\.public_key_file: cannot read"):
        TokenVerifier(settings)


def test_key_file_must_hold_a_public_key(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pem"
    settings = AuthSettings(algorithms=("RS256",), public_key_file=str(path))
    path.write_text("not a key")
    with pytest.raises(ValueError, match=r"auth\.public_key_file: not a PEM public key"):
        TokenVerifier(settings)
    private_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(private_pem)
    with pytest.raises(ValueError, match=r"auth\.public_key_file: not a PEM public key"):
        TokenVerifier(settings)


def test_key_must_fit_the_algorithm(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    settings = AuthSettings(algorithms=("ES256",), public_key_file=write_key(tmp_path, rsa_key))
    with pytest.raises(ValueError, match=r"auth\.public_key_file: this key cannot verify ES256"):
        TokenVerifier(settings)


def test_secret_must_be_long_enough_for_the_algorithm() -> None:
    with pytest.raises(ValueError, match=r"auth\.secret: too short for HS512"):
        TokenVerifier(AuthSettings(algorithms=("HS512",), secret=SECRET))


def test_jwks_url_must_be_http() -> None:
    settings = AuthSettings(algorithms=("RS256",), jwks_url="file:///etc/passwd")
    with pytest.raises(ValueError, match=r"auth\.jwks_url"):
        TokenVerifier(settings)


# --- JWKS ------------------------------------------------------------------------------


def jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    key = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**key, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
async def jwks() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A local JWKS endpoint; state["keys"] is what it serves, state["hits"] counts fetches."""
    state: dict[str, Any] = {"keys": [], "hits": 0}

    async def handler(request: web.Request) -> web.Response:
        state["hits"] += 1
        return web.json_response({"keys": state["keys"]})

    app = web.Application()
    app.router.add_get("/jwks.json", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/jwks.json")), state
    await server.close()


async def test_jwks_verifies_by_kid(
    jwks: tuple[str, dict[str, Any]], rsa_key: rsa.RSAPrivateKey
) -> None:
    url, state = jwks
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state["keys"] = [jwk(other, "k0"), jwk(rsa_key, "k1")]
    verifier = TokenVerifier(AuthSettings(algorithms=("RS256",), jwks_url=url))

    identity = await verifier.averify(sign(claims(is_admin=True), rsa_key, "RS256", kid="k1"))
    assert (identity.account, identity.is_admin) == ("alice", True)
    assert (await verifier.averify(sign(claims(), other, "RS256", kid="k0"))).account == "alice"
    assert state["hits"] == 1  # the key set is cached

    async def refused(token: str) -> str:
        with pytest.raises(TokenRejected) as info:
            await verifier.averify(token)
        assert token not in str(info.value)
        return str(info.value)

    assert await refused(sign(claims(), rsa_key, "RS256", kid="nope")) == "unknown key"
    assert await refused(sign(claims(), rsa_key, "RS256")) == "unknown key"  # no kid
    assert await refused(sign(claims(), rsa_key, "RS256", kid="k0")) == "bad signature"
    assert await refused(sign(claims(), SECRET, "HS256", kid="k1")) == "algorithm not allowed"


async def test_jwks_key_removed_from_the_set_stops_working(
    jwks: tuple[str, dict[str, Any]], rsa_key: rsa.RSAPrivateKey
) -> None:
    url, state = jwks
    state["keys"] = [jwk(rsa_key, "old")]
    settings = AuthSettings(algorithms=("RS256",), jwks_url=url, jwks_cache_seconds=0.2)
    verifier = TokenVerifier(settings)
    token = sign(claims(), rsa_key, "RS256", kid="old")
    assert (await verifier.averify(token)).account == "alice"

    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state["keys"] = [jwk(new, "new")]
    await asyncio.sleep(0.3)
    with pytest.raises(TokenRejected, match=r"^unknown key$"):
        await verifier.averify(token)
    assert (await verifier.averify(sign(claims(), new, "RS256", kid="new"))).account == "alice"


async def test_jwks_unreachable(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(AuthSettings(algorithms=("RS256",), jwks_url=UNREACHABLE))
    with pytest.raises(TokenRejected, match=r"^unknown key$"):
        await verifier.averify(sign(claims(), rsa_key, "RS256", kid="k1"))


async def test_jwks_endpoint_not_json(rsa_key: rsa.RSAPrivateKey) -> None:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>")

    app.router.add_get("/jwks.json", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("/jwks.json"))
        verifier = TokenVerifier(AuthSettings(algorithms=("RS256",), jwks_url=url))
        with pytest.raises(TokenRejected, match=r"^unknown key$"):
            await verifier.averify(sign(claims(), rsa_key, "RS256", kid="k1"))
    finally:
        await server.close()


def test_key_file_used_for_tokens_without_kid(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = write_key(tmp_path, rsa_key)
    settings = AuthSettings(algorithms=("RS256",), public_key_file=path, jwks_url=UNREACHABLE)
    verifier = TokenVerifier(settings)  # no network needed: the kid-less token uses the file
    assert verifier.verify(sign(claims(), rsa_key, "RS256")).account == "alice"


# --- mint ------------------------------------------------------------------------------


def test_mint_round_trips() -> None:
    settings = AuthSettings(secret=SECRET, audience="cctv-gateway")
    verifier = TokenVerifier(settings)
    before = time.time()
    identity = verifier.verify(mint(settings, "bob", is_admin=True, ttl_seconds=120))
    assert (identity.account, identity.is_admin) == ("bob", True)
    assert before + 118 <= identity.expires_at.timestamp() <= time.time() + 120

    payload = jwt.decode(
        mint(settings, "bob", team="traffic"),
        SECRET,
        algorithms=["HS256"],
        audience="cctv-gateway",
    )
    assert payload["iss"] == ISSUER and payload["team"] == "traffic" and "iat" in payload
    assert verifier.verify(mint(settings, "bob")).is_admin is False


async def test_mint_and_averify_without_jwks(hs: TokenVerifier) -> None:
    token = mint(AuthSettings(secret=SECRET), "carol", ttl_seconds=-120)
    with pytest.raises(TokenRejected, match=r"^expired$"):
        await hs.averify(token)


def test_mint_refuses_key_algorithms(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    settings = AuthSettings(algorithms=("RS256",), public_key_file=write_key(tmp_path, rsa_key))
    with pytest.raises(ValueError, match="HS"):
        mint(settings, "bob")


async def test_a_running_gateway_refuses_a_token_one_second_past_its_maximum_lifetime(
    start_gateway,
) -> None:
    """`[auth] max_token_lifetime_seconds` as configured, in seconds: a token that would
    live 1-2 s longer than the maximum (and the leeway) is refused, one 1-2 s inside
    it is accepted."""
    settings = settings_for(
        [camera_entry("cam", "demo:testsrc", demo_size="160x120")],
        tables={"auth": {**AUTH, "max_token_lifetime_seconds": 600}},
    )
    gateway = await start_gateway(settings, grant=False)
    auth = gateway.app[SETTINGS].auth
    longest = auth.max_token_lifetime_seconds + auth.leeway_seconds

    async def status_for(lifetime: float) -> int:
        now = time.time()
        claims = {"iat": int(now), "exp": int(now + lifetime), "account_id": VIEWER}
        token = jwt.encode({**claims, "iss": auth.issuer}, auth.secret, algorithm="HS256")
        headers = {"Authorization": f"Bearer {token}"}
        return (await gateway.http.get(f"{gateway.url}/api/me", headers=headers)).status

    assert await status_for(longest + 2) == 401  # exp's whole seconds: 1-2 s past
    assert await status_for(longest - 1) == 200  # 1-2 s inside


# --- roles: [governance] lists, or the dashboard's `permissions` groups ----------------


def test_roles_come_from_governance_lists_or_the_dashboards_permission_groups() -> None:
    rules = RoleRules(
        GovernanceSettings(
            police_liaisons=("officer-wang",),
            police_liaison_groups=("7:3",),  # role 3 of group 7
            auditor_groups=("9",),  # anyone in group 9
            emergency_groups=("fire-duty",),  # a plain name in the claim
        )
    )
    verifier = TokenVerifier(AuthSettings(secret=SECRET), rules)

    def roles(**extra: Any) -> frozenset[str]:
        return verifier.verify(sign(claims(**extra))).roles

    assert roles() == frozenset()
    assert roles(account_id="officer-wang") == {"police_liaison"}
    assert roles(permissions=[{"group_id": 7, "role_id": 3}]) == {"police_liaison"}
    assert roles(permissions=[{"group_id": 7, "role_id": 4}]) == frozenset()  # another role
    assert roles(permissions=[{"group_id": 9, "role_id": 1}, "fire-duty"]) == {
        "auditor",
        "emergency",
    }
    assert roles(is_admin=True, permissions=[{"group_id": 9}]) == {"admin", "auditor"}
    # Anything else in the claim counts for nothing, and breaks nothing.
    for odd in ("9", {"group_id": 9}, [None, True, {"group_id": None}, 1.5], [[9]]):
        assert roles(permissions=odd) == frozenset()
