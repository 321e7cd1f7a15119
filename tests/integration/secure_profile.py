"""The secure profile the integration tests run on: the bench's (`bench.secure_stack`), brought
up by `stack.sh up --secure`, or the one whose `env --secure` lines a file names."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from bench import secure_stack
from bench.secure_stack import SecureProfile
from producers import RedisClient, connect_redis

SECURE_ENV_VARIABLE = "INVALIDATOR_TEST_SECURE_ENV"
"""A file of the export lines of `stack.sh env --secure` of a secure stack that runs already;
unset: the tests run `stack.sh up --secure` (it starts what is not running)."""

__all__ = ["SECURE_ENV_VARIABLE", "SecureProfile", "cache_clients", "secure_profile"]


def secure_profile() -> SecureProfile:
    """The secure profile named by INVALIDATOR_TEST_SECURE_ENV, else brought up by `stack.sh up
    --secure`; fails (never skips) when it cannot be had."""
    given = os.environ.get(SECURE_ENV_VARIABLE)
    return secure_stack.secure_profile(Path(given) if given else None)


@contextlib.asynccontextmanager
async def cache_clients(
    profile: SecureProfile, regions: Iterable[str]
) -> AsyncIterator[dict[str, RedisClient]]:
    """A client of each of `regions`' Redis on `profile`, as the CacheClient's user `cache` (it
    may read the generation keys a purge writes: what proves a purge); closed on exit."""
    clients = {region: connect_redis(profile.cache_regions[region][0]) for region in regions}
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()
