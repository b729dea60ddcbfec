"""The card's link to the timeline page: short-lived, signed, and carrying no patient data."""

from __future__ import annotations

import base64
import logging
import sqlite3
import stat
from pathlib import Path

import pytest

from fhir_ns.errors import ConfigError
from fhir_ns.serve.links import PRUNE_EVERY_S, LinkSigner, load_link_signer

SECRET = b"k" * 32
PATIENT = "nephrotic-child-0042"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(tmp_path: Path, clock: Clock) -> LinkSigner:
    return LinkSigner(SECRET, ttl_s=1, db_path=tmp_path / "links.sqlite", clock=clock)


def test_a_link_opens_the_patients_page_with_its_parameters(signer: LinkSigner) -> None:
    token = signer.issue(PATIENT, {"ruleset": "ipna-2023", "as_of": "2025-03-01"})
    assert signer.resolve(token) == {"patient_id": PATIENT, "payload": {"ruleset": "ipna-2023", "as_of": "2025-03-01"}}
    # a page reload within its life opens it again
    assert signer.resolve(token) == signer.resolve(token)


def test_each_link_is_different_even_for_the_same_patient(signer: LinkSigner) -> None:
    first, second = signer.issue(PATIENT, {}), signer.issue(PATIENT, {})
    assert first != second
    assert signer.resolve(first) == signer.resolve(second) == {"patient_id": PATIENT, "payload": {}}


def test_the_token_carries_no_patient_data(signer: LinkSigner) -> None:
    token = signer.issue(PATIENT, {"ruleset": "ipna-2023"})
    assert token.replace("-", "").replace("_", "").replace(".", "").isalnum()  # URL-safe as it stands
    readable = token
    for part in token.split("."):
        readable += base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("latin-1")
    assert PATIENT not in readable and "0042" not in readable and "ipna" not in readable


def test_a_link_expires(signer: LinkSigner, clock: Clock) -> None:
    token = signer.issue(PATIENT, {})
    clock.now += 0.9
    assert signer.resolve(token) is not None
    clock.now += 0.2
    assert signer.resolve(token) is None


def test_expired_links_are_removed_from_the_database_at_the_next_sweep(
    tmp_path: Path, signer: LinkSigner, clock: Clock
) -> None:
    signer.issue("old-patient", {})
    clock.now += 5
    signer.issue("within-a-sweep", {})  # the old row waits for the next sweep (it is refused already)
    clock.now += PRUNE_EVERY_S
    signer.issue(PATIENT, {})

    with sqlite3.connect(tmp_path / "links.sqlite") as db:
        assert [row[0] for row in db.execute("SELECT patient_id FROM timeline_link")] == [PATIENT]


def test_a_tampered_or_made_up_token_opens_nothing(signer: LinkSigner) -> None:
    token = signer.issue(PATIENT, {})
    link_id, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (
        f"{link_id}.{flipped}",
        f"{link_id}x.{signature}",
        link_id,
        f"{link_id}.",
        "",
        ".",
        f".{signature}",
        "\ud800.x",
    ):
        assert signer.resolve(bad) is None, bad


def test_a_token_signed_with_another_secret_opens_nothing(tmp_path: Path, signer: LinkSigner, clock: Clock) -> None:
    token = signer.issue(PATIENT, {})
    other = LinkSigner(b"z" * 32, ttl_s=1, db_path=tmp_path / "links.sqlite", clock=clock)
    assert other.resolve(token) is None


def test_a_copy_of_the_database_alone_cannot_open_a_page(tmp_path: Path, signer: LinkSigner) -> None:
    token = signer.issue(PATIENT, {})
    with sqlite3.connect(tmp_path / "links.sqlite") as db:
        stored = db.execute("SELECT id_hash FROM timeline_link").fetchone()[0]
    assert token.split(".")[0] not in stored


def test_the_link_database_is_readable_by_the_service_only(tmp_path: Path, signer: LinkSigner) -> None:
    signer.issue(PATIENT, {})
    files = sorted(tmp_path.glob("links.sqlite*"))
    assert [p.name for p in files] == ["links.sqlite", "links.sqlite-shm", "links.sqlite-wal"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}


def test_a_secret_is_made_once_in_the_state_directory(tmp_path: Path, clock: Clock) -> None:
    state = tmp_path / "state"
    first = load_link_signer(None, tmp_path, state)
    secret = state / "link-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    token = first.issue(PATIENT, {})
    # a restart (or a second worker) uses the same secret: the link still opens
    second = load_link_signer({}, tmp_path, state)
    assert second.resolve(token) == {"patient_id": PATIENT, "payload": {}}
    assert sorted(p.name for p in state.iterdir() if "secret" in p.name) == ["link-secret"]


def test_a_configured_secret_file_is_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "secret.txt").write_text("s" * 40 + "\n")
    (tmp_path / "secret.txt").chmod(0o644)
    signer = load_link_signer({"secret_file": "secret.txt", "ttl_s": 60}, tmp_path, tmp_path / "state")
    assert signer.ttl_s == 60
    assert not (tmp_path / "state" / "link-secret").exists()
    same = LinkSigner(b"s" * 40, 60, tmp_path / "state" / "cds-links.sqlite")
    assert same.resolve(signer.issue(PATIENT, {})) is not None
    assert any("can be read by other users" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"secret_file": "missing"}, "links.secret_file: cannot read missing"),
        ({"secret_file": "short"}, "links.secret_file: short holds 5 bytes; at least 32"),
        ({"ttl_s": 0}, "links.ttl_s: must be whole seconds"),
        ({"ttl": 60}, "links: unknown key(s) ['ttl']"),
    ],
)
def test_link_config_mistakes_name_the_key(tmp_path: Path, section: dict[str, object], message: str) -> None:
    (tmp_path / "short").write_text("abcde")
    with pytest.raises(ConfigError) as caught:
        load_link_signer(section, tmp_path, tmp_path / "state")
    assert message in str(caught.value)
