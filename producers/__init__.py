"""What a write service imports: the event publisher and the race-safe cache client.

The public surface is `__all__` and `producers.outbox` (the transactional outbox); the modules
(`publisher`, `cache`, `trace_context`) are the implementation.
"""

from contracts.redis_clients import RedisClient
from producers.cache import CacheClient, CacheRead, Fetched, Source, connect_redis
from producers.publisher import (
    EnvelopeToPublish,
    EventPublisher,
    EventToPublish,
    PublishBatchError,
)

__all__ = [
    "CacheClient",
    "CacheRead",
    "EnvelopeToPublish",
    "EventPublisher",
    "EventToPublish",
    "Fetched",
    "PublishBatchError",
    "RedisClient",
    "Source",
    "connect_redis",
]
