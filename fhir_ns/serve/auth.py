"""Who may call the CDS service: every call's JWT checked as CDS Hooks 2.0 "Trusting CDS Clients" asks.

A CDS client (the EHR) signs a short JWT for each call with its private key (ES384 or RS384). The service
trusts only the issuers (`iss`) it is configured with; their public keys come from a JWK Set file given
out of band, or from the JWK Set URL in the token's `jku` header when that URL is on the issuer's
allowlist. `aud` must name the endpoint being called, `exp`/`iat` bound the token's life, and a `jti`
is accepted once only (kept in SQLite until the token could no longer be used anyway).

Nothing from a token except its issuer ever reaches a log line or an exception message: a refused
call is logged with a reason, and the HTTP answer is a bare 401.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from fhir_ns.errors import ConfigError

log = logging.getLogger(__name__)

# CDS Hooks 2.0 recommends ES384 and RS384; `none` and every symmetric (HS*) algorithm are forbidden there.
ACCEPTED_ALGORITHMS = ("ES384", "RS384")
_KEY_TYPE = {"ES384": ("EC", "P-384"), "RS384": ("RSA", None)}
# An unknown `kid` or a stale set makes the service fetch the issuer's JWK Set again, but not more often
# than this: otherwise made-up kids, or an EHR key endpoint that is down, would have it fetching on every call.
JKU_REFETCH_MIN_S = 30
JWKS_MAX_BYTES = 256 * 1024
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class IssuerPolicy:
    """One trusted CDS client: its `iss`, where its keys come from, and the FHIR servers it may send us to."""

    iss: str
    jwks_file: Path | None = None
    jku_allowlist: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthConfig:
    """The `auth:` section of the service configuration, checked."""

    issuers: tuple[IssuerPolicy, ...]
    replay_db: Path
    leeway_s: int = 60
    max_age_s: int = 300
    jwks_cache_s: int = 3600
    jku_timeout_s: float = 2.0

    def issuer(self, iss: str) -> IssuerPolicy | None:
        """The policy for `iss`, or None when that issuer is not trusted."""
        return next((policy for policy in self.issuers if policy.iss == iss), None)


@dataclass(frozen=True)
class Caller:
    """A verified CDS client call."""

    iss: str
    sub: str | None
    jti: str
    policy: IssuerPolicy


class Unauthorized(Exception):
    """A call refused; the message is for the server log (it never holds token content), the client gets a bare 401."""


# --- configuration -------------------------------------------------------------------------------------------

_AUTH_KEYS = {"issuers", "replay_db", "leeway_s", "max_age_s", "jwks_cache_s", "jku_timeout_s"}
_ISSUER_KEYS = {"iss", "jwks_file", "jku_allowlist", "fhir_servers"}


def load_auth_config(section: Mapping[str, Any], base_dir: Path) -> AuthConfig:
    """Read the `auth:` section of the service's YAML configuration; relative paths are taken from `base_dir`."""
    if not isinstance(section, Mapping):
        raise ConfigError("auth: must be a mapping")
    _refuse_unknown("auth", section, _AUTH_KEYS)
    issuers_raw = section.get("issuers")
    if not isinstance(issuers_raw, list) or not issuers_raw:
        raise ConfigError("auth.issuers: list at least one trusted CDS client (iss, jwks_file and/or jku_allowlist)")
    issuers = tuple(_load_issuer(raw, f"auth.issuers[{i}]", base_dir) for i, raw in enumerate(issuers_raw))
    seen: set[str] = set()
    for policy in issuers:
        if policy.iss in seen:
            raise ConfigError(f"auth.issuers: iss {policy.iss!r} is listed twice")
        seen.add(policy.iss)
    return AuthConfig(
        issuers=issuers,
        replay_db=base_dir / str(section.get("replay_db", "cds-replay.sqlite")),
        leeway_s=int(_seconds(section, "leeway_s", 60, maximum=600)),
        max_age_s=int(_seconds(section, "max_age_s", 300, minimum=1)),
        jwks_cache_s=int(_seconds(section, "jwks_cache_s", 3600, minimum=1)),
        jku_timeout_s=_seconds(section, "jku_timeout_s", 2.0, minimum=0.1, maximum=30),
    )


