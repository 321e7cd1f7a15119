"""Contracts shared by write services and the invalidator: events, namespaces, key layout."""

from contracts.catalogue import Catalogue
from contracts.connections import KafkaConnection, RedisTarget, TlsSettings
from contracts.decoding import EventSchemas, Rejected, RejectReason
from contracts.errors import CatalogueError, ContractError, EntryNameError, NamespaceParamError
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
    "Namespace",
    "NamespaceParamError",
    "PurgeRule",
    "PurgeStrategy",
    "RedisTarget",
    "RejectReason",
    "Rejected",
    "SafeId",
    "TlsSettings",
    "TraceContext",
]
