"""docker-compose.yml takes its images from variables whose defaults are the official images (so
deploy/containers/local-images.env can name local stand-ins), publishes host ports from
variables, and runs the us region as stack.sh does: a Cluster with a replica per master, and a
target that waits for one replica per purge. docker-compose.mirrored.yml, over it, adds us's
cluster and MirrorMaker 2 per target region, and points each invalidator at its own cluster."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
MIRRORED: dict[str, dict[str, Any]] = yaml.safe_load(
    (ROOT / "docker-compose.mirrored.yml").read_text()
)["services"]
LOCAL_IMAGES = ROOT / "deploy" / "containers" / "local-images.env"
MM2_PROPERTIES = ROOT / "deploy" / "compose" / "mm2.properties"
TOPICS = ROOT / "deploy" / "local" / "topics.txt"

OFFICIAL = {
    "KAFKA_IMAGE": "apache/kafka:4.1.0",
    "REDIS_IMAGE": "redis:7",
    "POSTGRES_IMAGE": "postgres:15",
    "PYTHON_IMAGE": "python:3.11-slim",
}
IMAGE_OF = {
    "kafka": "KAFKA_IMAGE",
    "topic-init": "KAFKA_IMAGE",
    "redis-eu": "REDIS_IMAGE",
    "redis-init": "REDIS_IMAGE",
    "postgres": "POSTGRES_IMAGE",
}
MIRRORED_IMAGE_OF = {
    "kafka-us": "KAFKA_IMAGE",
    "topic-init-us": "KAFKA_IMAGE",
    "mm2-eu": "KAFKA_IMAGE",
    "mm2-us": "KAFKA_IMAGE",
}
VARIABLE_WITH_DEFAULT = re.compile(r"\$\{(\w+):-([^}]+)\}")
PUBLICATION = re.compile(r"127\.0\.0\.1:(\$\{\w+:-\d+\}):\d+")


def _variable(text: str) -> tuple[str, str]:
    match = VARIABLE_WITH_DEFAULT.fullmatch(text)
    assert match, f"{text!r} is not ${{VARIABLE:-default}}"
    return match[1], match[2]


def _us_nodes() -> list[str]:
    return sorted(name for name in SERVICES if name.startswith("redis-us-"))


def _properties(path: Path) -> dict[str, str]:
    """`key = value` lines as java.util.Properties reads them here (no continuations): a
    backslash escapes the next character."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = re.sub(r"\\(.)", r"\1", value.strip())
    return pairs


def _topics() -> list[str]:
    lines = [line.split("#")[0].split() for line in TOPICS.read_text().splitlines()]
    return [words[0] for words in lines if words]


def _event_topics() -> list[str]:
    return [topic for topic in _topics() if topic.endswith(".events")]


@pytest.mark.parametrize(
    ("services", "image_of"),
    [
        (SERVICES, IMAGE_OF | dict.fromkeys(_us_nodes(), "REDIS_IMAGE")),
        (MIRRORED, MIRRORED_IMAGE_OF),
    ],
    ids=["docker-compose.yml", "docker-compose.mirrored.yml"],
)
def test_every_image_is_a_variable_defaulting_to_the_official_image(
    services: dict[str, dict[str, Any]], image_of: dict[str, str]
) -> None:
    images = {name: service["image"] for name, service in services.items() if "image" in service}
    assert set(images) == set(image_of)
    for name, image in images.items():
        variable, default = _variable(image)
        assert (variable, default) == (image_of[name], OFFICIAL[image_of[name]]), name


def test_the_invalidators_build_from_the_python_image_variable() -> None:
    invalidators = [name for name, service in SERVICES.items() if "build" in service]
    assert sorted(invalidators) == ["invalidator-eu", "invalidator-us"]
    for name in invalidators:
        argument = SERVICES[name]["build"]["args"]["PYTHON_IMAGE"]
        assert _variable(argument) == ("PYTHON_IMAGE", OFFICIAL["PYTHON_IMAGE"]), name
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={OFFICIAL['PYTHON_IMAGE']}\n" in dockerfile
    assert "\nFROM ${PYTHON_IMAGE}\n" in dockerfile


def test_the_local_images_file_names_every_image_variable() -> None:
    lines = [line for line in LOCAL_IMAGES.read_text().splitlines() if line and line[0] != "#"]
    assigned = dict(line.split("=", 1) for line in lines)
    assert set(assigned) == set(OFFICIAL)
    assert all(image.startswith("localhost/") for image in assigned.values())


def test_every_host_port_is_a_variable() -> None:
    for name, service in (SERVICES | MIRRORED).items():
        for publication in service.get("ports", []):
            match = PUBLICATION.fullmatch(publication)
            assert match, f"{name}: {publication!r} is not 127.0.0.1:${{X_HOST_PORT:-n}}:n"
            variable, default = _variable(match[1])
            assert variable.endswith("_HOST_PORT") and default.isdigit(), name


