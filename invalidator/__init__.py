"""The invalidator: a Kafka consumer group per region that purges cache namespaces in Redis.

The public surface is `__all__` (the service, its settings and stats, the pure planner), the
`invalidator` command (`invalidator.cli`) and `invalidator.operators` (the operator tooling).
The service's modules (`consumer`, `loop`, `purge`, ...) are the implementation.
"""

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
