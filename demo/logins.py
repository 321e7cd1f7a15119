"""Who the demo's clients log in as. On the plaintext stack every client takes the invalidator's
settings; on the stack's secure profile (`--secure`, `stack.sh up --secure`) each takes its own
principal from the lines `stack.sh env --secure` prints: the relay `OUTBOX_KAFKA__*`, the readers
and the purge watch the Redis user `cache` of `CACHE_REGIONS`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from contracts import KafkaConnection, RedisTarget, SettingsError
from contracts.settings import read_settings
from invalidator.settings import InvalidatorSettings
from producers.outbox import RelaySettings

DEMO_GROUP_PREFIX = "demo"
"""The demo's consumer groups are `demo.<region>`, apart from any deployment's `invalidator.*`."""
SECURE_GROUP_PREFIX = "invalidator.demo"
"""On the secure profile: under `invalidator.`, the groups the invalidator's ACL lets it join."""
CACHE_REGIONS = "CACHE_REGIONS"
"""The CacheClient's targets per region (JSON, as INVALIDATOR_REGIONS), from `env --secure`."""
_REGIONS = TypeAdapter(dict[str, list[RedisTarget]])


@dataclass(frozen=True)
class DemoLogins:
    """The demo's clients' settings besides the invalidators'."""

    group_prefix: str
    """INVALIDATOR_GROUP_PREFIX of the demo's invalidators."""
    relay_kafka: KafkaConnection
    """The outbox relay's Kafka login."""
    cache_targets: dict[str, RedisTarget]
    """Region -> the Redis target the readers and the purge watch use."""


def plaintext_logins(settings: InvalidatorSettings, publish_to: KafkaConnection) -> DemoLogins:
    """Every client as the invalidator's settings say; the relay publishes to `publish_to`."""
    return DemoLogins(
        group_prefix=DEMO_GROUP_PREFIX,
        relay_kafka=publish_to,
        cache_targets={region: settings.targets(region)[0] for region in settings.regions},
    )


def secure_logins(
    settings: InvalidatorSettings, environ: Mapping[str, str] = os.environ
) -> DemoLogins:
    """Each client as its own principal of the secure profile; a SettingsError naming what is
    missing when the environment lacks the lines of `env --secure`."""
    if settings.kafka.security_protocol != "SASL_SSL" or not environ.get(CACHE_REGIONS):
        raise SettingsError(
            "--secure needs the settings of the secure profile: "
            'eval "$(deploy/local/stack.sh up --secure)" prints them'
        )
    try:
        cache_regions = _REGIONS.validate_json(environ[CACHE_REGIONS])
    except ValidationError as error:
        raise SettingsError(f"{CACHE_REGIONS}: {error.error_count()} invalid value(s)") from None
    missing = sorted(set(settings.regions) - set(cache_regions))
    if missing:
        raise SettingsError(f"{CACHE_REGIONS} has no target for region(s) {', '.join(missing)}")
    return DemoLogins(
        group_prefix=SECURE_GROUP_PREFIX,
        relay_kafka=read_settings(RelaySettings).kafka,
        cache_targets={region: cache_regions[region][0] for region in settings.regions},
    )
