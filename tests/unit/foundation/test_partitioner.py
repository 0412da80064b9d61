"""The partitioner puts every key where Kafka's default partitioner (aiokafka's copy of the Java
client's) does: consumers and tools that assume Kafka's placement find each ticket's events."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2
from hypothesis import given
from hypothesis import strategies as st

from shared.kafka.partitioner import murmur2, partition_of


@given(st.binary(max_size=300))
def test_the_hash_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == reference_murmur2(data)


@given(st.text(min_size=1, max_size=120), st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_kafkas_default_partitioner_puts_it(key: str, count: int) -> None:
    partitions = list(range(count))
    encoded = key.encode()
    assert partition_of(encoded, partitions, partitions) == DefaultPartitioner()(
        encoded, partitions, partitions
    )


def test_the_java_clients_test_vectors() -> None:
    # UtilsTest.testMurmur2 of Apache Kafka's clients; Java's ints are signed.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    }
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF


def test_a_message_without_a_key_goes_to_an_available_partition() -> None:
    assert {partition_of(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert partition_of(None, [0, 1, 2], []) in {0, 1, 2}
