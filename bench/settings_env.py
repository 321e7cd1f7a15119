"""Connection settings as the environment variables an operator sets for the `invalidator`
command, secrets included: for a process started with them (never to be printed or logged)."""

from __future__ import annotations

import json

from contracts import KafkaConnection, RedisTarget


def kafka_environment(kafka: KafkaConnection) -> dict[str, str]:
    """`INVALIDATOR_KAFKA__*` of `kafka`, each field its own variable (so that each overrides
    one that is already set), the password revealed."""
    values = kafka.model_dump(mode="json", exclude_none=True, exclude={"tls", "sasl_password"})
    environment = {f"INVALIDATOR_KAFKA__{name.upper()}": _text(v) for name, v in values.items()}
    if kafka.sasl_password is not None:
        environment["INVALIDATOR_KAFKA__SASL_PASSWORD"] = kafka.sasl_password.get_secret_value()
    if kafka.tls is not None:
        for name, value in kafka.tls.model_dump(mode="json", exclude_none=True).items():
            environment[f"INVALIDATOR_KAFKA__TLS__{name.upper()}"] = _text(value)
    return environment


def _text(value: object) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def regions_environment(regions: dict[str, list[RedisTarget]]) -> dict[str, str]:
    """`INVALIDATOR_REGIONS` of `regions`, passwords revealed."""

    def target_json(target: RedisTarget) -> dict[str, object]:
        values = target.model_dump(mode="json", exclude_none=True)
        if target.password is not None:
            values["password"] = target.password.get_secret_value()
        return values

    return {
        "INVALIDATOR_REGIONS": json.dumps(
            {region: [target_json(t) for t in targets] for region, targets in regions.items()}
        )
    }
