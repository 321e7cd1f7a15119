"""What a failed purge means: an outage to wait out, data Redis refuses, or a defect.

The loop treats the three differently (`invalidator.loop`):
- an outage (connection lost, timeout, loading, failover, cluster down, out of memory) pauses
  the region and retries with backoff until Redis is back;
- a refusal of the data (WRONGTYPE: a key of the namespace holds another type) is isolated to
  the namespaces Redis refuses, whose events go to the dead-letter topic, and the rest proceeds;
- anything else (a missing permission, a wrong password, a script error, a bug) is a defect:
  logged with its traceback, counted apart, retried slowly, and never mistaken for an outage.
"""

from __future__ import annotations

import enum

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


def _reply(error: redis_errors.ResponseError) -> str:
    """The server's error reply: redis-py prefixes one raised in a pipeline with `Command # N
    (...) of pipeline caused error: ` and may quote it as a tuple."""
    message = str(error)
    _, marker, reply = message.partition("of pipeline caused error: ")
    return reply.lstrip("('\"") if marker else message