def _load_issuer(raw: Any, where: str, base_dir: Path) -> IssuerPolicy:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping with iss, jwks_file and/or jku_allowlist, fhir_servers")
    _refuse_unknown(where, raw, _ISSUER_KEYS)
    iss = raw.get("iss")
    if not isinstance(iss, str) or not iss:
        raise ConfigError(f"{where}.iss: the issuer URI the CDS client puts in its JWTs is required")
    jwks_file = None
    if raw.get("jwks_file") is not None:
        jwks_file = base_dir / str(raw["jwks_file"])
        try:
            _read_jwks_file(jwks_file)
        except Unauthorized as exc:
            raise ConfigError(f"{where}.jwks_file: {exc}") from exc
    jku_allowlist = _urls(raw, "jku_allowlist", where)
    for url in jku_allowlist:
        parts = urlsplit(url)
        if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
            raise ConfigError(f"{where}.jku_allowlist: {url!r} is not https; keys fetched in clear could be swapped")
    if jwks_file is None and not jku_allowlist:
        raise ConfigError(f"{where}: give jwks_file or jku_allowlist, or no key of {iss!r} can ever be trusted")
    return IssuerPolicy(iss, jwks_file, jku_allowlist, _urls(raw, "fhir_servers", where))


def _urls(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(url, str) for url in value):
        raise ConfigError(f"{where}.{key}: must be a list of URLs")
    for url in value:
        if _plain_url(url) is None:
            raise ConfigError(f"{where}.{key}: {url!r} is not a plain http(s) URL (no user, query or fragment)")
    return tuple(value)


def _seconds(section: Mapping[str, Any], key: str, default: float, minimum: float = 0, maximum: float = 86400) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= maximum:
        raise ConfigError(f"auth.{key}: must be a number of seconds from {minimum:g} to {maximum:g}, not {value!r}")
    return float(value)


