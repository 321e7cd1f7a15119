"""What a write service imports: the event publisher and the race-safe cache client."""

from producers.cache import CacheClient, CacheRead, Fetched, RedisClient, Source, connect_redis
from producers.publisher import EventPublisher

__all__ = [
    "CacheClient",
    "CacheRead",
    "EventPublisher",
    "Fetched",
    "RedisClient",
    "Source",
    "connect_redis",
]
