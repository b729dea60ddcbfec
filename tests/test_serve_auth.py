"""Who may call the CDS service: an EHR's signed JWT, checked the way CDS Hooks 2.0 asks.

The EHR's keys are made here with `cryptography`; a JWK Set "published by the EHR" is served by a
real HTTP server on 127.0.0.1 that records every request, so a test can show a key was (not) fetched.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_ns.errors import ConfigError
from fhir_ns.serve.auth import (
    AuthConfig,
    Caller,
    IssuerPolicy,
    Unauthorized,
    Verifier,
    fhir_server_allowed,
    jku_allowed,
    load_auth_config,
)

EHR = "https://ehr.example.org"
ENDPOINT = "https://cds.example.org/cds-services/fhir-ns-patient-view"


@dataclass
class SigningKey:
    """A CDS client's key pair: signs tokens, and gives its public half as a JWK."""

    alg: str
    kid: str
    private: Any

    @classmethod
    def new(cls, alg: str = "ES384", kid: str | None = None) -> SigningKey:
        private = (
            ec.generate_private_key(ec.SECP384R1())
            if alg == "ES384"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        return cls(alg, kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", private)

    def jwk(self) -> dict[str, Any]:
        tool = ECAlgorithm if self.alg == "ES384" else RSAAlgorithm
        jwk: dict[str, Any] = tool.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, headers: dict[str, Any] | None = None, **changes: Any) -> str:
        """A token as an EHR would send it for ENDPOINT now; `changes` replace claims (None drops one)."""
        now = int(time.time())
        claims = {"iss": EHR, "sub": "ehr-client-7", "aud": ENDPOINT, "iat": now, "exp": now + 300}
        claims["jti"] = str(uuid.uuid4())
        claims.update(changes)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})


def jwks_file(path: Path, *keys: SigningKey) -> Path:
    path.write_text(json.dumps({"keys": [key.jwk() for key in keys]}), encoding="utf-8")
    return path


def unsigned(header: dict[str, Any], claims: dict[str, Any], sign: bytes | None = None) -> str:
    """A token built by hand, as an attacker would: no signature, or an HMAC-SHA384 keyed with `sign`."""

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = b""
    if sign is not None:
        signature = hmac.new(sign, signing_input.encode(), hashlib.sha384).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@dataclass
