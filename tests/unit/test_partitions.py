"""`contracts.partitions` picks the partition Kafka's default partitioner picks."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from contracts.partitions import murmur2, partition_of

# Kafka's Utils.murmur2 (the Java client's test vectors, as signed 32-bit ints there).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_the_java_clients_vectors() -> None:
    assert {key: murmur2(key) for key in JAVA_VECTORS} == {
        key: signed & 0xFFFFFFFF for key, signed in JAVA_VECTORS.items()
    }


@given(st.binary(max_size=200))
def test_the_hash_is_aiokafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


@given(st.binary(max_size=100), st.integers(min_value=1, max_value=1000))
def test_the_partition_is_the_default_partitioners(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, every, every)