def _refuse_unknown(where: str, section: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")


# --- keys ----------------------------------------------------------------------------------------------------


def _keys_by_kid(document: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise Unauthorized("not a JWK Set (a JSON object with a 'keys' list)")
    return {key["kid"]: key for key in document["keys"] if isinstance(key, dict) and isinstance(key.get("kid"), str)}


def _read_jwks_file(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return _keys_by_kid(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise Unauthorized(f"cannot read JWK Set file {path.name}: {exc.__class__.__name__}") from exc


def jku_allowed(policy: IssuerPolicy, jku: str) -> bool:
    """True when `jku` is on the issuer's allowlist: an exact URL, or under an entry ending in '/' (same origin)."""
    if jku in policy.jku_allowlist:
        return True
    parts = _plain_url(jku)
    if parts is None or ".." in parts[3] or "%" in parts[3]:
        return False
    for entry in policy.jku_allowlist:
        allowed = _plain_url(entry)
        if entry.endswith("/") and allowed is not None and parts[:3] == allowed[:3] and parts[3].startswith(allowed[3]):
            return True
    return False


def _plain_url(url: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port, path) of an http(s) URL without user info, query or fragment; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if "@" in parts.netloc or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname.lower(), port or {"http": 80, "https": 443}[scheme], parts.path


class _JwkSetCache:
    """JWK Sets fetched from allowlisted `jku` URLs, kept for `jwks_cache_s`; thread-safe."""

    def __init__(self, cache_s: float, timeout_s: float, clock: Callable[[], float]) -> None:
        self.cache_s = cache_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._sets: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._tried: dict[str, float] = {}  # last fetch attempt per URL, failed or not
        self._lock = threading.Lock()

    def key(self, url: str, kid: str, iss: str) -> dict[str, Any] | None:
        """The JWK `kid` from the set at `url`: cached; fetched when stale or when `kid` is unknown, at most every 30 s."""
        now = self.clock()
        with self._lock:
            fetched_at, keys = self._sets.get(url, (float("-inf"), {}))
            tried_at = self._tried.get(url, float("-inf"))
            wanted = now - fetched_at > self.cache_s or kid not in keys
            fetch = wanted and now - tried_at > JKU_REFETCH_MIN_S
            if fetch:
                self._tried[url] = now
        if wanted and not fetch and not keys:
            raise Unauthorized(
                f"the jku of issuer {iss!r} could not be fetched {now - tried_at:.0f} s ago; retried after {JKU_REFETCH_MIN_S} s"
            )
        if fetch:
            try:
                keys = self._fetch(url)
            except Unauthorized:
                if not keys:
                    raise
                # a stale set beats refusing every call while the EHR's key endpoint is down
                log.warning(
                    "could not refresh the JWK Set of issuer %r; using the copy fetched %.0f s ago",
                    iss,
                    now - fetched_at,
                )
            else:
                log.info("fetched the JWK Set of issuer %r from its jku (%d keys)", iss, len(keys))
                with self._lock:
                    self._sets[url] = (now, keys)
        return keys.get(kid)

    def _fetch(self, url: str) -> dict[str, dict[str, Any]]:
        try:
            # no redirects: a redirect could lead off the allowlist
            with requests.get(url, timeout=self.timeout_s, allow_redirects=False, stream=True) as response:
                if response.status_code != 200:
                    raise Unauthorized(f"the jku answered HTTP {response.status_code}")
                body = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise Unauthorized(f"the jku could not be fetched: {exc.__class__.__name__}") from exc
        if len(body) > JWKS_MAX_BYTES:
            raise Unauthorized("the jku answered with more than 256 KiB")
        try:
            return _keys_by_kid(json.loads(body))
        except ValueError as exc:
            raise Unauthorized("the jku did not answer with JSON") from exc


# --- replay --------------------------------------------------------------------------------------------------


class _ReplayGuard:
    """`jti` values seen per issuer, each kept until its token could no longer be accepted; SQLite, thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # no fsync per call: a power cut may forget the last few jtis, each usable for minutes at most
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen_jti (iss TEXT NOT NULL, jti TEXT NOT NULL, expires_at REAL NOT NULL,"
            " PRIMARY KEY (iss, jti))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_jti_expiry ON seen_jti (expires_at)")
        self._lock = threading.Lock()

    def first_use(self, iss: str, jti: str, expires_at: float, now: float) -> bool:
        """Record (iss, jti); False when it was seen before and has not expired."""
        with self._lock:
            self._db.execute("DELETE FROM seen_jti WHERE expires_at < ?", (now,))
            try:
                self._db.execute("INSERT INTO seen_jti VALUES (?, ?, ?)", (iss, jti, expires_at))
            except sqlite3.IntegrityError:
                return False
            return True


# --- verification --------------------------------------------------------------------------------------------


class Verifier:
    """Checks the `Authorization` header of each CDS call; one per service, safe to share between threads."""

    def __init__(self, config: AuthConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._jku = _JwkSetCache(config.jwks_cache_s, config.jku_timeout_s, clock)
        self._replay = _ReplayGuard(config.replay_db)
        self._files: dict[Path, tuple[int, dict[str, dict[str, Any]]]] = {}
        self._files_lock = threading.Lock()

    def verify(self, authorization_header: str | None, endpoint_url: str) -> Caller:
        """The verified caller of `endpoint_url` (its configured public URL); raises Unauthorized, logged, otherwise."""
        try:
            return self._verify(authorization_header, endpoint_url)
        except Unauthorized as exc:
            log.warning("CDS call to %s refused: %s", endpoint_url, exc)
            raise

    def _verify(self, authorization_header: str | None, endpoint_url: str) -> Caller:
        scheme, _, token = (authorization_header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("no Bearer token")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            # `from None` here and below: the decoder's own message may quote the token
            raise Unauthorized("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:  # before any key is looked up: no `none`, no HS* keyed with a public key
            raise Unauthorized("the token is not signed with ES384 or RS384")
        claimed_iss = unverified.get("iss")
        policy = self.config.issuer(claimed_iss) if isinstance(claimed_iss, str) else None
        if policy is None:
            raise Unauthorized(f"issuer {str(claimed_iss)[:100]!r} is not trusted")
        iss = policy.iss
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized(f"token of issuer {iss!r} has no kid header")
        jwk = self._key(policy, kid, header.get("jku"))
        claims = self._checked_claims(token, jwk, alg, policy)
        if not _audience_is(claims.get("aud"), endpoint_url):
            raise Unauthorized(f"token of issuer {iss!r} was made for another endpoint (aud)")
        now = self.clock()
        exp, iat = claims["exp"], claims["iat"]
        if exp + self.config.leeway_s < now:
            raise Unauthorized(f"token of issuer {iss!r} has expired")
        if iat - self.config.leeway_s > now:
            raise Unauthorized(f"token of issuer {iss!r} was issued in the future (clocks apart?)")
        if iat + self.config.max_age_s + self.config.leeway_s < now:
            raise Unauthorized(f"token of issuer {iss!r} was issued more than {self.config.max_age_s} s ago")
        if claims.get("nbf", now) - self.config.leeway_s > now:
            raise Unauthorized(f"token of issuer {iss!r} is not valid yet (nbf)")
        # kept until the token could no longer pass the checks above, whichever comes first
        usable_until = min(exp, iat + self.config.max_age_s) + self.config.leeway_s
        if not self._replay.first_use(iss, claims["jti"], usable_until, now):
            raise Unauthorized(f"token of issuer {iss!r} was used before (jti replayed)")
        sub = claims.get("sub")
        return Caller(iss=iss, sub=sub if isinstance(sub, str) else None, jti=claims["jti"], policy=policy)

    def _key(self, policy: IssuerPolicy, kid: str, jku: Any) -> dict[str, Any]:
        """The issuer's JWK `kid`: from its JWK Set file first, then from an allowlisted `jku` (an unlisted one is never fetched)."""
        if policy.jwks_file is not None:
            key = self._file_keys(policy.jwks_file).get(kid)
            if key is not None:
                return key
        if isinstance(jku, str) and jku_allowed(policy, jku):
            key = self._jku.key(jku, kid, policy.iss)
            if key is not None:
                return key
            raise Unauthorized(f"issuer {policy.iss!r} has no key with that kid in its JWK Set")
        if jku is not None:
            raise Unauthorized(
                f"the jku of issuer {policy.iss!r} is not on its allowlist (not fetched), and its JWK Set file has no key with that kid"
            )
        raise Unauthorized(f"issuer {policy.iss!r} has no key with that kid in its JWK Set file")

    def _file_keys(self, path: Path) -> dict[str, dict[str, Any]]:
        """The keys of a JWK Set file, read again when the file changes (keys can be rotated without a restart)."""
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as exc:
            raise Unauthorized(f"cannot read JWK Set file {path.name}: {exc.__class__.__name__}") from exc
        with self._files_lock:
            cached = self._files.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        keys = _read_jwks_file(path)
        with self._files_lock:
            self._files[path] = (mtime, keys)
        return keys

    def _checked_claims(self, token: str, jwk: dict[str, Any], alg: str, policy: IssuerPolicy) -> dict[str, Any]:
        """The claims, once the signature is verified with `jwk` under `alg`; times are checked by the caller's clock."""
        kty, crv = _KEY_TYPE[alg]
        if (
            jwk.get("kty") != kty
            or (crv and jwk.get("crv") != crv)
            or jwk.get("alg", alg) != alg
            or jwk.get("use", "sig") != "sig"
        ):
            raise Unauthorized(f"the key of issuer {policy.iss!r} does not fit the token's algorithm")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options={
                    "require": ["iss", "aud", "exp", "iat", "jti"],
                    "verify_aud": False,  # CDS Hooks wants the exact endpoint URL: checked by _audience_is
                    "verify_exp": False,  # times: checked against the verifier's clock
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token of issuer {policy.iss!r} lacks the required claim {exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized(f"token of issuer {policy.iss!r} has a bad signature") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized(f"token of issuer {policy.iss!r} cannot be verified: {exc.__class__.__name__}") from None
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name, 0)
            # JSON as Python reads it allows NaN and Infinity, which would slip through every comparison
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise Unauthorized(f"token of issuer {policy.iss!r}: {name} is not a number")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise Unauthorized(f"token of issuer {policy.iss!r}: jti is not a non-empty string")
        return claims


def _audience_is(aud: Any, endpoint_url: str) -> bool:
    """CDS Hooks: `aud` is the URL of the endpoint called, as a string or a one-element array."""
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return isinstance(aud, str) and aud == endpoint_url


# --- FHIR server allowlist -----------------------------------------------------------------------------------


def fhir_server_allowed(caller: Caller, url: str) -> bool:
    """True when `url` is one of the FHIR servers the caller's issuer may send us to (tokens go nowhere else).

    Scheme, host, port and path must all match a configured base URL (a trailing '/' aside); a URL with
    user info, a query or a fragment never matches, and neither does a longer host or path.
    """
    wanted = _plain_url(url)
    if wanted is None:
        return False
    for server in caller.policy.fhir_servers:
        allowed = _plain_url(server)
        if allowed is not None and allowed[:3] == wanted[:3] and allowed[3].rstrip("/") == wanted[3].rstrip("/"):
            return True
    return False