class KeyServer:
    """The EHR's JWK Set endpoint on 127.0.0.1, recording the paths asked for."""

    url: str
    keys: list[dict[str, Any]]
    requests: list[str] = field(default_factory=list)
    delay_s: float = 0  # fault injection: a slow EHR
    redirect_to: str | None = None  # fault injection: an EHR sending us elsewhere


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    state = KeyServer("", [])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.requests.append(self.path)
            time.sleep(state.delay_s)
            if state.redirect_to and self.path != state.redirect_to:
                self.send_response(302)
                self.send_header("Location", state.url + state.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # the service gave up waiting (the slow-EHR test)
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def verifier(tmp_path: Path, *policies: IssuerPolicy, clock: Any = time.time) -> Verifier:
    return Verifier(AuthConfig(issuers=policies, replay_db=tmp_path / "replay.sqlite"), clock=clock)


@pytest.fixture
def ehr_key() -> SigningKey:
    return SigningKey.new("ES384")


@pytest.fixture
def ehr(tmp_path: Path, ehr_key: SigningKey) -> Verifier:
    """A service trusting one EHR, whose public key was handed over as a JWK Set file."""
    policy = IssuerPolicy(EHR, jwks_file=jwks_file(tmp_path / "ehr-jwks.json", ehr_key), fhir_servers=(f"{EHR}/fhir",))
    return verifier(tmp_path, policy)


def refused(v: Verifier, token: str, endpoint: str = ENDPOINT) -> str:
    with pytest.raises(Unauthorized) as caught:
        v.verify(f"Bearer {token}", endpoint)
    return str(caught.value)


# --- tokens ---------------------------------------------------------------------------------------------------


def test_a_fresh_es384_token_from_the_trusted_ehr_is_accepted(ehr: Verifier, ehr_key: SigningKey) -> None:
    caller = ehr.verify(f"Bearer {ehr_key.token(jti='call-1')}", ENDPOINT)
    assert (caller.iss, caller.sub, caller.jti) == (EHR, "ehr-client-7", "call-1")
    assert caller.policy.fhir_servers == (f"{EHR}/fhir",)


def test_aud_may_be_a_one_element_array_as_the_spec_shows(ehr: Verifier, ehr_key: SigningKey) -> None:
    assert ehr.verify(f"Bearer {ehr_key.token(aud=[ENDPOINT])}", ENDPOINT).iss == EHR
    assert "another endpoint" in refused(ehr, ehr_key.token(aud=[ENDPOINT, "https://other.example.org/x"]))


def test_an_rs384_token_is_accepted(tmp_path: Path) -> None:
    rsa_key = SigningKey.new("RS384")
    v = verifier(tmp_path, IssuerPolicy(EHR, jwks_file=jwks_file(tmp_path / "jwks.json", rsa_key)))
    assert v.verify(f"Bearer {rsa_key.token()}", ENDPOINT).iss == EHR


def test_no_header_or_another_scheme_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    for header in (None, "", "Bearer ", f"Basic {ehr_key.token()}", ehr_key.token()):
        with pytest.raises(Unauthorized, match="no Bearer token"):
            ehr.verify(header, ENDPOINT)


def test_an_expired_token_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    now = int(time.time())
    assert "expired" in refused(ehr, ehr_key.token(iat=now - 200, exp=now - 61))
    # within the 60 s of clock skew allowed, it still passes
    assert ehr.verify(f"Bearer {ehr_key.token(iat=now - 200, exp=now - 30)}", ENDPOINT).iss == EHR


def test_a_token_issued_in_the_future_or_long_ago_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    now = int(time.time())
    assert "in the future" in refused(ehr, ehr_key.token(iat=now + 120, exp=now + 400))
    assert "more than 300 s ago" in refused(ehr, ehr_key.token(iat=now - 3600, exp=now + 3600))


def test_required_claims_must_be_there(ehr: Verifier, ehr_key: SigningKey) -> None:
    for claim in ("exp", "iat", "jti", "aud"):
        assert f"required claim {claim}" in refused(ehr, ehr_key.token(**{claim: None}))
    assert "exp is not a number" in refused(ehr, ehr_key.token(exp="tomorrow"))
    assert "nbf is not a number" in refused(ehr, ehr_key.token(nbf=True))
    # Python's JSON reader takes NaN and Infinity: a NaN iat would pass every time check
    assert "iat is not a number" in refused(ehr, ehr_key.token(iat=float("nan")))
    assert "exp is not a number" in refused(ehr, ehr_key.token(exp=float("inf")))


def test_a_token_not_valid_yet_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    assert "not valid yet (nbf)" in refused(ehr, ehr_key.token(nbf=int(time.time()) + 120))


def test_a_token_made_for_another_endpoint_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    assert "another endpoint" in refused(ehr, ehr_key.token(aud="https://cds.example.org/cds-services"))
    # exact: no trailing-slash, prefix or case games
    assert "another endpoint" in refused(ehr, ehr_key.token(aud=ENDPOINT + "/"))
    assert "another endpoint" in refused(ehr, ehr_key.token(), endpoint=ENDPOINT.upper())


def test_an_issuer_not_on_the_allowlist_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    assert "'https://evil.example.net' is not trusted" in refused(ehr, ehr_key.token(iss="https://evil.example.net"))
    assert "is not trusted" in refused(ehr, ehr_key.token(iss=None))


def test_a_replayed_jti_is_refused_even_by_a_second_service_process(
    tmp_path: Path, ehr: Verifier, ehr_key: SigningKey
) -> None:
    token = ehr_key.token()
    ehr.verify(f"Bearer {token}", ENDPOINT)
    assert "jti replayed" in refused(ehr, token)
    # another worker sharing the state directory sees the same jti
    other_worker = Verifier(ehr.config)
    assert "jti replayed" in refused(other_worker, token)
    # a new token with a new jti passes
    assert other_worker.verify(f"Bearer {ehr_key.token()}", ENDPOINT).iss == EHR


def test_one_token_sent_by_many_threads_at_once_passes_once(ehr: Verifier, ehr_key: SigningKey) -> None:
    """The service verifies in a thread pool: a token replayed in parallel still gets in only once."""
    token = ehr_key.token()
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def call() -> None:
        start.wait()
        try:
            ehr.verify(f"Bearer {token}", ENDPOINT)
            outcomes.append("accepted")
        except Unauthorized:
            outcomes.append("refused")

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted"] + ["refused"] * 7


def test_seen_jtis_are_forgotten_once_their_token_could_not_pass_anyway(tmp_path: Path, ehr_key: SigningKey) -> None:
    now = [time.time()]
    v = verifier(
        tmp_path, IssuerPolicy(EHR, jwks_file=jwks_file(tmp_path / "jwks.json", ehr_key)), clock=lambda: now[0]
    )
    v.verify(f"Bearer {ehr_key.token(jti='a')}", ENDPOINT)
    now[0] += 1000  # past exp + leeway: the row of 'a' is pruned with the next call
    v.verify(f"Bearer {ehr_key.token(jti='b', iat=int(now[0]), exp=int(now[0]) + 60)}", ENDPOINT)
    with sqlite3.connect(tmp_path / "replay.sqlite") as db:
        assert [row[0] for row in db.execute("SELECT jti FROM seen_jti")] == ["b"]


def test_alg_none_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    now = int(time.time())
    claims = {"iss": EHR, "aud": ENDPOINT, "iat": now, "exp": now + 300, "jti": "x"}
    assert "not signed with ES384 or RS384" in refused(ehr, unsigned({"alg": "none", "kid": ehr_key.kid}, claims))
    assert "not signed with ES384 or RS384" in refused(ehr, unsigned({"alg": "ES256", "kid": ehr_key.kid}, claims))


def test_hs384_keyed_with_the_public_key_text_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    """The classic key-confusion attack: the public key, known to all, used as an HMAC secret."""
    now = int(time.time())
    claims = {"iss": EHR, "aud": ENDPOINT, "iat": now, "exp": now + 300, "jti": "x"}
    forged = unsigned({"alg": "HS384", "typ": "JWT", "kid": ehr_key.kid}, claims, sign=ehr_key.public_pem())
    assert "not signed with ES384 or RS384" in refused(ehr, forged)


def test_a_token_signed_by_another_key_with_the_trusted_kid_is_refused(ehr: Verifier, ehr_key: SigningKey) -> None:
    impostor = SigningKey.new("ES384", kid=ehr_key.kid)
    assert "bad signature" in refused(ehr, impostor.token())


def test_an_unknown_kid_is_refused(ehr: Verifier) -> None:
    stranger = SigningKey.new("ES384", kid="not-in-the-set")
    assert "no key with that kid" in refused(ehr, stranger.token())


def test_an_rsa_key_cannot_verify_an_es384_token(tmp_path: Path) -> None:
    rsa_key = SigningKey.new("RS384", kid="k1")
    ec_key = SigningKey.new("ES384", kid="k1")
    v = verifier(tmp_path, IssuerPolicy(EHR, jwks_file=jwks_file(tmp_path / "jwks.json", rsa_key)))
    assert "does not fit the token's algorithm" in refused(v, ec_key.token())


def test_a_jwk_set_published_with_its_private_key_still_verifies(tmp_path: Path) -> None:
    """Some test clients publish the whole key pair; only the public half is used to verify."""
    key = SigningKey.new("ES384")
    pair = {**key.jwk(), "d": ECAlgorithm.to_jwk(key.private, as_dict=True)["d"]}
    (tmp_path / "pair.json").write_text(json.dumps({"keys": [pair]}))
    v = verifier(tmp_path, IssuerPolicy(EHR, jwks_file=tmp_path / "pair.json"))
    assert v.verify(f"Bearer {key.token()}", ENDPOINT).iss == EHR
    assert "bad signature" in refused(v, SigningKey.new("ES384", kid=key.kid).token())


def test_keys_rotated_in_the_jwks_file_are_picked_up_without_a_restart(tmp_path: Path, ehr_key: SigningKey) -> None:
    path = jwks_file(tmp_path / "jwks.json", ehr_key)
    v = verifier(tmp_path, IssuerPolicy(EHR, jwks_file=path))
    v.verify(f"Bearer {ehr_key.token()}", ENDPOINT)
    new_key = SigningKey.new("ES384")
    jwks_file(path, new_key)
    os.utime(
        path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9)
    )  # a later mtime, whatever the file system's resolution
    assert v.verify(f"Bearer {new_key.token()}", ENDPOINT).iss == EHR
    assert "no key with that kid" in refused(v, ehr_key.token())


