"""The invalidator: a Kafka consumer group per region that purges cache namespaces in Redis."""

from contracts.errors import SettingsError
from invalidator.consumer import Invalidator
from invalidator.planner import PurgePlan, purge_plan
from invalidator.settings import InvalidatorSettings
from invalidator.stats import InvalidatorStats

__all__ = [
    "Invalidator",
    "InvalidatorSettings",
    "InvalidatorStats",
    "PurgePlan",
    "SettingsError",
    "purge_plan",
]
