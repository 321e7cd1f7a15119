"""Start-up checks that Kafka's bootstrap servers and the Redis targets accept the connection's
TLS and login.

Each check connects once with the project's own client options (`KafkaConnection`,
`RedisTarget`) and logs in. A refusal that retrying cannot cure raises `ConnectionSecurityError`
naming the endpoint and the cause: an unknown CA, an expired certificate, a certificate for
another host name, plaintext against a TLS port or the reverse, a wrong password. A server that
cannot be reached at all (down, a closed port, a timeout) passes the check: that is an outage,
reported by the caller's own path. A permission missing from an ACL passes too: the login
worked, and a purge that lacks a permission is a defect the invalidator retries.

The clients keep the cause of a failed handshake only in their logs (aiokafka) or in the error's
`__cause__` (redis-py); an ambiguous one (a connection closed or timed out during the first
exchange) is settled by a second probe: does the port complete a TLS handshake, does it answer
in plaintext? The probes send no credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from contracts.connections import KafkaConnection, RedisTarget
from contracts.errors import ConnectionSecurityError
from contracts.redis_clients import redis_node_client

PlaintextProbe = Callable[[str, int, float], Awaitable[bool]]
"""Whether (host, port, timeout_s) answers the service's own protocol in plaintext."""

KAFKA_CHECK_TIMEOUT_S = 10.0
"""How long the check of one Kafka server waits for its handshake and login."""

_UNKNOWN_CA_CODES = {18, 19, 20, 21, 2, 27, 28}
"""OpenSSL verify codes of a chain that does not end at a trusted CA (self-signed leaf or chain,
issuer unknown, untrusted, rejected)."""
_EXPIRED_CODES = {9: "is not valid yet", 10: "has expired"}
_HOST_MISMATCH_CODES = {62, 64}
"""X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH."""
_TLS_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate: set "
    "tls.cert_file and tls.key_file",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused the client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the CA of the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server says the client certificate has expired",
    "WRONG_VERSION_NUMBER": "the server does not speak TLS on this port (a plaintext port?)",
}
_KAFKA_LOGIN_ERRORS = (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError)


async def check_kafka(kafka: KafkaConnection, *, timeout_s: float = KAFKA_CHECK_TIMEOUT_S) -> None:
    """Connect to every bootstrap server of `kafka` with its TLS and SASL options and log in;
    raise ConnectionSecurityError for the first that refuses. Servers that cannot be reached
    are skipped (an outage, not a refusal).

    kafka: the cluster's connection settings.
    timeout_s: how long each server's handshake and login may take.
    """
    options = kafka.client_kwargs()
    del options["bootstrap_servers"]
    uses_tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    for server in kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        endpoint = f"Kafka {host}:{port}"
        try:
            connection = await create_conn(
                host, int(port), request_timeout_ms=int(timeout_s * 1000), **options
            )
        except UnsupportedSaslMechanismError:
            raise ConnectionSecurityError(
                endpoint,
                f"the listener does not offer SASL {kafka.sasl_mechanism}: set sasl_mechanism to"
                " one it offers, or use the listener that offers it",
            ) from None
        except _KAFKA_LOGIN_ERRORS as error:
            raise ConnectionSecurityError(
                endpoint,
                f"SASL {kafka.sasl_mechanism} login refused for user {kafka.sasl_username!r}"
                f" ({type(error).__name__}: wrong username or password, or no such user)",
            ) from None
        except (TimeoutError, OSError, KafkaError) as error:
            cause = certificate_refusal(error, host=host)
            if cause is None:
                cause = await _ambiguous_refusal(
                    error,
                    host,
                    int(port),
                    uses_tls=uses_tls,
                    speaks_plaintext=_speaks_plain_kafka,
                    tls_hint="set security_protocol to SSL or SASL_SSL, with tls",
                    timeout_s=timeout_s,
                )
            if cause is not None:
                raise ConnectionSecurityError(endpoint, cause) from None
        else:
            connection.close()