# --- keys from jku --------------------------------------------------------------------------------------------


def test_a_jku_not_on_the_allowlist_is_never_fetched(tmp_path: Path, key_server: KeyServer) -> None:
    key = SigningKey.new("ES384")
    key_server.keys = [key.jwk()]
    v = verifier(tmp_path, IssuerPolicy(EHR, jku_allowlist=(f"{key_server.url}/ehr/jwks.json",)))
    for jku in (
        f"{key_server.url}/attacker/jwks.json",
        f"{key_server.url}/ehr/jwks.json?x=1",
        "http://127.0.0.1:1/jwks",
    ):
        assert "not on its allowlist (not fetched)" in refused(v, key.token(headers={"jku": jku}))
    assert key_server.requests == []


def test_an_unlisted_jku_is_ignored_when_the_jwks_file_has_the_key(tmp_path: Path, key_server: KeyServer) -> None:
    key = SigningKey.new("ES384")
    v = verifier(tmp_path, IssuerPolicy(EHR, jwks_file=jwks_file(tmp_path / "jwks.json", key)))
    assert v.verify(f"Bearer {key.token(headers={'jku': key_server.url + '/x'})}", ENDPOINT).iss == EHR
    assert key_server.requests == []


def test_an_allowlisted_jku_is_fetched_once_and_cached(tmp_path: Path, key_server: KeyServer) -> None:
    key = SigningKey.new("ES384")
    key_server.keys = [key.jwk()]
    jku = f"{key_server.url}/ehr/jwks.json"
    now = [time.time()]
    v = verifier(tmp_path, IssuerPolicy(EHR, jku_allowlist=(jku,)), clock=lambda: now[0])
    for _ in range(3):
        assert v.verify(f"Bearer {key.token(headers={'jku': jku})}", ENDPOINT).iss == EHR
    assert key_server.requests == ["/ehr/jwks.json"]
    now[0] += 3601  # after jwks_cache_s the set is fetched again
    token = key.token(headers={"jku": jku}, iat=int(now[0]), exp=int(now[0]) + 60)
    assert v.verify(f"Bearer {token}", ENDPOINT).iss == EHR
    assert len(key_server.requests) == 2


