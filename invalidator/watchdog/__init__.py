"""The consistency watchdog (`invalidator watch`): from outside the invalidator, it looks in
every region's Redis for the purge of each sampled event, and reports what it saw.

The public surface is `__all__`: the engine (`Watchdog`), the long-running process
(`WatchService`), the one-shot report, the metrics, and the outcomes they speak of.
"""

from invalidator.watchdog.checker import EventRecord, Watchdog
from invalidator.watchdog.metrics import WatchMetrics
from invalidator.watchdog.report import WITHIN_S, WatchReport, threshold_name
from invalidator.watchdog.results import NOTHING_TO_CHECK, EventResult, PurgeResult, WatchListener
from invalidator.watchdog.sampling import is_sampled
from invalidator.watchdog.service import WatchService
from invalidator.watchdog.verdicts import Judgement, Look, Outcome, event_judgement, judge

__all__ = [
    "NOTHING_TO_CHECK",
    "WITHIN_S",
    "EventRecord",
    "EventResult",
    "Judgement",
    "Look",
    "Outcome",
    "PurgeResult",
    "WatchListener",
    "WatchMetrics",
    "WatchReport",
    "WatchService",
    "Watchdog",
    "event_judgement",
    "is_sampled",
    "judge",
    "threshold_name",
]
