"""The demo's clients on the secure profile log in as their own principals (`demo.logins`)."""

from __future__ import annotations

import json
import os

import pytest

from contracts import KafkaConnection, RedisTarget, SettingsError
from demo.logins import SECURE_GROUP_PREFIX, plaintext_logins, secure_logins
from invalidator.settings import InvalidatorSettings

REGIONS = {"eu": [RedisTarget(name="eu", url="redis://127.0.0.1:1/0", username="invalidator")]}
SASL_SSL = KafkaConnection(
    bootstrap_servers="127.0.0.1:1", security_protocol="SASL_SSL", sasl_username="invalidator"
)


@pytest.fixture(autouse=True)
def _settings_of_the_test_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The integration tests leave the stack's INVALIDATOR_* and OUTBOX_* in this process's
    environment, and settings merge them into the test's own (another region, another relay)."""
    for name in list(os.environ):
        if name.startswith(("INVALIDATOR_", "OUTBOX_")) and name != "INVALIDATOR_CATALOGUE":
            monkeypatch.delenv(name)


def test_on_the_plaintext_stack_every_client_takes_the_invalidators_settings() -> None:
    settings = InvalidatorSettings(regions=REGIONS)
    logins = plaintext_logins(settings, settings.kafka)
    assert logins.group_prefix == "demo"
    assert logins.relay_kafka == settings.kafka
    assert logins.cache_targets == {"eu": REGIONS["eu"][0]}


def test_on_the_secure_profile_each_client_is_its_own_principal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = {"eu": [{"name": "eu", "url": "rediss://127.0.0.1:1/0", "username": "cache"}]}
    monkeypatch.setenv("OUTBOX_DATABASE_URL", "postgresql+asyncpg://relay@127.0.0.1:1/outbox")
    monkeypatch.setenv("OUTBOX_KAFKA__SASL_USERNAME", "relay")
    settings = InvalidatorSettings(regions=REGIONS, kafka=SASL_SSL)
    logins = secure_logins(settings, {"CACHE_REGIONS": json.dumps(cache)})
    assert logins.group_prefix == SECURE_GROUP_PREFIX
    assert logins.relay_kafka.sasl_username == "relay"
    assert logins.cache_targets["eu"].username == "cache"


def test_secure_without_the_secure_profiles_settings_says_how_to_get_them() -> None:
    with pytest.raises(SettingsError, match=r"stack.sh up --secure"):
        secure_logins(InvalidatorSettings(regions=REGIONS), {})