def test_an_unknown_kid_fetches_the_jku_again_once_not_on_every_call(tmp_path: Path, key_server: KeyServer) -> None:
    old_key, new_key = SigningKey.new("ES384"), SigningKey.new("ES384")
    key_server.keys = [old_key.jwk()]
    jku = f"{key_server.url}/keys/"
    now = [time.time()]
    v = verifier(tmp_path, IssuerPolicy(EHR, jku_allowlist=(f"{key_server.url}/keys/",)), clock=lambda: now[0])
    v.verify(f"Bearer {old_key.token(headers={'jku': jku})}", ENDPOINT)
    key_server.keys = [old_key.jwk(), new_key.jwk()]  # the EHR rotates its key
    # right after a fetch, made-up kids do not make the service hammer the EHR
    assert "no key with that kid" in refused(v, new_key.token(headers={"jku": jku}))
    assert len(key_server.requests) == 1
    now[0] += 31
    token = new_key.token(headers={"jku": jku}, iat=int(now[0]), exp=int(now[0]) + 60)
    assert v.verify(f"Bearer {token}", ENDPOINT).iss == EHR
    assert len(key_server.requests) == 2


def test_a_jku_that_cannot_be_fetched_is_a_refusal_retried_after_30_s(tmp_path: Path, key_server: KeyServer) -> None:
    key = SigningKey.new("ES384")
    jku = f"{key_server.url}/jwks.json"
    now = [time.time()]
    v = verifier(tmp_path, IssuerPolicy(EHR, jku_allowlist=(jku,)), clock=lambda: now[0])
    key_server.redirect_to = "/moved"  # the EHR's key endpoint misbehaves
    assert "the jku answered HTTP 302" in refused(v, key.token(headers={"jku": jku}))
    assert "retried after 30 s" in refused(v, key.token(headers={"jku": jku}))
    assert key_server.requests == ["/jwks.json"]
    key_server.redirect_to, key_server.keys = None, [key.jwk()]  # back to normal
    now[0] += 31
    token = key.token(headers={"jku": jku}, iat=int(now[0]), exp=int(now[0]) + 60)
    assert v.verify(f"Bearer {token}", ENDPOINT).iss == EHR


def test_a_stale_key_set_is_used_while_the_jku_is_down(tmp_path: Path, key_server: KeyServer) -> None:
    key = SigningKey.new("ES384")
    key_server.keys = [key.jwk()]
    jku = f"{key_server.url}/jwks.json"
    now = [time.time()]
    v = verifier(tmp_path, IssuerPolicy(EHR, jku_allowlist=(jku,)), clock=lambda: now[0])
    v.verify(f"Bearer {key.token(headers={'jku': jku})}", ENDPOINT)
    key_server.redirect_to = "/moved"
    now[0] += 3601
    token = key.token(headers={"jku": jku}, iat=int(now[0]), exp=int(now[0]) + 60)
    assert v.verify(f"Bearer {token}", ENDPOINT).iss == EHR
    assert key_server.requests == ["/jwks.json", "/jwks.json"]


