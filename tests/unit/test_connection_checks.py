"""How a failed TLS handshake is named, from the error the client raised (no service: the errors
are made here as the ssl module makes them; tests/integration/test_tls_refusals.py meets them on
real servers)."""

from __future__ import annotations

import ssl

import pytest
from redis.exceptions import ConnectionError

from contracts.connection_checks import certificate_refusal


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def _ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    error.reason = reason
    return error


@pytest.mark.parametrize(
    ("error", "named"),
    [
        pytest.param(
            _verify_error(20, "unable to get local issuer certificate"), "(unknown CA", id="20"
        ),
        pytest.param(_verify_error(19, "self-signed certificate in chain"), "(unknown CA", id="19"),
        pytest.param(_verify_error(18, "self-signed certificate"), "(unknown CA", id="18"),
        pytest.param(_verify_error(10, "certificate has expired"), "has expired", id="10"),
        pytest.param(_verify_error(9, "certificate is not yet valid"), "is not valid yet", id="9"),
        pytest.param(
            _verify_error(62, "Hostname mismatch"), "'db.internal' (hostname mismatch)", id="62"
        ),
        pytest.param(_verify_error(64, "IP address mismatch"), "(hostname mismatch)", id="64"),
        pytest.param(
            _verify_error(23, "certificate revoked"), "was refused (certificate revoked)", id="23"
        ),
        pytest.param(
            _ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"),
            "requires a client certificate",
            id="certificate-required",
        ),
        pytest.param(
            _ssl_error("WRONG_VERSION_NUMBER"), "does not speak TLS on this port", id="plaintext"
        ),
    ],
)
def test_each_tls_failure_is_named(error: ssl.SSLError, named: str) -> None:
    assert named in (certificate_refusal(error, host="db.internal") or "")


def test_the_cause_is_found_under_the_client_error() -> None:
    wrapped = ConnectionError("Error 1 connecting to db.internal:6380.")
    wrapped.__cause__ = _verify_error(10, "certificate has expired")
    assert "has expired" in (certificate_refusal(wrapped, host="db.internal") or "")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), id="eof"),
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="reset"),
        pytest.param(_ssl_error("SOMETHING_ELSE"), id="other-reason"),
    ],
)
def test_a_failure_that_says_too_little_is_left_to_the_probes(error: OSError) -> None:
    assert certificate_refusal(error, host="db.internal") is None
