"""Why a connection to a server failed, in one line that says what happened and what to check.

A refused connection, a host name that does not resolve and a TLS failure are not transient: retrying
them for minutes only delays the message, so the client tries a refused connection once more and the
other two not at all. Timeouts and other connection errors (a reset, a dropped connection) are retried.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

HOSTNAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


@dataclass(frozen=True, slots=True)
class ConnectionFailure:
    """`kind`: refused | unknown-host | tls | connect-timeout | timeout | other; `reason`: a few words for
    a retry line; `what`: what happened, naming the address; `advice`: what to check."""

    kind: str
    reason: str
    what: str
    advice: str = ""

    def message(self, attempts: int = 1) -> str:
        """One line for the user: what happened (and after how many attempts), then what to check."""
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return f"{self.what}{tries}" + (f"; {self.advice}" if self.advice else "")

    @property
    def retries(self) -> int:
        """How many more attempts this kind of failure deserves (the client's policy bounds the rest)."""
        if self.kind in ("unknown-host", "tls"):
            return 0
        if self.kind == "refused":
            return 1  # a server restarting refuses for a moment; a wrong address refuses forever
        return 1_000

    @property
    def unreachable(self) -> bool:
        """True when no request to this address can succeed now (not a problem of one request)."""
        return self.kind in ("refused", "unknown-host", "tls", "connect-timeout")


def diagnose(exc: requests.RequestException, where: str, check: str) -> ConnectionFailure:
    """Explain a failed request: `where` is the address to name, `check` the option (or thing) that gave it."""
    causes = _causes(exc)
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if isinstance(tls, ssl.SSLCertVerificationError):
        if tls.verify_code in HOSTNAME_MISMATCH:
            return ConnectionFailure(
                "tls",
                "TLS host name mismatch",
                f"the TLS certificate of {where} is not for that host ({tls.verify_message})",
                f"check {check}",
            )
        return ConnectionFailure(
            "tls",
            "TLS certificate verification failed",
            f"TLS certificate verification failed for {where} ({tls.verify_message})",
            "check --ca-bundle (a file with the CA certificate that signed the server's certificate)",
        )
    if tls is not None:
        return ConnectionFailure(
            "tls",
            "TLS handshake failed",
            f"TLS handshake with {where} failed ({tls.reason or tls})",
            f"check {check} (http or https?) and --ca-bundle",
        )
    unresolved = next((c for c in causes if isinstance(c, socket.gaierror)), None)
    if unresolved is not None:
        host = urlsplit(where).hostname or where
        return ConnectionFailure(
            "unknown-host",
            "host name does not resolve",
            f"cannot connect to {where}: the host name {host} does not resolve ({unresolved.strerror})",
            f"check {check}",
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return ConnectionFailure(
            "refused",
            "connection refused",
            f"cannot connect to {where}: connection refused",
            f"check {check} (is the server running and listening on that port?)",
        )
    if isinstance(exc, requests.ConnectTimeout):
        return ConnectionFailure(
            "connect-timeout",
            "connect timeout",
            f"cannot connect to {where}: no answer to the connection",
            f"check {check} and the network (firewall, proxy)",
        )
    if isinstance(exc, requests.Timeout):
        return ConnectionFailure("timeout", "read timeout", f"{where}: no answer in time", "see --timeout")
    leaf = causes[-1]
    text = leaf.strerror if isinstance(leaf, OSError) and leaf.strerror else (str(leaf) or type(leaf).__name__)
    return ConnectionFailure("other", text, f"the connection to {where} failed ({text})")


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (requests and urllib3 nest the socket error a few levels deep)."""
    out: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in out):
            continue
        out.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return out
