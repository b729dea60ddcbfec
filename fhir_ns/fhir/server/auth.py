"""Authentication for FHIR servers: none, a bearer token (from the environment or a file), SMART Backend Services.

Secrets never come from a command-line argument (they would show in `ps`) and are never logged.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from fhir_ns.errors import AuthError, ConfigError, FhirNsError, UnreachableError
from fhir_ns.fhir.server.connection import diagnose


class Auth:
    """Headers to add to each request; `refresh()` is tried once when the server answers 401."""

    can_refresh = False

    def headers(self) -> dict[str, str]:
        return {}

    def refresh(self) -> None:
        """Get new credentials (re-read the token, request a new access token)."""


class NoAuth(Auth):
    pass


@dataclass(slots=True)
class BearerAuth(Auth):
    """A static bearer token read from an environment variable or a file (re-read on 401: it may rotate)."""

    env: str | None = None
    file: Path | None = None
    token: str = ""
    can_refresh = True

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        if self.file is not None:
            try:
                self.token = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the token file {self.file}: {exc.strerror}") from exc
        elif self.env is not None:
            self.token = os.environ.get(self.env, "").strip()
        if not self.token:
            source = f"file {self.file}" if self.file else f"environment variable {self.env}"
            raise ConfigError(f"no bearer token in the {source}")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(slots=True)
class SmartBackendAuth(Auth):
    """SMART Backend Services: client_credentials with a signed JWT assertion (RS384 or ES384).

    The token endpoint comes from `.well-known/smart-configuration` unless given. The access token is
    cached until shortly before it expires.
    """

    base_url: str
    client_id: str
    private_key_file: Path
    kid: str
    alg: str = "RS384"
    scope: str = "system/*.read system/DetectedIssue.write system/CarePlan.write system/Observation.write system/Provenance.write"
    token_url: str | None = None
    session: requests.Session = field(default_factory=requests.Session)
    verify: bool | str = True  # True, or a CA bundle file (--ca-bundle), as for the FHIR requests
    timeout: float = 30.0
    assertion_lifetime: int = 300
    _token: str | None = None
    _expires: float = 0.0
    _key: bytes = b""
    _token_url_given: bool = False
    can_refresh = True

    def __post_init__(self) -> None:
        self._token_url_given = self.token_url is not None
        if self.alg not in ("RS384", "ES384"):
            raise ConfigError(f"SMART Backend Services signs with RS384 or ES384, not {self.alg}")
        try:
            self._key = self.private_key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the private key {self.private_key_file}: {exc.strerror}") from exc

    def headers(self) -> dict[str, str]:
        if self._token is None or time.time() >= self._expires:
            self.refresh()
        return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> None:
        token_url = self.token_url or self._discover()
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(token_url),
        }
        try:
            answer = self.session.post(
                token_url, data=form, timeout=self.timeout, headers={"Accept": "application/json"}, verify=self.verify
            )
        except requests.RequestException as exc:
            given = (
                "--smart-token-url"
                if self._token_url_given
                else "the token_endpoint in .well-known/smart-configuration"
            )
            raise _unreachable(exc, token_url, given, "token endpoint") from exc
        if answer.status_code != 200:
            raise AuthError(
                f"token endpoint refused the client {self.client_id!r}: HTTP {answer.status_code} {_error_text(answer)}"
            )
        body = answer.json()
        self._token = body.get("access_token")
        if not self._token:
            raise AuthError("token endpoint answered without an access_token")
        self._expires = time.time() + max(int(body.get("expires_in", 300)) - 30, 1)

    def assertion(self, token_url: str) -> str:
        """The signed client assertion: iss = sub = client id, aud = token URL, short expiry, unique jti."""
        import jwt  # PyJWT, with cryptography for RS384/ES384

        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + self.assertion_lifetime,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        try:
            return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(f"cannot sign with the key {self.private_key_file} as {self.alg}: {exc}") from exc

    def _discover(self) -> str:
        url = self.base_url.rstrip("/") + "/.well-known/smart-configuration"
        try:
            answer = self.session.get(
                url, timeout=self.timeout, headers={"Accept": "application/json"}, verify=self.verify
            )
        except requests.RequestException as exc:
            raise _unreachable(exc, url, "--base-url", "SMART configuration") from exc
        try:
            config: Any = answer.json() if answer.status_code == 200 else {}
        except ValueError as exc:
            raise AuthError(f"cannot read {url}: the answer is not JSON") from exc
        token_url = config.get("token_endpoint") if isinstance(config, dict) else None
        if not token_url:
            raise AuthError(f"{url} names no token_endpoint (HTTP {answer.status_code}); give --smart-token-url")
        self.token_url = token_url
        return str(token_url)


def _unreachable(exc: requests.RequestException, url: str, check: str, what: str) -> FhirNsError:
    """A connection failure on the way to a token: the server is unreachable (exit 6), not the credentials wrong."""
    failure = diagnose(exc, url, check)
    if failure.unreachable:
        return UnreachableError(f"{what}: {failure.message()}")
    return AuthError(f"{what} {url}: {failure.reason}")


def _error_text(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return " ".join(str(body.get(k)) for k in ("error", "error_description") if body.get(k))
    return ""