def test_an_unreachable_jku_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    key = SigningKey.new("ES384")
    jku = "http://127.0.0.1:9/jwks.json"  # discard port: nothing listens
    v = verifier(tmp_path, IssuerPolicy(EHR, jku_allowlist=(jku,)))
    assert "could not be fetched: ConnectionError" in refused(v, key.token(headers={"jku": jku}))


def test_a_slow_jku_is_given_up_after_the_timeout(tmp_path: Path, key_server: KeyServer) -> None:
    key = SigningKey.new("ES384")
    key_server.keys, key_server.delay_s = [key.jwk()], 3
    jku = f"{key_server.url}/jwks.json"
    config = AuthConfig((IssuerPolicy(EHR, jku_allowlist=(jku,)),), tmp_path / "replay.sqlite", jku_timeout_s=0.2)
    assert "could not be fetched: ReadTimeout" in refused(Verifier(config), key.token(headers={"jku": jku}))


def test_a_jku_redirect_is_not_followed(tmp_path: Path, key_server: KeyServer) -> None:
    key = SigningKey.new("ES384")
    key_server.keys, key_server.redirect_to = [key.jwk()], "/elsewhere.json"
    jku = f"{key_server.url}/jwks.json"
    v = verifier(tmp_path, IssuerPolicy(EHR, jku_allowlist=(jku,)))
    assert "the jku answered HTTP 302" in refused(v, key.token(headers={"jku": jku}))
    assert key_server.requests == ["/jwks.json"]


def test_jku_allowlist_prefixes_stay_on_their_origin_and_path() -> None:
    policy = IssuerPolicy(EHR, jku_allowlist=("https://ehr.example.org/keys/", "https://ehr.example.org/jwks.json"))
    assert jku_allowed(policy, "https://ehr.example.org/jwks.json")
    assert jku_allowed(policy, "https://ehr.example.org/keys/2024.json")
    assert jku_allowed(policy, "https://EHR.example.org:443/keys/a")
    for jku in (
        "https://ehr.example.org.evil.com/keys/a",
        "https://ehr.example.org@evil.com/keys/a",
        "http://ehr.example.org/keys/a",
        "https://ehr.example.org:8443/keys/a",
        "https://ehr.example.org/keys/../uploads/a",
        "https://ehr.example.org/keys/%2e%2e/uploads/a",
        "https://ehr.example.org/keysmith/a",
        "https://ehr.example.org/jwks.json/x",
    ):
        assert not jku_allowed(policy, jku), jku


# --- FHIR servers ---------------------------------------------------------------------------------------------


def caller(*servers: str) -> Caller:
    return Caller(EHR, None, "j", IssuerPolicy(EHR, fhir_servers=servers))


def test_fhir_server_must_be_on_the_issuers_list() -> None:
    c = caller("https://ehr.example.org/fhir/r4", "http://127.0.0.1:8080/fhir/")
    assert fhir_server_allowed(c, "https://ehr.example.org/fhir/r4")
    assert fhir_server_allowed(c, "https://ehr.example.org/fhir/r4/")
    assert fhir_server_allowed(c, "HTTPS://EHR.EXAMPLE.ORG:443/fhir/r4")
    assert fhir_server_allowed(c, "http://127.0.0.1:8080/fhir")
    for url in (
        "https://ehr.example.org.evil.com/fhir/r4",
        "https://evil.com/https://ehr.example.org/fhir/r4",
        "https://ehr.example.org@evil.com/fhir/r4",
        "https://user:pw@ehr.example.org/fhir/r4",
        "http://ehr.example.org/fhir/r4",
        "https://ehr.example.org:8443/fhir/r4",
        "https://ehr.example.org/fhir/r4x",
        "https://ehr.example.org/fhir/r4/../../other",
        "https://ehr.example.org/fhir",
        "https://ehr.example.org/FHIR/r4",
        "https://ehr.example.org/fhir/r4?_format=json",
        "https://ehr.example.org/fhir/r4#x",
        "http://127.0.0.1:80/fhir",
        "ftp://ehr.example.org/fhir/r4",
        "https://ehr.example.org:notaport/fhir/r4",
        "",
    ):
        assert not fhir_server_allowed(c, url), url


