"""What a failed purge or dead-letter send means: an outage to wait out, data Redis refuses, or
a defect.

The loop treats the three differently (`invalidator.loop`):
- an outage (connection lost, timeout, loading, failover, cluster down, out of memory) pauses
  the region and retries with backoff until Redis is back;
- a refusal of the data (WRONGTYPE: a key of the namespace holds another type) is isolated to
  the namespaces Redis refuses, whose events go to the dead-letter topic, and the rest proceeds;
- anything else (a missing permission, a wrong password, a script error, a bug) is a defect:
  logged with its traceback, counted apart, retried slowly, and never mistaken for an outage.

A failed dead-letter send is an outage (the brokers unreachable, a timeout, too few in-sync
replicas) or a defect (no permission to write the topic, a topic that does not exist or whose
name is not valid, failed authentication, a bug); Kafka refuses no data by what it holds.
"""

from __future__ import annotations

import enum

from aiokafka import errors as kafka_errors
from redis import exceptions as redis_errors

_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # lost, refused, reset; BusyLoadingError while loading
    redis_errors.TimeoutError,
    redis_errors.ClusterError,  # CLUSTERDOWN, MASTERDOWN
    redis_errors.RedisClusterException,  # no node reachable, slot not covered
    redis_errors.TryAgainError,  # a multi-key operation during a slot migration
    redis_errors.ReadOnlyError,  # a replica promoted, or demoted, under our feet
    redis_errors.OutOfMemoryError,  # maxmemory reached: eviction or the operator frees room
    redis_errors.AskError,  # MOVED or ASK the client did not follow (a reshard)
    TimeoutError,
    OSError,
)
_OUTAGE_REPLIES = ("LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF")
"""Error replies of a Redis that is not serving for now, whatever exception class they got."""
_DATA_REPLIES = ("WRONGTYPE",)
"""Error replies about what a key holds: the namespace is refused, not the whole purge."""


class FailureKind(enum.Enum):
    """How the loop responds to a failed purge."""

    OUTAGE = "outage"
    REFUSED = "refused"
    DEFECT = "defect"


def failure_kind(error: BaseException) -> FailureKind:
    """Classify an exception raised by a purge on a Redis target."""
    if isinstance(error, (redis_errors.AuthenticationError, redis_errors.AuthorizationError)):
        return FailureKind.DEFECT  # the credentials are wrong: waiting will not fix them
    if isinstance(error, _OUTAGE_TYPES):
        return FailureKind.OUTAGE
    if isinstance(error, redis_errors.NoPermissionError):
        return FailureKind.DEFECT  # an ACL lacks a command or key pattern
    if isinstance(error, redis_errors.ResponseError):
        reply = _reply(error)
        if reply.startswith(_OUTAGE_REPLIES):
            return FailureKind.OUTAGE
        if reply.startswith(_DATA_REPLIES):
            return FailureKind.REFUSED
    return FailureKind.DEFECT


_KAFKA_DEFECT_TYPES: tuple[type[BaseException], ...] = (
    kafka_errors.TopicAuthorizationFailedError,  # the ACL lacks WRITE on the dead-letter topic
    kafka_errors.ClusterAuthorizationFailedError,  # ... or IDEMPOTENT_WRITE on the cluster
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.AuthenticationFailedError,  # wrong credentials
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
    # No such topic: aiokafka raises it once the topic's metadata has not come within the
    # request timeout. The dead-letter producer reads the metadata at its first send, so a
    # broker outage only looks like this when no dead letter was sent before it.
    kafka_errors.UnknownTopicOrPartitionError,
    kafka_errors.InvalidTopicError,  # a name Kafka does not accept
)


def dead_letter_failure_kind(error: BaseException) -> FailureKind:
    """Classify an exception raised by sending records to the dead-letter topic: a defect
    (authorization, authentication, a wrong or unknown topic, a bug) or an outage (anything
    else Kafka or the network raised)."""
    if isinstance(error, _KAFKA_DEFECT_TYPES):
        return FailureKind.DEFECT
    if isinstance(error, (kafka_errors.KafkaError, TimeoutError, OSError)):
        return FailureKind.OUTAGE
    return FailureKind.DEFECT


def _reply(error: redis_errors.ResponseError) -> str:
    """The server's error reply: redis-py prefixes one raised in a pipeline with `Command # N
    (...) of pipeline caused error: ` and may quote it as a tuple."""
    message = str(error)
    _, marker, reply = message.partition("of pipeline caused error: ")
    return reply.lstrip("('\"") if marker else message
