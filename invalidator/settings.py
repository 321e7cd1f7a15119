"""InvalidatorSettings: the one settings object, read from INVALIDATOR_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import topics
from contracts.catalogue import Catalogue, import_catalogue
from contracts.connections import KafkaConnection, RedisTarget
from contracts.errors import SettingsError
from contracts.ids import is_valid_id
from invalidator.start_position import START_FROM_FORMS, resolve_start_from


class WatchSettings(BaseModel):
    """The consistency watchdog's tuning (`invalidator watch`): `INVALIDATOR_WATCH__<FIELD>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_every: int = Field(
        default=1,
        ge=1,
        description="check 1 event in N, chosen by event id (every watchdog picks the same); "
        "1: every event",
    )
    deadline_s: float = Field(
        default=10.0,
        gt=0,
        description="a purge seen later than this after its event's publication is late",
    )
    grace_s: float = Field(
        default=20.0,
        ge=0,
        description="how long after the deadline a purge is still looked for (late, not lost); "
        "not seen by then, it is missing",
    )
    interval_ms: int = Field(
        default=20,
        ge=1,
        description="the wait before a pending purge is looked for again in Redis (doubled "
        "after each look that does not see it, up to 1 s)",
    )
    group: str | None = Field(
        default=None,
        description="the watchdog's own consumer group (default <group_prefix>-watchdog); never "
        "one of the invalidators' <group_prefix>.<region> groups",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve the watchdog's /metrics, /healthz and /readyz on this port (off "
        "unless set; 0 picks a free port), on metrics_host",
    )


