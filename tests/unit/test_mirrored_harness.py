"""The mirrored topology's harness logic: each region's cluster and settings, the link's route,
the Kafka ping's wire format and the cross-region goals."""

from __future__ import annotations

import struct

import pytest

from bench.cross_region import link_route, mirror_alongside, mirror_goal_ratios
from bench.goals import goal_rows
from bench.kafka_ping import api_versions_request, response_correlation_id
from bench.latency import Probe
from bench.stale.variants import purge_latency_by_home
from bench.stale.workload import PurgeLanding
from contracts import SettingsError
from demo.topology import home_region, invalidator_environment, mirror_clusters, region_settings
from invalidator.settings import InvalidatorSettings

CLUSTERS = {"eu": "127.0.0.1:23092", "us": "127.0.0.1:24092"}


def _settings() -> InvalidatorSettings:
    return InvalidatorSettings.model_validate(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"},
            "regions": {
                "eu": [{"name": "eu-main", "url": "redis://127.0.0.1:16379/0"}],
                "us": [{"name": "us-main", "url": "redis://127.0.0.1:17001/0"}],
            },
        }
    )


def test_each_region_reads_its_own_cluster_and_the_others_mirrored_topics() -> None:
    us = region_settings(_settings(), "us", CLUSTERS)
    assert us.kafka.bootstrap_servers == "127.0.0.1:24092"
    assert us.mirrored_from == ["eu"]
    assert us.regions == _settings().regions
    assert invalidator_environment(us) == {
        "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:24092",
        "INVALIDATOR_MIRRORED_FROM": '["eu"]',
    }


def test_the_clusters_come_from_the_stacks_variables_and_missing_ones_are_named() -> None:
    environ = {"MIRROR_KAFKA_EU": CLUSTERS["eu"], "MIRROR_KAFKA_US": CLUSTERS["us"]}
    assert mirror_clusters(["us", "eu"], environ) == CLUSTERS
    with pytest.raises(SettingsError, match="MIRROR_KAFKA_US"):
        mirror_clusters(["eu", "us"], {"MIRROR_KAFKA_EU": CLUSTERS["eu"]})


def test_the_ping_is_an_api_versions_request_and_its_answer_is_matched() -> None:
    request = api_versions_request(7)
    (size,) = struct.unpack_from(">i", request)
    assert size == len(request) - 4
    assert struct.unpack_from(">hhi", request, 4) == (18, 0, 7)
    assert response_correlation_id(struct.pack(">ih", 7, 0)) == 7


def test_the_link_route_is_where_the_proxy_listens() -> None:
    assert link_route(["127.0.0.1:23095 -> 127.0.0.1:23094"]) == ("127.0.0.1", 23095)
    with pytest.raises(ValueError, match="no route"):
        link_route([])


def test_the_remote_purge_is_judged_against_the_bare_mirror() -> None:
    ratios = mirror_goal_ratios({"p50": 9.0, "p99": 30.0}, {"p50": 3.5, "p99": 20.0})
    assert ratios == {"p50_added_ms": 5.5, "p99": 1.5}
    figures = {
        "bare_mirror": {"ms": {"p50": 3.5, "p99": 20.0}},
        "purged_us": {"ms": {"p50": 9.0, "p99": 30.0}},
        "ratios": ratios,
    }
    rows = goal_rows({"cross_region": {"results": {"remote": "us", "200": figures}}})
    by_name = {row.figure: row for row in rows}
    assert by_name["us purge p50 at 200/s"].met is False  # 5.5 ms added > 5 ms
    assert by_name["us purge p99 at 200/s"].met is True
    assert by_name["us purge p50 at 1,000/s"].met is None


def test_the_mirror_read_alongside_is_paired_per_probe() -> None:
    probes = {
        b"a": Probe(sent_at=10.0, seen_in={"eu": 10.004, "us": 10.100}),
        b"b": Probe(sent_at=20.0, seen_in={"eu": 20.004, "us": 20.130}),
        b"c": Probe(sent_at=30.0, seen_in={"eu": 30.004}),  # never purged in us: not paired
        b"d": Probe(sent_at=40.0, seen_in={"eu": 40.004, "us": 40.200}),  # never read: not paired
    }
    arrivals = {b"a": 10.097, b"b": 20.120, b"c": 30.090, b"e": 50.1}
    bare_purged = {b"a": 10.099, b"b": 20.124, b"c": 30.092, b"d": 40.1}
    probes[b"e"] = Probe(sent_at=50.0, seen_in={"eu": 50.004, "us": 50.103})  # no bare purge seen
    alongside = mirror_alongside(probes, arrivals, "us", bare_purged)
    assert alongside["probes"] == 3
    assert alongside["of_probes"] == 5
    assert alongside["mirror_ms"]["max"] == 120.0
    assert alongside["added_ms"]["max"] == 10.0
    assert alongside["added_ms"]["count"] == 3
    assert alongside["bare_purge_added_ms"]["count"] == 3  # a, b and c: read and bare-purged
    assert alongside["bare_purge_added_ms"]["max"] == 4.0
    assert mirror_alongside(probes, arrivals, "us", {})["bare_purge_added_ms"] is None
    figures = {"alongside": alongside}
    rows = goal_rows({"cross_region": {"results": {"remote": "us", "1000": figures}}})
    by_name = {row.figure: row for row in rows}
    paired = by_name["us purge p50 at 1,000/s, over the mirror read alongside"]
    assert paired.met is True  # p50 3 ms added <= 5 ms
    assert paired.measured == "+3.0 ms (mirror 100.0 ms; a bare SET + WAIT: +2.0 ms)"
    assert by_name["us purge p50 at 200/s, over the mirror read alongside"].met is None


def test_items_have_a_stable_home_spread_over_the_regions() -> None:
    items = [f"item{n}" for n in range(200)]
    homes = [home_region(item, ["eu", "us"]) for item in items]
    assert homes == [home_region(item, ["eu", "us"]) for item in items]
    assert 60 < homes.count("eu") < 140
    assert {home_region(item, ["eu"]) for item in items} == {"eu"}


def test_purges_are_split_by_the_writes_home_region() -> None:
    homes = ["eu", "us"]
    eu_item = next(f"i{n}" for n in range(100) if home_region(f"i{n}", homes) == "eu")
    us_item = next(f"i{n}" for n in range(100) if home_region(f"i{n}", homes) == "us")
    landings = [
        PurgeLanding(eu_item, 1, 0.0, {"eu": 0.005, "us": 0.090}),
        PurgeLanding(us_item, 1, 0.0, {"eu": 0.100, "us": 0.004}),
        PurgeLanding(us_item, 2, 0.0, None),
    ]
    by_home = purge_latency_by_home(landings, homes, homes)
    assert by_home["eu"]["eu"]["max"] == 5.0
    assert by_home["eu"]["us"]["max"] == 90.0
    assert by_home["us"]["eu"]["max"] == 100.0
    assert by_home["us"]["us"]["p50"] == 4.0
