"""Every error this project raises for a person to fix, under one base: `CacheInvalidationError`.

Bad settings, a catalogue that fails its checks, a value that would break a key, an operator's
malformed argument, a topic missing on the broker, a server that refuses the connection's TLS or
login: each message names the thing and the fix, and the commands (`invalidator`, `outbox`)
print it and exit with status 2. An outage is not among them: it surfaces as the client's own
error (KafkaError, RedisError, OSError) and exits with 3.

Each error keeps the builtin base it is also (ValueError, LookupError), so code that catches
those still does.
"""

from __future__ import annotations


class CacheInvalidationError(Exception):
    """Base of every error raised for a person to fix; the message says what to do."""


class SettingsError(CacheInvalidationError, ValueError):
    """The configuration cannot work; the message names the setting and the fix."""


class ContractError(CacheInvalidationError, ValueError):
    """Base of every error raised by the contracts: the catalogue, namespaces and keys."""


class NamespaceParamError(ContractError):
    """A namespace parameter value would break or widen a Redis key."""

    def __init__(self, *, namespace: str, param: str, value: object, allowed: str) -> None:
        self.namespace = namespace
        self.param = param
        self.value = value
        super().__init__(f"namespace {namespace!r}: {param}={value!r} may only contain {allowed}")


class EntryNameError(ContractError):
    """An entry name inside a namespace would break or widen a Redis key."""

    def __init__(self, *, namespace: str, entry: str, allowed: str) -> None:
        self.namespace = namespace
        self.entry = entry
        super().__init__(f"namespace {namespace!r}: entry {entry!r} may only contain {allowed}")


class CatalogueError(ContractError):
    """The namespace catalogue is inconsistent; the message names the namespace and the fix."""


class OperatorInputError(CacheInvalidationError, ValueError):
    """An operator's argument is malformed; the message names it and the accepted forms."""


class UnknownTopicError(CacheInvalidationError, LookupError):
    """A topic the catalogue names does not exist on the broker."""


class MissingTopicsError(UnknownTopicError):
    """Topics the invalidator needs do not exist; the message names them and how to create them."""

    def __init__(self, missing: list[str], *, bootstrap_servers: str) -> None:
        """missing: the topic names; bootstrap_servers: the broker that was asked."""
        self.missing = missing
        super().__init__(
            f"topic(s) {', '.join(missing)} do not exist on {bootstrap_servers} (topics are not "
            "created automatically). Create them with `invalidator topics create` (it reads "
            "the catalogue; --partitions N, --replication-factor R), or ask the cluster's "
            "owner; locally, list them in deploy/local/topics.txt and run "
            "`deploy/local/stack.sh up`."
        )


class ConnectionSecurityError(CacheInvalidationError):
    """A server was reached but refused the connection's TLS or login (an unknown CA, an
    expired certificate, a host name the certificate does not name, plaintext against TLS or
    the reverse, a wrong password); retrying does not help. The message names the endpoint and
    the cause, never a secret."""

    def __init__(self, endpoint: str, cause: str) -> None:
        """endpoint: e.g. `Kafka 10.0.0.5:9093` or `Redis target eu-main (10.0.0.7:6380)`;
        cause: what was refused and what to fix."""
        self.endpoint = endpoint
        self.cause = cause
        super().__init__(f"{endpoint} refused the connection: {cause}")
