"""Test helpers for service teams: which concrete namespaces and keys an event purges.

    from contracts.testing import assert_purges
    assert_purges(OrderCreated(order_id="o1", company_id="c1", total_cents=1),
                  {"company:c1:orders", "order:o1", "company:c1:order-stats"},
                  catalogue=CATALOGUE)

The event goes through its wire form (encode, decode, upcast) exactly as the invalidator sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts.catalogue import Catalogue
from contracts.decoding import Rejected
from contracts.events import DomainEvent, EventEnvelope
from contracts.layout import generation_key
from contracts.namespaces import BoundNamespace


def purged_namespaces(
    event: DomainEvent | EventEnvelope, *, catalogue: Catalogue, tenant: str = "test"
) -> list[BoundNamespace]:
    """The concrete namespaces `event` purges, as the invalidator would plan them.

    event: a payload (wrapped in a test envelope) or a whole envelope.
    catalogue: the catalogue that the invalidator runs with.
    tenant: the tenant of the test envelope.
    """
    envelope = (
        event
        if isinstance(event, EventEnvelope)
        else EventEnvelope.wrap(event, source="test", tenant=tenant, aggregate_version=1)
    )
    decoded = catalogue.schemas.decode(envelope.to_bytes())
    if isinstance(decoded, Rejected):
        raise AssertionError(f"the event does not decode: {decoded.reason}: {decoded.detail}")
    return catalogue.purges_for(decoded)


def purged_keys(event: DomainEvent | EventEnvelope, *, catalogue: Catalogue) -> set[str]:
    """The rendered keys of the namespaces `event` purges, e.g. `{"company:42:orders"}`."""
    return {namespace.key for namespace in purged_namespaces(event, catalogue=catalogue)}


def purged_generation_keys(event: DomainEvent | EventEnvelope, *, catalogue: Catalogue) -> set[str]:
    """The Redis keys a `generation` purge of `event` writes, e.g. `{company:42:orders}:gen`."""
    return {generation_key(ns) for ns in purged_namespaces(event, catalogue=catalogue)}


def assert_purges(
    event: DomainEvent | EventEnvelope,
    expected: Iterable[str | BoundNamespace],
    *,
    catalogue: Catalogue,
) -> None:
    """Fail, listing what is missing and what is extra, unless `event` purges exactly `expected`.

    expected: rendered namespace keys (`"company:42:orders"`) or bound namespaces.
    """
    wanted = {item.key if isinstance(item, BoundNamespace) else item for item in expected}
    actual = purged_keys(event, catalogue=catalogue)
    if actual != wanted:
        missing = ", ".join(sorted(wanted - actual)) or "none"
        extra = ", ".join(sorted(actual - wanted)) or "none"
        name = getattr(event, "event_type", None) or getattr(event, "type", "event")
        raise AssertionError(
            f"{name} purges {sorted(actual)}; missing: {missing}; unexpected: {extra}"
        )
