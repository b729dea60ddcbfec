"""`fhir-ns sync` when the server cannot be reached, on real sockets: a closed port, a host name that never
resolves (RFC 6761 `.invalid`), a local HTTPS server with a self-signed certificate. One line each, saying
what happened and which option to check; fast (no minutes of retries); retry lines only with -v."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fhir_ns.cli import cli
from fhir_ns.errors import CAPABILITY, CONFIG, SERVER
from tests.fhir_server import free_port


def sync(base_url: str, tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["sync", "--base-url", base_url, "--state", str(tmp_path / "state.sqlite"), *args])


def one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output
    return lines[0]


def test_a_refused_connection_is_one_line_naming_base_url_and_fast(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens there
    started = time.monotonic()
    result = sync(base, tmp_path)
    seconds = time.monotonic() - started
    assert result.exit_code == SERVER
    line = one_line(result)
    assert f"cannot connect to {base}: connection refused" in line and "check --base-url" in line
    assert "retrying" not in result.stderr and "ConnectionError" not in line
    assert seconds < 5, f"{seconds:.1f} s: a refused connection must not be retried for long"


def test_retry_lines_are_shown_only_with_verbose(tmp_path: Path) -> None:
    """As a real process: the retry lines are log records, shown on stderr with -v."""
    base = f"http://127.0.0.1:{free_port()}/fhir"
    command = [sys.executable, "-m", "fhir_ns", "sync", "--base-url", base, "--state", str(tmp_path / "s.sqlite")]
    quiet = subprocess.run(command, capture_output=True, text=True)
    verbose = subprocess.run([*command, "-v"], capture_output=True, text=True)
    assert quiet.returncode == verbose.returncode == SERVER
    assert len(quiet.stderr.strip().splitlines()) == 1 and "retrying" not in quiet.stderr
    retries = [line for line in verbose.stderr.splitlines() if "retrying" in line]
    assert len(retries) == 1 and "after connection refused on GET" in retries[0], verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


def test_a_host_name_that_does_not_resolve_is_not_retried(tmp_path: Path) -> None:
    base = "https://fhir.example.invalid/R4"
    result = sync(base, tmp_path, "-v")
    assert result.exit_code == SERVER
    line = one_line(result)  # not even one retry line with -v
    assert "the host name fhir.example.invalid does not resolve" in line and "check --base-url" in line


class CapabilityOnly(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a CapabilityStatement that offers nothing (enough to show TLS was passed)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = orjson.dumps({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": []})
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTPS server with a self-signed certificate for 127.0.0.1; yields its port and the certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fhir-ns test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CapabilityOnly)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield str(server.server_address[1]), cert_file
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_names_ca_bundle_and_the_bundle_fixes_it(
    https_server: tuple[str, Path], tmp_path: Path
) -> None:
    port, cert = https_server
    base = f"https://127.0.0.1:{port}/fhir"
    result = sync(base, tmp_path, "-v")
    assert result.exit_code == SERVER
    line = one_line(result)  # not retried
    assert f"TLS certificate verification failed for {base}" in line and "self-signed" in line
    assert "check --ca-bundle" in line

    trusted = sync(base, tmp_path, "--ca-bundle", str(cert))
    assert trusted.exit_code == CAPABILITY, trusted.output  # TLS passed: the server's (empty) capabilities refused


def test_a_certificate_for_another_host_names_base_url(https_server: tuple[str, Path], tmp_path: Path) -> None:
    port, cert = https_server
    result = sync(f"https://localhost:{port}/fhir", tmp_path, "--ca-bundle", str(cert))
    assert result.exit_code == SERVER
    line = one_line(result)
    assert "is not for that host" in line and "check --base-url" in line


def test_plain_http_spoken_to_an_https_port_is_a_handshake_error(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CapabilityOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = sync(f"https://127.0.0.1:{server.server_address[1]}/fhir", tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == SERVER
    assert "TLS handshake" in one_line(result) and "http or https?" in result.stderr


def test_a_ca_bundle_without_a_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    result = sync(f"https://127.0.0.1:{free_port()}/fhir", tmp_path, "--ca-bundle", str(bundle))
    assert result.exit_code == CONFIG and f"--ca-bundle {bundle}" in one_line(result)


def test_smart_backend_discovery_on_a_wrong_url_is_unreachable_not_an_auth_failure(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    base = f"http://127.0.0.1:{free_port()}/fhir"
    smart = ["--auth", "smart-backend", "--smart-client-id", "fhir-ns", "--smart-key", str(key)]
    result = sync(base, tmp_path, *smart, "--smart-kid", "k1", "--smart-alg", "ES384")
    assert result.exit_code == SERVER
    line = one_line(result)
    assert f"SMART configuration: cannot connect to {base}/.well-known/smart-configuration" in line
    assert "connection refused" in line and "check --base-url" in line


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999/fhir", "http://exa mple.org/fhir", "http://:80/fhir", "http://[::1/fhir"]
)
def test_a_base_url_that_cannot_be_used_is_a_usage_error(url: str, tmp_path: Path) -> None:
    result = sync(url, tmp_path)
    assert result.exit_code == 2 and "is not a usable base URL" in result.output
    assert not (tmp_path / "state.sqlite").exists()


def test_a_cohort_file_that_is_not_text_is_a_configuration_error(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort.txt"
    cohort.write_bytes(b"p\xe91\n")
    result = sync(f"http://127.0.0.1:{free_port()}/fhir", tmp_path, "--cohort", str(cohort))
    assert result.exit_code == CONFIG and f"cannot read the cohort file {cohort}" in one_line(result)