def test_an_issuer_with_no_fhir_servers_may_send_us_nowhere() -> None:
    assert not fhir_server_allowed(caller(), "https://ehr.example.org/fhir")


# --- logs -----------------------------------------------------------------------------------------------------


def test_refusals_are_logged_without_any_token_content(
    tmp_path: Path, ehr: Verifier, ehr_key: SigningKey, key_server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    now = int(time.time())
    secret_values = {"ehr-client-7", ENDPOINT + "/other", "jti-7f3c9a", "tenant-5b1e"}
    good = ehr_key.token(jti="jti-7f3c9a", tenant="tenant-5b1e")
    tokens = [
        good,
        good,  # replayed
        ehr_key.token(aud=ENDPOINT + "/other", jti="jti-7f3c9a-2"),
        ehr_key.token(exp=now - 3600, iat=now - 4000, jti="jti-7f3c9a-3"),
        SigningKey.new("ES384").token(headers={"jku": key_server.url + "/jwks-7f3c9a"}, jti="jti-7f3c9a-4"),
        SigningKey.new("ES384", kid="kid-7f3c9a").token(jti="jti-7f3c9a-5"),
        unsigned({"alg": "none", "kid": "kid-7f3c9a"}, {"iss": EHR, "jti": "jti-7f3c9a-6"}),
        "head-7f3c9a.body-7f3c9a.sig-7f3c9a",
    ]
    for token in tokens:
        try:
            ehr.verify(f"Bearer {token}", ENDPOINT)
        except Unauthorized as exc:
            # the exception text follows the same rule as the log
            assert exc.__cause__ is None  # a traceback of it carries no decoder message either
            assert not any(part in str(exc) for part in [*token.split("."), *secret_values, "7f3c9a"] if part)
    assert len(caplog.records) == len(tokens) - 1  # all refused but the first
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "refused" in logged
    for token in tokens:
        for part in filter(None, token.split(".")):
            assert part not in logged
    assert "7f3c9a" not in logged
    assert not any(value in logged for value in secret_values)


# --- configuration --------------------------------------------------------------------------------------------


def test_auth_section_is_read_with_paths_relative_to_the_config_file(tmp_path: Path, ehr_key: SigningKey) -> None:
    jwks_file(tmp_path / "ehr.json", ehr_key)
    config = load_auth_config(
        {
            "issuers": [
                {
                    "iss": EHR,
                    "jwks_file": "ehr.json",
                    "jku_allowlist": ["https://ehr.example.org/jwks.json"],
                    "fhir_servers": ["https://ehr.example.org/fhir"],
                }
            ],
            "leeway_s": 30,
        },
        tmp_path,
    )
    assert config.issuers[0] == IssuerPolicy(
        EHR, tmp_path / "ehr.json", ("https://ehr.example.org/jwks.json",), ("https://ehr.example.org/fhir",)
    )
    assert (config.leeway_s, config.max_age_s, config.jwks_cache_s) == (30, 300, 3600)
    assert config.replay_db == tmp_path / "cds-replay.sqlite"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({}, "auth.issuers: list at least one"),
        ({"issuers": [{"iss": EHR}]}, "auth.issuers[0]: give jwks_file or jku_allowlist"),
        ({"issuers": [{"iss": EHR, "jwks_file": "missing.json"}]}, "auth.issuers[0].jwks_file: cannot read"),
        ({"issuers": [{"jku_allowlist": ["https://a/"]}]}, "auth.issuers[0].iss"),
        ({"issuers": [{"iss": EHR, "jku_allowlist": ["http://ehr.example.org/jwks"]}]}, "is not https"),
        ({"issuers": [{"iss": EHR, "jku_allowlist": ["x"], "fhir_servers": []}]}, "not a plain http(s) URL"),
        ({"issuers": [{"iss": EHR, "jku": ["https://a/"]}]}, "auth.issuers[0]: unknown key(s) ['jku']"),
        ({"issuers": [{"iss": EHR, "jku_allowlist": ["https://a/"]}] * 2}, "listed twice"),
        ({"issuers": [{"iss": EHR, "jku_allowlist": ["https://a/"]}], "leway_s": 5}, "unknown key(s) ['leway_s']"),
        ({"issuers": [{"iss": EHR, "jku_allowlist": ["https://a/"]}], "leeway_s": -1}, "auth.leeway_s: must be"),
    ],
)
def test_config_mistakes_name_the_key(tmp_path: Path, section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_auth_config(section, tmp_path)
    assert message in str(caught.value)
