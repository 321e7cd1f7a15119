"""docker-compose.yml takes its images from variables whose defaults are the official images (so
deploy/containers/local-images.env can name local stand-ins), publishes host ports from
variables, and runs the us region as stack.sh does: a Cluster with a replica per master, and a
target that waits for one replica per purge."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LOCAL_IMAGES = ROOT / "deploy" / "containers" / "local-images.env"

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
VARIABLE_WITH_DEFAULT = re.compile(r"\$\{(\w+):-([^}]+)\}")
PUBLICATION = re.compile(r"127\.0\.0\.1:(\$\{\w+:-\d+\}):\d+")


def _variable(text: str) -> tuple[str, str]:
    match = VARIABLE_WITH_DEFAULT.fullmatch(text)
    assert match, f"{text!r} is not ${{VARIABLE:-default}}"
    return match[1], match[2]


def _us_nodes() -> list[str]:
    return sorted(name for name in SERVICES if name.startswith("redis-us-"))


def test_every_image_is_a_variable_defaulting_to_the_official_image() -> None:
    expected = IMAGE_OF | dict.fromkeys(_us_nodes(), "REDIS_IMAGE")
    images = {name: service["image"] for name, service in SERVICES.items() if "image" in service}
    assert set(images) == set(expected)
    for name, image in images.items():
        variable, default = _variable(image)
        assert (variable, default) == (expected[name], OFFICIAL[expected[name]]), name


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
    for name, service in SERVICES.items():
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
