"""Contracts shared by write services and the invalidator: events, namespaces, key layout.

The public surface is `__all__` (events, the namespace catalogue, connection settings, every
error under `CacheInvalidationError`) and four modules a service team names: `contracts.testing`
(which keys an event purges), `contracts.pytest_plugin` (the `cache_catalogue` fixture),
`contracts.topics` (topic names) and `contracts.example_orders` (the example domain, for demos
and tests). The other modules are the implementation, shared by producers and the invalidator.
"""

from contracts.catalogue import Catalogue
from contracts.connections import KafkaConnection, RedisTarget, TlsSettings
from contracts.decoding import EventSchemas, Rejected, RejectReason
from contracts.errors import (
    CacheInvalidationError,
    CatalogueError,
    ConnectionSecurityError,
    ContractError,
    EntryNameError,
    MissingTopicsError,
    NamespaceParamError,
    OperatorInputError,
    SettingsError,
    UnknownTopicError,
)
from contracts.events import (
    DomainEvent,
    Event,
    EventEnvelope,
    EventMetadata,
    SafeId,
    TraceContext,
)
from contracts.namespaces import BoundNamespace, Namespace, PurgeRule, PurgeStrategy

__all__ = [
    "BoundNamespace",
    "CacheInvalidationError",
    "Catalogue",
    "CatalogueError",
    "ConnectionSecurityError",
    "ContractError",
    "DomainEvent",
    "EntryNameError",
    "Event",
    "EventEnvelope",
    "EventMetadata",
    "EventSchemas",
    "KafkaConnection",
    "MissingTopicsError",
    "Namespace",
    "NamespaceParamError",
    "OperatorInputError",
    "PurgeRule",
    "PurgeStrategy",
    "RedisTarget",
    "RejectReason",
    "Rejected",
    "SafeId",
    "SettingsError",
    "TlsSettings",
    "TraceContext",
    "UnknownTopicError",
]
