"""Connection settings that carry a password where none belongs are refused without echoing it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts import KafkaConnection, RedisTarget


@pytest.mark.parametrize(
    "url", ["redis://:s3cret-pw@127.0.0.1:6379/0", "http://user:s3cret-pw@127.0.0.1:6379"]
)
def test_url_with_a_password_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RedisTarget(name="eu", url=url)
    assert "s3cret" not in str(refused.value)
    assert "username/password" in str(refused.value)


@pytest.mark.parametrize(
    ("servers", "advice"),
    [
        ("user:s3cret-pw@127.0.0.1:9092", "sasl_username/sasl_password"),
        ("127.0.0.1:9092,SASL_PLAINTEXT://user:s3cret-pw@kafka", "sasl_username/sasl_password"),
        ("127.0.0.1:9092,s3cret-pw", "server 2 of the list is not host:port"),
    ],
)
def test_bootstrap_servers_with_a_password_are_refused_without_echoing_it(
    servers: str, advice: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        KafkaConnection(bootstrap_servers=servers)
    assert "s3cret" not in str(refused.value)
    assert advice in str(refused.value)