def test_the_us_cluster_has_a_replica_per_master() -> None:
    nodes = _us_nodes()
    assert len(nodes) == 6
    for node in nodes:
        assert "--cluster-enabled yes" in " ".join(SERVICES[node]["command"]), node
    init = SERVICES["redis-init"]
    assert set(nodes) <= set(init["depends_on"])
    script = (ROOT / "deploy" / "compose" / "redis-init.sh").read_text()
    assert "--cluster-replicas 1" in script
    assert all(f"{node}:" in script for node in nodes)


def test_the_us_target_waits_for_one_replica() -> None:
    for name in ("invalidator-eu", "invalidator-us"):
        regions = json.loads(SERVICES[name]["environment"]["INVALIDATOR_REGIONS"])
        (us,) = regions["us"]
        assert us["cluster"] is True, name
        assert us["min_replicas_acked"] == 1, name


def test_the_mirrored_file_adds_services_and_only_reconfigures_the_invalidators() -> None:
    overridden = set(MIRRORED) & set(SERVICES)
    assert overridden == {"invalidator-eu", "invalidator-us"}
    # podman-compose 1.0.3 appends a list of the second file to the first's (command, entrypoint
    # would run twice): an override only sets mappings.
    for name in overridden:
        assert set(MIRRORED[name]) <= {"environment", "depends_on"}, name
        assert all(isinstance(value, dict) for value in MIRRORED[name].values()), name


def test_the_us_cluster_is_configured_as_the_eu_cluster_but_its_own() -> None:
    eu, us = SERVICES["kafka"]["environment"], MIRRORED["kafka-us"]["environment"]
    differ = {key for key in eu.keys() | us.keys() if eu.get(key) != us.get(key)}
    assert differ == {
        "CLUSTER_ID",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_ADVERTISED_LISTENERS",
    }
    assert "kafka-us:" in us["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert us["KAFKA_ADVERTISED_LISTENERS"].startswith("PLAINTEXT://kafka-us:9092,")
    assert MIRRORED["kafka-us"]["healthcheck"] == SERVICES["kafka"]["healthcheck"]
    init = MIRRORED["topic-init-us"]
    assert init["environment"]["TOPIC_INIT_BOOTSTRAP"] == "kafka-us:9092"
    assert init["volumes"] == SERVICES["topic-init"]["volumes"]


def test_each_invalidator_reads_its_own_cluster_and_the_other_regions_mirrored_topics() -> None:
    brokers = _properties(MM2_PROPERTIES)
    regions = json.loads(SERVICES["invalidator-eu"]["environment"]["INVALIDATOR_REGIONS"])
    for region in regions:
        name = f"invalidator-{region}"
        environment = SERVICES[name]["environment"] | MIRRORED[name]["environment"]
        assert json.loads(environment["INVALIDATOR_MIRRORED_FROM"]) == [
            other for other in regions if other != region
        ], name
        assert (
            environment["INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS"]
            == (brokers[f"{region}.bootstrap.servers"])
        ), name


def test_a_mirrormaker_service_per_target_region_runs_the_one_properties_file() -> None:
    regions = json.loads(SERVICES["invalidator-eu"]["environment"]["INVALIDATOR_REGIONS"])
    properties = _properties(MM2_PROPERTIES)
    assert [alias.strip() for alias in properties["clusters"].split(",")] == sorted(regions)
    for region in regions:
        service = MIRRORED[f"mm2-{region}"]
        assert service["command"] == ["/mm2.properties", "--clusters", region]
        assert "./deploy/compose/mm2.properties:/mm2.properties:ro" in service["volumes"]
        assert service["environment"]["INIT_EXEC"] == "/opt/kafka/bin/connect-mirror-maker.sh"
        for source in regions:
            if source != region:
                assert properties[f"{source}->{region}.enabled"] == "true"


def test_mirrormaker_mirrors_the_event_topics_and_not_the_dead_letters() -> None:
    pattern = re.compile(_properties(MM2_PROPERTIES)["topics"])
    mirrored = [topic for topic in _topics() if pattern.fullmatch(topic)]
    assert mirrored == _event_topics()
    # "\\." in the file: a "\." would reach MirrorMaker as "." and match any character.
    assert not any(pattern.fullmatch(topic.replace(".", "x")) for topic in mirrored)
    assert "invalidator.dead-letter" in _topics()


def test_mirrormaker_is_set_for_single_broker_clusters_and_low_latency() -> None:
    properties = _properties(MM2_PROPERTIES)
    for key in (
        "replication.factor",
        "offset-syncs.topic.replication.factor",
        "checkpoints.topic.replication.factor",
        "heartbeats.topic.replication.factor",
        "offset.storage.replication.factor",
        "status.storage.replication.factor",
        "config.storage.replication.factor",
    ):
        assert properties[key] == "1", key
    assert properties["refresh.topics.interval.seconds"] == "10"
    assert properties["emit.checkpoints.enabled"] == "true"
    aliases = [alias.strip() for alias in properties["clusters"].split(",")]
    assert properties["plugin.discovery"] == "service_load"
    for target in aliases:
        assert properties[f"{target}.plugin.discovery"] == "service_load"
        assert properties[f"{target}.offset.flush.interval.ms"] == "1000"
        for source in aliases:
            if source != target:
                assert properties[f"{source}->{target}.producer.override.linger.ms"] == "0"