class InvalidatorSettings(BaseSettings):
    """Everything the invalidator and its operator CLI need.

    Nested values use `__`: `INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS=host:9092`;
    `INVALIDATOR_REGIONS` is JSON: `{"eu": [{"name": "eu-main", "url": "redis://host:6379/0"}]}`.
    """

    model_config = SettingsConfigDict(
        env_prefix="INVALIDATOR_",
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,  # inputs may carry passwords
    )

    kafka: KafkaConnection = Field(default_factory=KafkaConnection)
    regions: dict[str, list[RedisTarget]] = Field(default_factory=dict)
    catalogue: str | None = Field(
        default=None,
        description="package.module:attribute of the namespace catalogue (required by every "
        "command that reads events or topics; no default, so that no invalidator purges a "
        "domain it was not given)",
    )
    mirrored_from: list[str] = Field(
        default_factory=list,
        description="the mirrored topology: the regions (MirrorMaker 2 cluster aliases) whose "
        "event topics MirrorMaker replicates into this region's cluster as <region>.<topic>; "
        "the invalidator reads those besides its own. Empty: one cluster for every region",
    )
    group_prefix: str = "invalidator"
    start_from: str = Field(
        default="earliest",
        description="where a group starts on a partition it never committed: " + START_FROM_FORMS,
    )
    dead_letter_topic: str = topics.DEAD_LETTER
    dead_letter_max_bytes: int = Field(
        default=1_000_000,
        ge=10_000,
        description="the largest dead letter sent whole; a larger one goes as a reference to its "
        "source position (keep it under the dead-letter topic's max.message.bytes)",
    )
    batch_max_records: int = Field(default=2000, ge=1)
    fetch_timeout_ms: int = Field(default=100, ge=1)
    commit_interval_ms: int = Field(
        default=250,
        ge=0,
        description="least time between two offset commits (revoke and stop commit at once)",
    )
    retry_initial_s: float = Field(default=0.05, gt=0)
    retry_max_s: float = Field(default=5.0, gt=0)
    stats_interval_s: float = Field(default=10.0, gt=0)
    stats_file: Path | None = Field(
        default=None, description="where to write the stats as JSON every stats_interval_s"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve /metrics, /healthz and /readyz on this port (off unless set; 0 picks "
        "a free port)",
    )
    metrics_host: str = Field(default="127.0.0.1", description="the address metrics_port binds")
    ready_max_paused_s: float = Field(
        default=30.0, gt=0, description="/readyz fails once the partitions are paused this long"
    )
    alive_max_idle_s: float = Field(
        default=30.0,
        gt=0,
        description="/healthz fails once the loop has not iterated for this long, or has not "
        "started this long after the process began joining its group",
    )

    watch: WatchSettings = Field(default_factory=WatchSettings)

    @field_validator("regions")
    @classmethod
    def _regions_have_targets(
        cls, value: dict[str, list[RedisTarget]]
    ) -> dict[str, list[RedisTarget]]:
        for region, targets in value.items():
            if not is_valid_id(region):
                raise ValueError(f"region name {region!r} may only contain [A-Za-z0-9_.-]")
            if not targets:
                raise ValueError(f"region {region!r} has no Redis target; list at least one")
        return value

    @field_validator("mirrored_from")
    @classmethod
    def _mirror_sources_are_aliases(cls, value: list[str]) -> list[str]:
        for source in value:
            if not is_valid_id(source) or topics.MIRROR_SEPARATOR in source:
                raise ValueError(
                    f"{source!r} is not a MirrorMaker cluster alias: write a region's name of "
                    "[A-Za-z0-9_-], as in MirrorMaker's `clusters` (no '.')"
                )
        return value

    @field_validator("start_from")
    @classmethod
    def _start_from_is_a_position(cls, value: str) -> str:
        resolve_start_from(value)  # ValueError naming the accepted forms
        return value.strip()

    def group_id(self, region: str) -> str:
        """The consumer group of a region: one group per region, so regions lag independently."""
        return f"{self.group_prefix}.{region}"

    def watchdog_group(self) -> str:
        """The watchdog's consumer group: `watch.group`, else `<group_prefix>-watchdog`; a
        SettingsError when it is an invalidator's group (`<group_prefix>.<region>`)."""
        group = self.watch.group or f"{self.group_prefix}-watchdog"
        if group.startswith(f"{self.group_prefix}."):
            raise SettingsError(
                f"INVALIDATOR_WATCH__GROUP={group!r} is named like an invalidator's group "
                f"({self.group_prefix}.<region>): the watchdog must never touch those; "
                f"choose another name, e.g. {self.group_prefix}-watchdog"
            )
        return group

    def targets(self, region: str) -> list[RedisTarget]:
        """The Redis targets of `region`, or a SettingsError naming the known regions."""
        if region not in self.regions:
            known = ", ".join(sorted(self.regions)) or "none"
            raise SettingsError(f"unknown region {region!r}; INVALIDATOR_REGIONS defines: {known}")
        return self.regions[region]

    def event_topics(self, catalogue: Catalogue) -> list[str]:
        """The topics this region's invalidator reads: the catalogue's, then each of them as
        mirrored from every region of `mirrored_from`."""
        return [*catalogue.topics(), *self.mirrored_topics(catalogue)]

    def mirrored_topics(self, catalogue: Catalogue) -> list[str]:
        """The catalogue's topics as MirrorMaker names them on this cluster (none in the
        one-cluster topology): `eu.orders.events` for `orders.events` of region `eu`."""
        return [
            topics.mirrored_topic(source, topic)
            for source in self.mirrored_from
            for topic in catalogue.topics()
        ]

    def load_catalogue(self) -> Catalogue:
        """Import the catalogue named by `catalogue` (`package.module:attribute`); a
        CatalogueError when it fails its checks, a SettingsError when it is not set or cannot be
        imported."""
        if not self.catalogue:
            raise SettingsError(
                "INVALIDATOR_CATALOGUE is not set: name your namespace catalogue as "
                "package.module:attribute, e.g. INVALIDATOR_CATALOGUE=mycompany.catalogue:CATALOGUE"
                " (or pass --catalogue); the example domain is "
                "contracts.example_orders:CATALOGUE, for demos and tests"
            )
        return import_catalogue(self.catalogue, setting="INVALIDATOR_CATALOGUE")
