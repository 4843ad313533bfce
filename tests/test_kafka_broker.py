"""The project's real Kafka broker (deploy/kafka/broker.sh) works for what newswatch needs:
metadata, keyed idempotent produce into a partitioned topic, group consume with commits,
compacted topics and transactions, all through aiokafka."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord, TopicPartition

from tests.kafka_fixtures import (
    kafka_admin,
    kafka_topics,
    unique_name,
)

TEST_TIMEOUT_S = 30.0


async def consume(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[Any, Any]]:
    records: list[ConsumerRecord[Any, Any]] = []
    while len(records) < count:
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records.extend(batch)
    return records


async def behind(consumer: AIOKafkaConsumer, end_offsets: dict[TopicPartition, int]) -> bool:
    return any([await consumer.position(tp) < end for tp, end in end_offsets.items()])


async def test_metadata_answers(kafka_bootstrap: str) -> None:
    async with asyncio.timeout(TEST_TIMEOUT_S), kafka_admin(kafka_bootstrap) as admin:
        cluster = await admin.describe_cluster()
        await admin.list_topics()
    assert cluster["cluster_id"]
    brokers = cluster["brokers"]
    assert len(brokers) >= 1
    host, port = kafka_bootstrap.rsplit(":", 1)
    assert any(b["host"] == host and b["port"] == int(port) for b in brokers), brokers


async def test_idempotent_produce_group_consume_round_trip(kafka_bootstrap: str) -> None:
    topic, group = unique_name("roundtrip"), unique_name("roundtrip-group")
    sent = {f"key-{i:03d}".encode(): f"article {i}".encode() for i in range(100)}
    async with (
        asyncio.timeout(TEST_TIMEOUT_S),
        kafka_topics(kafka_bootstrap, NewTopic(topic, 3, 1)) as admin,
    ):
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 3

        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, key=k, value=v) for k, v in sent.items()]
            await producer.flush()
            metadata = [await f for f in futures]
        finally:
            await producer.stop()
        produced_partition = {k: m.partition for k, m in zip(sent, metadata, strict=True)}
        assert set(produced_partition.values()) == {0, 1, 2}

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6_000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        try:
            records = await consume(consumer, len(sent))
            await consumer.commit()
            committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        finally:
            await consumer.stop()

    assert len(records) == len(sent)
    assert {r.key: r.value for r in records} == sent
    assert all(r.partition == produced_partition[r.key] for r in records)
    # Per partition, offsets arrive in order and the committed position is one past the end.
    for partition in range(3):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == sorted(offsets)
        assert committed[partition] == len(offsets)
    assert sum(committed.values()) == len(sent)


async def test_compacted_topic_can_be_created(kafka_bootstrap: str) -> None:
    topic = unique_name("compacted")
    compacted = NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})
    async with asyncio.timeout(TEST_TIMEOUT_S), kafka_topics(kafka_bootstrap, compacted) as admin:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})]
        )
        resources = responses[0].to_object()["resources"]
        assert resources[0]["error_code"] == 0
        entries = {e["config_names"]: e["config_value"] for e in resources[0]["config_entries"]}
        assert entries["cleanup.policy"] == "compact"

        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic, key=b"feed-1", value=b"ok")
            await producer.send_and_wait(topic, key=b"feed-1", value=b"failing")
        finally:
            await producer.stop()


async def test_transactional_producer_commit_and_abort(kafka_bootstrap: str) -> None:
    topic = unique_name("txn")
    async with (
        asyncio.timeout(TEST_TIMEOUT_S),
        kafka_topics(kafka_bootstrap, NewTopic(topic, 3, 1)),
    ):
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("txn-producer")
        )
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(10):
                    await producer.send(topic, key=f"c{i}".encode(), value=b"committed")
            with pytest.raises(RuntimeError):
                async with producer.transaction():
                    for i in range(5):
                        await producer.send(topic, key=f"a{i}".encode(), value=b"aborted")
                    raise RuntimeError("abort the transaction")
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(3)]
            consumer.assign(partitions)
            end_offsets = await consumer.end_offsets(partitions)
            records: list[ConsumerRecord[Any, Any]] = []
            # Read up to the last stable offset: the aborted records and the transaction
            # markers are skipped, so only the committed records may come back.
            while await behind(consumer, end_offsets):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
        finally:
            await consumer.stop()

    assert sorted(r.key for r in records) == sorted(f"c{i}".encode() for i in range(10))
    assert {r.value for r in records} == {b"committed"}