async def check_redis(target: RedisTarget) -> None:
    """Connect to `target`'s server (a Cluster's seed node) with its TLS options, log in and
    PING; raise ConnectionSecurityError if it refuses. A server that cannot be reached, or a
    user without PING in its ACL, passes.

    target: the Redis deployment's settings.
    """
    address = urlsplit(target.url)
    host, port = address.hostname or "127.0.0.1", address.port or 6379
    endpoint = f"Redis target {target.name} ({host}:{port})"
    client = redis_node_client(target, host, port)
    # One attempt: redis-py's default retries (with backoff) would only delay the verdict.
    client.set_retry(Retry(NoBackoff(), 0))
    try:
        await client.ping()
    except AuthenticationError:
        user = repr(target.username) if target.username else "default"
        raise ConnectionSecurityError(
            endpoint,
            f"login refused for user {user} (wrong username or password, no such user, or the"
            " user is disabled)",
        ) from None
    except ResponseError:
        return  # logged in; a missing permission is the invalidator's defect path
    except (RedisError, OSError) as error:
        cause = certificate_refusal(error, host=host)
        if cause is None:
            cause = await _ambiguous_refusal(
                error,
                host,
                port,
                uses_tls=address.scheme == "rediss",
                speaks_plaintext=_speaks_plain_redis,
                tls_hint="use a rediss:// URL, with tls",
                timeout_s=target.socket_timeout_s,
            )
        if cause is not None:
            raise ConnectionSecurityError(endpoint, cause) from None
    finally:
        await client.aclose()


def certificate_refusal(error: BaseException, *, host: str) -> str | None:
    """What a failed TLS handshake in `error` (or its causes) refused, in words; None when the
    failure is not a TLS one or says too little (see `_ambiguous_refusal`).

    host: the name the client connected to (for a host name mismatch).
    """
    failure = _tls_failure(error)
    if isinstance(failure, ssl.SSLCertVerificationError):
        code, message = failure.verify_code, failure.verify_message
        if code in _UNKNOWN_CA_CODES:
            return (
                f"the server's certificate is not signed by a CA the client trusts (unknown CA:"
                f" {message}); set tls.ca_file to the CA that signed it"
            )
        if code in _EXPIRED_CODES:
            return f"the server's certificate {_EXPIRED_CODES[code]}; the server needs a new one"
        if code in _HOST_MISMATCH_CODES:
            return (
                f"the server's certificate is not valid for the host name {host!r} (hostname"
                " mismatch); connect by a name the certificate lists, or reissue it"
            )
        return f"the server's certificate was refused ({message})"
    if isinstance(failure, ssl.SSLError):
        reason = str(failure.reason)
        if reason in _TLS_ALERTS:
            return _TLS_ALERTS[reason]
    return None


def _tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The SSLError among `error` and its causes, if any."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, ssl.SSLEOFError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def _ambiguous_refusal(
    error: BaseException,
    host: str,
    port: int,
    *,
    uses_tls: bool,
    speaks_plaintext: PlaintextProbe,
    tls_hint: str,
    timeout_s: float,
) -> str | None:
    """A connection closed, reset or timed out in its first exchange: plaintext against TLS or
    the reverse, told apart by probing the port; None when the probe says neither (an outage)."""
    if isinstance(error, ConnectionRefusedError) or isinstance(
        error.__cause__, ConnectionRefusedError
    ):
        return None
    if uses_tls:
        if await speaks_plaintext(host, port, timeout_s):
            return (
                "the client connects with TLS but the server speaks plaintext on this port: use"
                " the server's TLS port, or connect without TLS"
            )
        return None
    if await _speaks_tls(host, port, timeout_s):
        return (
            f"the server speaks TLS on this port but the client connects in plaintext: {tls_hint}"
        )
    return None


async def _speaks_tls(host: str, port: int, timeout_s: float) -> bool:
    """Whether host:port completes a TLS handshake (the certificate is not checked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _speaks_plain_redis(host: str, port: int, timeout_s: float) -> bool:
    """Whether host:port answers an inline PING as Redis does in plaintext (`+PONG`, or an
    error such as `-NOAUTH`)."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"PING\r\n")
                reply = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    return reply[:1] in (b"+", b"-")


async def _speaks_plain_kafka(host: str, port: int, timeout_s: float) -> bool:
    """Whether host:port answers Kafka's ApiVersions request in plaintext."""
    try:
        connection = await create_conn(host, port, request_timeout_ms=int(timeout_s * 1000))
    except (TimeoutError, OSError, KafkaError):
        return False
    connection.close()
    return True
