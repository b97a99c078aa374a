"""Bearer tokens: turn the city dashboard's JWT into an Identity, or say why not.

Only the configured algorithms are accepted; HS* verifies with the shared secret, and
RS*/PS*/ES* with a PEM public key or a JWKS endpoint. Keys are prepared once at startup,
so a bad key file fails there and not on the first viewer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWKClientError,
    PyJWKError,
    PyJWKSetError,
    PyJWTError,
)

from gateway.config import AuthSettings

from .names import NameRefused, readable_name
from .roles import ADMIN, AUDITOR, EMERGENCY, POLICE_LIAISON, RoleRules

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
MAX_TOKEN_CHARS = 8192  # far above any real dashboard token; bounds parsing work
MAX_ACCOUNT_CHARS = 256
JWKS_TIMEOUT_SECONDS = 5.0  # pyjwt's default (30 s) would hold a viewer's request too long


@dataclass(frozen=True)
class Identity:
    account: str
    is_admin: bool
    expires_at: datetime  # tz-aware UTC, from exp
    # access/roles.py: "admin", "police_liaison", "auditor", "emergency"
    roles: frozenset[str] = frozenset()

    def has(self, *roles: str) -> bool:
        return (self.is_admin and ADMIN in roles) or bool(self.roles & set(roles))

    @property
    def is_liaison(self) -> bool:
        return POLICE_LIAISON in self.roles

    @property
    def is_auditor(self) -> bool:
        return AUDITOR in self.roles

    @property
    def may_use_emergency(self) -> bool:
        return EMERGENCY in self.roles


class TokenRejected(Exception):
    """Why a token was refused — for the audit log only. The HTTP answer stays generic.

    str(exc) is a short fixed reason ("expired", "bad signature", ...), never the token.
    """


# First match wins, so subclasses come before their bases
# (InvalidSignatureError is a DecodeError; PyJWKClientConnectionError a PyJWKClientError).
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (ExpiredSignatureError, "expired"),
    (ImmatureSignatureError, "not yet valid"),
    (InvalidIssuerError, "wrong issuer"),
    (InvalidAudienceError, "wrong audience"),
    (InvalidSignatureError, "bad signature"),
    (InvalidAlgorithmError, "algorithm not allowed"),
    (InvalidKeyError, "unusable key"),
    (PyJWKClientError, "unknown key"),
    (PyJWKSetError, "unknown key"),
    (PyJWKError, "unknown key"),
    (DecodeError, "malformed"),
)


def _reason(exc: Exception) -> str:
    if isinstance(exc, MissingRequiredClaimError):
        return f"missing {exc.claim}"  # exc.claim is one of our own names (exp, iss, aud)
    return next((r for t, r in _REASONS if isinstance(exc, t)), "malformed")


class TokenVerifier:
    """Verifies bearer JWTs against AuthSettings.

    verify() may block on network I/O when jwks_url is set and the key set is not cached
    (PyJWKClient uses urllib); async code should call averify().
    """

    def __init__(self, settings: AuthSettings, roles: RoleRules | None = None) -> None:
        self._settings = settings
        self._roles = roles
        self.leeway_seconds = settings.leeway_seconds
        self._algorithms = list(settings.algorithms)
        self._keys = self._prepare_keys(settings)  # algorithm -> ready key
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwks_url:
            try:
                # No per-kid LRU (cache_keys): it never expires, so a key removed from the
                # set would stay trusted. The set cache (lifespan) already avoids refetches.
                self._jwks = jwt.PyJWKClient(
                    settings.jwks_url,
                    lifespan=settings.jwks_cache_seconds,
                    timeout=JWKS_TIMEOUT_SECONDS,
                )
            except PyJWKClientError as exc:
                raise ValueError(f"auth.jwks_url: {exc}") from None
        self._options: dict[str, Any] = {
            "require": ["exp"],
            "verify_iss": bool(settings.issuer),
            "verify_aud": bool(settings.audience),  # "" lets tokens carrying any aud pass
            "verify_sub": False,  # sub may be a numeric account; checked in _identity
            "enforce_minimum_key_length": True,  # key lengths are checked at startup
        }

    @staticmethod
    def _prepare_keys(settings: AuthSettings) -> dict[str, Any]:
        if settings.algorithms[0] in HMAC_ALGORITHMS:  # config forbids mixing families
            key: Any = settings.secret
            where = "auth.secret"
        elif settings.public_key_file:
            where = "auth.public_key_file"
            try:
                with open(settings.public_key_file, "rb") as file:
                    pem = file.read()
            except OSError as exc:
                raise ValueError(
                    f"{where}: cannot read {settings.public_key_file!r}: {exc.strerror}"
                ) from None
            try:  # a public key only: the gateway has no business holding a private one
                key = load_pem_public_key(pem)
            except (ValueError, TypeError):
                raise ValueError(f"{where}: not a PEM public key") from None
        else:
            return {}  # JWKS only
        keys = {}
        for name in settings.algorithms:
            algorithm = jwt.get_algorithm_by_name(name)
            try:
                keys[name] = algorithm.prepare_key(key)
            except (InvalidKeyError, TypeError, ValueError):  # e.g. an RSA key for ES256
                raise ValueError(f"{where}: this key cannot verify {name}") from None
            if problem := algorithm.check_key_length(keys[name]):
                raise ValueError(f"{where}: too short for {name} ({problem})")
        return keys

    def verify(self, token: str) -> Identity:
        """The token's Identity, or TokenRejected. May block on a JWKS cache miss."""
        if not token:
            raise TokenRejected("missing token")
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected("malformed")
        try:
            header = jwt.get_unverified_header(token)
            # Checked here too (jwt.decode does it as well) for a precise reason, and so
            # that no key is looked up for an algorithm we would refuse anyway.
            alg = header.get("alg")
            if not isinstance(alg, str) or alg not in self._algorithms:
                raise TokenRejected("algorithm not allowed")
            claims = jwt.decode(
                token,
                self._key(alg, header),
                algorithms=self._algorithms,
                issuer=self._settings.issuer or None,
                audience=self._settings.audience or None,
                leeway=self._settings.leeway_seconds,
                options=self._options,  # type: ignore[arg-type]
            )
        except TokenRejected:
            raise
        # ValueError/TypeError/OverflowError: odd claim values (e.g. exp: 1e400) pyjwt
        # does not wrap. `from None`: pyjwt messages may quote token contents.
        except (PyJWTError, ValueError, TypeError, OverflowError) as exc:
            raise TokenRejected(_reason(exc)) from None
        return self._identity(claims)

    def claimed_account(self, token: str) -> str | None:
        """The account a token claims, read without trusting it (its signature is not
        checked): only to slow down guessing at one account (FailureThrottle)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except (PyJWTError, ValueError, TypeError, OverflowError):
            return None
        account = claims.get(self._settings.account_claim)
        if account is None and self._settings.fallback_account_claim:
            account = claims.get(self._settings.fallback_account_claim)
        if isinstance(account, int | str) and not isinstance(account, bool):
            return str(account)[:MAX_ACCOUNT_CHARS]
        return None

    async def averify(self, token: str) -> Identity:
        # Only a JWKS fetch can block; HMAC/PEM checks take microseconds, no thread needed.
        if self._jwks is None:
            return self.verify(token)
        return await asyncio.to_thread(self.verify, token)

    def _key(self, alg: str, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        # With both a key file and JWKS, a kid selects JWKS; HS* never uses JWKS.
        if self._jwks is None or alg in HMAC_ALGORITHMS or (kid is None and self._keys):
            return self._keys[alg]
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("unknown key")
        try:
            # A PyJWK binds its own algorithm: pyjwt refuses a token whose alg differs.
            return self._jwks.get_signing_key(kid)
        except (PyJWTError, OSError, ValueError):  # unreachable, not JSON, no such kid
            raise TokenRejected("unknown key") from None

    def _identity(self, claims: dict[str, Any]) -> Identity:
        s = self._settings
        exp = claims["exp"]
        if type(exp) not in (int, float):  # pyjwt also accepts "123": a NumericDate is a number
            raise TokenRejected("malformed")
        try:
            expires_at = datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            raise TokenRejected("malformed") from None
        lifetime = exp - time.time()
        if lifetime > s.max_token_lifetime_seconds + s.leeway_seconds:
            raise TokenRejected("lifetime too long")
        account = claims.get(s.account_claim)
        if account is None and s.fallback_account_claim:
            account = claims.get(s.fallback_account_claim)
        if type(account) is int:  # not bool: True is no account
            account = str(account)
        if isinstance(account, str):
            try:  # the same spelling as in grants (access/names.py)
                account = readable_name(account)
            except NameRefused:
                raise TokenRejected("account name not readable") from None
        # isprintable: no newlines or control characters in logs and the console.
        if not (isinstance(account, str) and account.strip() and account.isprintable()):
            raise TokenRejected("no account claim")
        if len(account) > MAX_ACCOUNT_CHARS:
            raise TokenRejected("no account claim")
        is_admin = claims.get(s.admin_claim) is True
        roles = self._roles.roles(account, is_admin, claims) if self._roles else frozenset()
        return Identity(account, is_admin, expires_at, roles | ({ADMIN} if is_admin else set()))


def mint(
    settings: AuthSettings,
    account: str,
    *,
    is_admin: bool = False,
    ttl_seconds: float = 3600,
    **claims: Any,
) -> str:
    """A token the verifier accepts (HS* only): for demo links and tests."""
    alg = settings.algorithms[0]
    if alg not in HMAC_ALGORITHMS or not settings.secret:
        raise ValueError("mint needs an HS* algorithm and auth.secret")
    now = int(time.time())
    payload: dict[str, Any] = {
        "iat": now,
        "exp": int(now + ttl_seconds),
        settings.account_claim: account,
        settings.admin_claim: is_admin,
    }
    if settings.issuer:
        payload["iss"] = settings.issuer
    if settings.audience:
        payload["aud"] = settings.audience
    payload.update(claims)
    return jwt.encode(payload, settings.secret, algorithm=alg)
