"""Fault tests use the integration fixtures (real broker, real Redis)."""

from tests.integration.conftest import (  # noqa: F401  (fixtures)
    caches,
    cli,
    invalidators,
    publisher,
    redis_clients,
    settings,
    stack_env,
)
