"""The mirrored topology seen from a harness: each region's own Kafka cluster and what that
region's invalidator is told to read there (its own topics and the others' mirrored ones).

The clusters come from the `MIRROR_KAFKA_<REGION>` variables that `stack.sh up --mirrored`
prints. Used by the demo, the stale-data harness and the cross-region benchmark.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Mapping

from contracts import SettingsError
from invalidator.settings import InvalidatorSettings

TOPOLOGIES = ("one-cluster", "mirrored")


def mirror_variable(region: str) -> str:
    """The variable naming a region's own cluster: `MIRROR_KAFKA_EU` for `eu`."""
    return f"MIRROR_KAFKA_{region.upper()}"


def mirror_clusters(
    regions: Iterable[str], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """Each region's own cluster (bootstrap servers); a SettingsError naming what is missing.

    regions: the regions of the settings.
    environ: where the variables are read.
    """
    clusters = {region: environ.get(mirror_variable(region), "") for region in sorted(regions)}
    missing = [mirror_variable(region) for region, servers in clusters.items() if not servers]
    if missing:
        raise SettingsError(
            f"the mirrored topology needs {', '.join(missing)}: "
            'eval "$(deploy/local/stack.sh up --mirrored)" prints them'
        )
    return clusters


def region_settings(
    settings: InvalidatorSettings, region: str, clusters: Mapping[str, str]
) -> InvalidatorSettings:
    """The settings of `region`'s invalidator in the mirrored topology: its own cluster (the
    connection's other fields kept), reading the mirrored topics of every other region.

    settings: the shared settings (Redis targets, group prefix).
    region: the invalidator's region.
    clusters: each region's bootstrap servers (`mirror_clusters`).
    """
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": clusters[region]})
    sources = sorted(other for other in clusters if other != region)
    return settings.model_copy(update={"kafka": kafka, "mirrored_from": sources})


def invalidator_environment(settings: InvalidatorSettings) -> dict[str, str]:
    """The variables that make an `invalidator run` process read where `settings` read: the
    bootstrap servers and the regions mirrored in (both empty-safe)."""
    return {
        "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "INVALIDATOR_MIRRORED_FROM": json.dumps(settings.mirrored_from),
    }


def home_region(item: str, regions: list[str]) -> str:
    """The region an item's writes are published in: spread evenly over `regions`, and the same
    in every run (CRC-32 of the item's id).

    item: the item's id.
    regions: the candidate regions, in a fixed order.
    """
    return regions[zlib.crc32(item.encode()) % len(regions)]
