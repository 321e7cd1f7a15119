"""Contracts shared by write services and the invalidator: events, namespaces, key layout."""

from contracts.catalogue import Catalogue
from contracts.connections import KafkaConnection, RedisTarget, TlsSettings
from contracts.decoding import EventSchemas, Rejected, RejectReason
from contracts.errors import (
    CacheInvalidationError,
    CatalogueError,
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
